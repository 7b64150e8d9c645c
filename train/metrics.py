"""Regression metrics of the benchmark (pure numpy).

Definitions (``y`` reference, ``p`` prediction, both (N, T, K) per kg):

- ``pooled_metrics``: the reference code's ``regression_metrics``: RMSE = sqrt(mean((p-y)^2)),
  MAE = mean(|p-y|), and **pooled R2** = 1 - SS_res / SS_tot where SS_tot is taken around the
  single mean of *all* values of *all* output channels (every channel pooled into one R2).
  Pooling lets the between-channel spread of the means count as "explained" variance, so it
  is higher than the per-channel R2 whenever channels differ in level.
- ``channel_r2``: the usual R2 of each output channel on its own (frames of all cycles
  pooled within the channel); ``mean`` of those is reported as "channel-mean R2".
- subject-level: each metric per subject (all that subject's cycles, or those of one
  cadence), then the plain mean over subjects, NaNs ignored ("subject-mean", the numbers the
  paper reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "EPS",
    "pooled_metrics",
    "channel_r2",
    "SubjectMetrics",
    "subject_metrics",
    "subject_mean",
    "speed_table",
]

#: added to SS_tot as the reference does, so a constant reference gives a finite R2
EPS: float = 1e-12


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"reference shape {y.shape} != prediction shape {p.shape}")
    if y.size == 0:
        raise ValueError("no values to score")
    return y, p


def pooled_metrics(y_true, y_pred) -> dict[str, float]:
    """RMSE, MAE and pooled R2 over every value of every channel (the reference's metrics)."""
    y, p = _pair(y_true, y_pred)
    diff = p - y
    ss_res = float(np.sum(diff**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2) + EPS)
    return {
        "RMSE": float(np.sqrt(np.mean(diff**2))),
        "MAE": float(np.mean(np.abs(diff))),
        "R2": 1.0 - ss_res / ss_tot,
    }


def channel_r2(y_true, y_pred) -> np.ndarray:
    """R2 of each output channel separately: (..., K) -> (K,) (NaN for a constant channel)."""
    y, p = _pair(y_true, y_pred)
    k = y.shape[-1]
    y2, p2 = y.reshape(-1, k), p.reshape(-1, k)  # (N*T, K)
    ss_res = np.sum((p2 - y2) ** 2, axis=0)
    ss_tot = np.sum((y2 - y2.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    return np.where(ss_tot > 0, r2, np.nan)


@dataclass(frozen=True)
class SubjectMetrics:
    """Per-subject metrics (rows in ``subjects`` order; NaN where a subject has no cycle)."""

    subjects: tuple[str, ...]
    n_cycles: np.ndarray  # (S,) int
    rmse: np.ndarray  # (S,)
    mae: np.ndarray  # (S,)
    r2_pooled: np.ndarray  # (S,) the reference's R2
    r2_channels: np.ndarray  # (S, K) per-channel R2

    @property
    def r2_channel_mean(self) -> np.ndarray:
        """(S,) mean over channels of the per-channel R2 (NaN channels ignored)."""
        out = np.full(len(self.subjects), np.nan)
        for i, row in enumerate(self.r2_channels):
            ok = np.isfinite(row)
            if ok.any():
                out[i] = row[ok].mean()
        return out

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            "RMSE": self.rmse,
            "MAE": self.mae,
            "R2": self.r2_pooled,
            "R2_channel_mean": self.r2_channel_mean,
        }


def subject_metrics(
    y_true, y_pred, subject_id, subjects=None, speed_label=None, speed: str | None = None
) -> SubjectMetrics:
    """Metrics of each subject (optionally only the cycles of one cadence ``speed``).

    ``subjects`` fixes the row order (default: sorted unique ids).
    """
    y, p = _pair(y_true, y_pred)
    sid = np.asarray(subject_id).astype(str)
    if sid.shape != (y.shape[0],):
        raise ValueError(f"subject_id has shape {sid.shape}, expected ({y.shape[0]},)")
    subjects = tuple(np.unique(sid).tolist()) if subjects is None else tuple(str(s) for s in subjects)
    keep = np.ones(sid.shape, bool)
    if speed is not None:
        keep = np.asarray(speed_label).astype(str) == str(speed)
    k = y.shape[-1]
    n = np.zeros(len(subjects), np.int64)
    rmse, mae, r2 = (np.full(len(subjects), np.nan) for _ in range(3))
    r2c = np.full((len(subjects), k), np.nan)
    for i, s in enumerate(subjects):
        mask = keep & (sid == s)
        n[i] = int(mask.sum())
        if n[i] == 0:
            continue
        m = pooled_metrics(y[mask], p[mask])
        rmse[i], mae[i], r2[i] = m["RMSE"], m["MAE"], m["R2"]
        r2c[i] = channel_r2(y[mask], p[mask])
    return SubjectMetrics(subjects, n, rmse, mae, r2, r2c)


def subject_mean(values) -> float:
    """Mean over subjects ignoring NaN (NaN when nothing is finite)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def speed_table(y_true, y_pred, subject_id, speed_label) -> list[dict]:
    """Rows of the reference's ``*_test_metrics_by_speed_mean.csv``.

    First ``overall`` then each cadence in sorted order (fast, med, slow), with
    n_trials, n_subjects and the subject-mean RMSE, MAE, pooled R2; plus the
    subject-mean channel-mean R2 under ``subject_mean_R2_channel_mean`` (the caller decides
    whether to write it: the reference file does not have that column).
    """
    sid = np.asarray(subject_id).astype(str)
    spd = np.asarray(speed_label).astype(str)
    subjects = tuple(np.unique(sid).tolist())
    rows = []
    for label in ["overall"] + np.unique(spd).tolist():
        speed = None if label == "overall" else label
        sm = subject_metrics(y_true, y_pred, sid, subjects, spd, speed)
        mask = np.ones(sid.shape, bool) if speed is None else spd == speed
        rows.append(
            {
                "speed": label,
                "n_trials": int(mask.sum()),
                "n_subjects": int(np.unique(sid[mask]).size),
                "subject_mean_RMSE": subject_mean(sm.rmse),
                "subject_mean_MAE": subject_mean(sm.mae),
                "subject_mean_R2": subject_mean(sm.r2_pooled),
                "subject_mean_R2_channel_mean": subject_mean(sm.r2_channel_mean),
            }
        )
    return rows
