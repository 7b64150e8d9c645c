"""Subject-level splits: the published hold-out, GroupKFold, no subject on two sides."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import DataError
from g2h_edge.train.split import group_folds, holdout_split

PUBLISHED_TEST = ("H29", "H56", "H19", "H25", "H08", "H18", "H28", "H51", "H60", "H40", "H45", "H06")


def _ids(n_subjects=60, per_subject=12, shuffle=True):
    ids = np.repeat([f"H{i:02d}" for i in range(1, n_subjects + 1)], per_subject)
    if shuffle:  # row order must not matter
        np.random.default_rng(7).shuffle(ids)
    return ids


def test_published_test_subjects_exactly():
    split = holdout_split(_ids())
    assert split.test_subjects == PUBLISHED_TEST
    assert len(split.pool_subjects) == 48


def test_published_split_matches_checkpoint_record(reference_dir):
    """The published checkpoints record the same 12 test subjects (read, never copied)."""
    from g2h_edge.models import read_checkpoint

    raw = read_checkpoint(reference_dir / "Transformer_MF60.pt")
    assert tuple(raw["test_subjects"]) == holdout_split(_ids()).test_subjects


def test_no_subject_on_both_sides_and_every_row_used():
    ids = _ids(23, 5)
    split = holdout_split(ids)
    assert set(ids[split.pool_idx]).isdisjoint(ids[split.test_idx])
    assert np.array_equal(np.sort(np.concatenate([split.pool_idx, split.test_idx])), np.arange(ids.size))
    assert len(split.test_subjects) == round(23 * 0.2)


def test_group_folds_partition_pool_subjects():
    ids = _ids(30, 4)
    split = holdout_split(ids)
    pool = ids[split.pool_idx]
    folds = group_folds(pool, 5)
    seen = []
    for tr, va in folds:
        assert set(pool[tr]).isdisjoint(pool[va])
        assert tr.size + va.size == pool.size
        seen += sorted(set(pool[va]))
    assert sorted(seen) == sorted(set(pool))  # each pool subject validated exactly once


@pytest.mark.parametrize(
    "ids, kwargs, match",
    [
        (np.array(["A", "A"]), {}, "at least 2 subjects"),
        (np.array([], dtype=str), {}, "non-empty"),
        (np.array(["A", "B", "C"]), {"test_ratio": 0.9}, "leaves no pool subject"),
    ],
)
def test_holdout_bad_input(ids, kwargs, match):
    with pytest.raises(DataError, match=match):
        holdout_split(ids, **kwargs)


def test_too_few_subjects_for_folds():
    with pytest.raises(DataError, match="5-fold GroupKFold needs at least 5"):
        group_folds(np.array(["A", "B", "C", "A"]), 5)
