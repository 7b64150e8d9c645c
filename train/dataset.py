"""Checks and transforms of a Gait2Hip data set before training or evaluation.

- targets are divided by each cycle's body mass (N -> N/kg, Nm -> Nm/kg);
- inputs are z-scored with a mean/std fitted on the training rows only (a fold's training
  subjects during cross-validation, the whole pool for the final model), computed per input
  channel over every frame of every training cycle, std + 1e-8 (as the reference).
"""

from __future__ import annotations

import numpy as np

from g2h_edge.errors import DataError
from g2h_edge.schema import IN_COLS, TASKS, T

__all__ = ["check_for_training", "per_kg_targets", "fit_standardizer", "standardize", "STD_EPS"]

#: added to the fitted std (as the reference), so a constant channel does not divide by 0
STD_EPS: float = 1e-8


def check_for_training(data, *, need_targets: bool = True) -> str:
    """Validate a :class:`g2h_edge.io.Gait2HipData` for the protocol; returns its task key."""
    x = np.asarray(data.X)
    if x.ndim != 3 or x.shape[1:] != (T, len(IN_COLS)):
        raise DataError(f"X must have shape (N, {T}, {len(IN_COLS)}), got {x.shape}")
    if tuple(data.in_cols) != IN_COLS:
        raise DataError(f"in_cols {list(data.in_cols)} differ from the benchmark's {list(IN_COLS)}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"X holds {int(np.sum(~np.isfinite(x)))} NaN/inf values: clean the file first")
    n = x.shape[0]
    for name in ("subject_id", "speed_label", "weight_kg"):
        arr = np.asarray(getattr(data, name))
        if arr.shape != (n,):
            raise DataError(f"{name} has shape {arr.shape}, expected ({n},) (one per cycle)")
    w = np.asarray(data.weight_kg, dtype=np.float64)
    if not np.all(np.isfinite(w) & (w > 0)):
        bad = np.asarray(data.subject_id)[~(np.isfinite(w) & (w > 0))]
        raise DataError(
            f"weight_kg must be positive and finite; bad for subjects {sorted(set(bad.tolist()))}"
        )
    task = data.task
    if task not in TASKS or tuple(data.out_cols) != TASKS[task]:
        raise DataError(
            f"out_cols {list(data.out_cols)} match neither task's outputs "
            f"(mf: {len(TASKS['mf'])} muscle forces, jm: {len(TASKS['jm'])} moments)"
        )
    if need_targets:
        if data.Y is None:
            raise DataError("this file has no targets (Y): training and evaluation need them")
        y = np.asarray(data.Y)
        if y.shape != (n, T, len(TASKS[task])):
            raise DataError(f"Y must have shape ({n}, {T}, {len(TASKS[task])}), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise DataError(f"Y holds {int(np.sum(~np.isfinite(y)))} NaN/inf values: clean the file first")
    return task


def per_kg_targets(y_raw, weight_kg) -> np.ndarray:
    """(N, T, K) raw targets / (N,) body mass -> (N, T, K) float32 per kg."""
    y = np.asarray(y_raw, dtype=np.float32)
    w = np.asarray(weight_kg, dtype=np.float32)
    return (y / w[:, None, None]).astype(np.float32)


def fit_standardizer(x_train) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (+1e-8) over all frames of (N, T, C) -> two (C,) float32."""
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(f"cannot fit a standardiser on an array of shape {x.shape}")
    flat = x.reshape(-1, x.shape[-1])  # (N*T, C)
    return flat.mean(axis=0).astype(np.float32), (flat.std(axis=0) + STD_EPS).astype(np.float32)


def standardize(x, mean, std) -> np.ndarray:
    """(x - mean) / std, float32."""
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)
