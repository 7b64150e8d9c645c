"""Subject-level splits of the published protocol.

- hold-out test set: sorted unique subject ids, shuffled in place by
  ``numpy.random.default_rng(42)``, the first ``round(20 %)`` (at least one) are the test
  subjects, in that shuffled order (H01..H60 gives H29 H56 H19 H25 H08 H18 H28 H51 H60 H40
  H45 H06, the ``test_subjects`` of the published checkpoints);
- cross-validation on the remaining pool: scikit-learn ``GroupKFold`` grouped by subject.

Pure functions; no subject ever appears on both sides of a split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2h_edge.errors import DataError
from g2h_edge.schema import HOLDOUT_SEED

__all__ = ["HoldoutSplit", "holdout_split", "group_folds"]


@dataclass(frozen=True)
class HoldoutSplit:
    """Row indices and subject ids of the pool (train + CV) and the hold-out test set."""

    pool_idx: np.ndarray  # (n_pool,) int64 row indices, ascending
    test_idx: np.ndarray  # (n_test,) int64 row indices, ascending
    pool_subjects: tuple[str, ...]  # in the shuffled order
    test_subjects: tuple[str, ...]  # in the shuffled order (as the checkpoints record them)


def holdout_split(subject_id, test_ratio: float = 0.2, seed: int = HOLDOUT_SEED) -> HoldoutSplit:
    """Split rows by subject exactly as the published code does (see module docstring)."""
    sid = np.asarray(subject_id).astype(str)
    if sid.ndim != 1 or sid.size == 0:
        raise DataError(f"subject_id must be a non-empty 1-D array, got shape {sid.shape}")
    unique = np.unique(sid)  # sorted
    if unique.size < 2:
        raise DataError(f"a subject hold-out needs at least 2 subjects, got {unique.size} ({list(unique)})")
    n_test = max(1, int(round(unique.size * test_ratio)))
    if n_test >= unique.size:
        raise DataError(f"test_ratio={test_ratio} leaves no pool subject out of {unique.size}")
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)  # in place, as the reference
    test_subjects, pool_subjects = unique[:n_test], unique[n_test:]
    test_idx = np.flatnonzero(np.isin(sid, test_subjects)).astype(np.int64)
    pool_idx = np.flatnonzero(np.isin(sid, pool_subjects)).astype(np.int64)
    return HoldoutSplit(pool_idx, test_idx, tuple(pool_subjects.tolist()), tuple(test_subjects.tolist()))


def group_folds(groups, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``GroupKFold(n_splits)`` folds of rows grouped by subject: [(train_idx, val_idx), ...].

    Indices are positions in ``groups`` (i.e. into the pool arrays, not the whole file).
    """
    from g2h_edge.errors import require

    model_selection = require("sklearn.model_selection", "train", "GroupKFold cross-validation")
    g = np.asarray(groups).astype(str)
    n_groups = np.unique(g).size
    if n_groups < n_splits:
        raise DataError(
            f"{n_splits}-fold GroupKFold needs at least {n_splits} pool subjects, got {n_groups}: "
            "use fewer folds (--folds) or more subjects"
        )
    gkf = model_selection.GroupKFold(n_splits=n_splits)
    dummy = np.zeros((g.size, 1))
    return [(tr.astype(np.int64), va.astype(np.int64)) for tr, va in gkf.split(dummy, groups=g)]
