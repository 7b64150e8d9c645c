"""CSV and markdown outputs of the benchmark.

The two reference CSVs keep the reference code's exact columns and number format
(``%.4f``, NaN as an empty cell):

- ``<Model>_<TASK>_cv_<K>fold_baseline_metrics.csv``: one row per fold;
- ``<Model>_<TASK>_test_metrics_by_speed_mean.csv``: ``overall`` then each cadence.

Extra files (not in the reference) carry what it does not: per-subject rows, per-channel R2,
the Wilcoxon/Holm comparisons.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CV_COLUMNS",
    "SPEED_COLUMNS",
    "SUBJECT_COLUMNS",
    "WILCOXON_COLUMNS",
    "write_csv",
    "read_csv",
    "cv_csv_name",
    "speed_csv_name",
    "subject_rows",
    "channel_rows",
    "summary_markdown",
]

CV_COLUMNS = (
    "fold",
    "n_train_trials",
    "n_val_trials",
    "n_val_subjects",
    "best_epoch",
    "best_val_loss",
    "val_RMSE",
    "val_MAE",
    "val_R2",
    "val_subject_mean_RMSE",
    "val_subject_mean_MAE",
    "val_subject_mean_R2",
)
SPEED_COLUMNS = (
    "speed",
    "n_trials",
    "n_subjects",
    "subject_mean_RMSE",
    "subject_mean_MAE",
    "subject_mean_R2",
)
SUBJECT_COLUMNS = ("subject", "speed", "n_trials", "RMSE", "MAE", "R2", "R2_channel_mean")
WILCOXON_COLUMNS = (
    "metric",
    "speed",
    "model_a",
    "model_b",
    "n",
    "median_diff",
    "statistic",
    "p",
    "p_holm",
    "significant",
)


def cv_csv_name(model: str, task: str, folds: int) -> str:
    return f"{model}_{task}_cv_{folds}fold_baseline_metrics.csv"


def speed_csv_name(model: str, task: str, kind: str = "test") -> str:
    return f"{model}_{task}_{kind}_metrics_by_speed_mean.csv"


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else f"{float(v):.4f}"
    return str(v)


def write_csv(path: Path, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts; only ``columns``, in that order) as CSV in the reference format."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c, float("nan"))) for c in columns])
    tmp.replace(path)  # a crash never leaves a half-written CSV under the real name
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def subject_rows(per_speed: dict) -> list[dict]:
    """Rows of ``*_metrics_by_subject.csv`` from {speed: SubjectMetrics}."""
    rows = []
    for speed, sm in per_speed.items():
        r2c = sm.r2_channel_mean
        for i, s in enumerate(sm.subjects):
            if sm.n_cycles[i] == 0:
                continue
            rows.append(
                {
                    "subject": s,
                    "speed": speed,
                    "n_trials": int(sm.n_cycles[i]),
                    "RMSE": sm.rmse[i],
                    "MAE": sm.mae[i],
                    "R2": sm.r2_pooled[i],
                    "R2_channel_mean": r2c[i],
                }
            )
    return rows


def channel_rows(out_cols, r2_all: np.ndarray, per_speed: dict) -> tuple[list[dict], tuple]:
    """Rows of ``*_r2_per_channel.csv``: R2 over all cycles and subject-mean R2 per cadence."""
    from g2h_edge.train.metrics import subject_mean

    columns = ("channel", "R2_all_cycles") + tuple(f"subject_mean_R2_{s}" for s in per_speed)
    rows = []
    for k, name in enumerate(out_cols):
        row = {"channel": name, "R2_all_cycles": float(r2_all[k])}
        for s, sm in per_speed.items():
            row[f"subject_mean_R2_{s}"] = subject_mean(sm.r2_channels[:, k])
        rows.append(row)
    return rows, columns


def _f(v, nd=3) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.{nd}f}"


def _pm(values, nd=3) -> str:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "–"
    return f"{v.mean():.{nd}f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.{nd}f}"


def summary_markdown(
    task: str,
    unit: str,
    results: list[dict],
    wilcoxon: list[dict],
    *,
    synthetic: bool,
    source: str,
    kind: str = "test",
) -> str:
    """The summary table (one row per model) + the significant Holm-corrected comparisons.

    Each ``results`` item: model, final_epoch, cv_r2 (per fold subject-mean pooled R2),
    subjects: {speed: SubjectMetrics}.
    """
    lines = [f"# {task}: {kind} results ({unit})", ""]
    if synthetic:
        lines += [
            "> **SYNTHETIC DATA** — trained/evaluated on the project's synthetic cohort; "
            "these numbers say nothing about physiology.",
            "",
        ]
    lines += [
        f"Source: `{source}`. Subject-level metrics: computed per {kind} subject, then "
        "mean ± SD over subjects. *Pooled R2* pools every output channel into one R2 "
        "(the paper's R2); *channel R2* is the mean over channels of each channel's own R2.",
        "",
    ]
    speeds = [s for s in results[0]["subjects"] if s != "overall"] if results else []
    head = ["model", "final epoch", "CV pooled R2", "RMSE", "MAE", "pooled R2", "channel R2"]
    head += [f"pooled R2 {s}" for s in speeds]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        sm = r["subjects"]["overall"]
        cells = [
            r["model"],
            str(r.get("final_epoch", "–")),
            _pm(r.get("cv_r2", [])),
            _pm(sm.rmse),
            _pm(sm.mae),
            _pm(sm.r2_pooled),
            _pm(sm.r2_channel_mean),
        ]
        cells += [_pm(r["subjects"][s].r2_pooled) for s in speeds]
        lines.append("| " + " | ".join(cells) + " |")
    shown = [w for w in wilcoxon if w["speed"] == "overall" or w["significant"]]
    if shown:
        lines += [
            "",
            "Wilcoxon signed-rank (paired by subject), Holm-corrected over the model pairs of "
            "each metric and cadence; all cadences overall, single cadences only where "
            "p (Holm) < 0.05 (every row is in `*_test_wilcoxon_holm.csv`):",
            "",
            "| metric | cadence | A | B | median A−B | p | p (Holm) |",
            "|---|---|---|---|---|---|---|",
        ]
        for w in shown:
            star = " *" if w["significant"] else ""
            lines.append(
                f"| {w['metric']} | {w['speed']} | {w['model_a']} | {w['model_b']} | "
                f"{_f(w['median_diff'], 4)} | {_f(w['p'], 4)} | {_f(w['p_holm'], 4)}{star} |"
            )
        lines += ["", "`*`: p (Holm) < 0.05."]
    return "\n".join(lines) + "\n"
