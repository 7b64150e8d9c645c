"""Training loops: determinism, early stopping, per-fold standardisation."""

from __future__ import annotations

import numpy as np
import torch

from g2h_edge.models import build_model, default_hparams
from g2h_edge.train import protocol
from g2h_edge.train.config import TrainConfig
from g2h_edge.train.dataset import per_kg_targets
from g2h_edge.train.loop import fit_early_stopping, fit_fixed_epochs
from g2h_edge.train.progress import Progress

HP = {**default_hparams("lstm", 3), "hidden": 4, "layers": 1}


def _make():
    return build_model("lstm", HP)


def _xy(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 180, 10)).astype(np.float32), rng.normal(size=(n, 180, 3)).astype(np.float32)


def test_fit_is_deterministic_on_cpu():
    x, y = _xy()
    cfg = TrainConfig(batch_size=3)  # 2 shuffled mini-batches per epoch
    a = fit_fixed_epochs(_make, x, y, 1, cfg).state_dict
    b = fit_fixed_epochs(_make, x, y, 1, cfg).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = fit_fixed_epochs(_make, x, y, 1, cfg.replace(seed=1)).state_dict
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


def test_early_stopping_patience_and_best_weights():
    x, y = _xy()
    # an improvement must exceed min_delta = 1e9: only epoch 1 (from +inf) counts
    cfg = TrainConfig(batch_size=6, patience_epochs=2, min_delta=1e9, max_epochs=50)
    seen = []
    res = fit_early_stopping(_make, x, y, x[:2], y[:2], cfg, on_epoch=lambda e, t, v: seen.append(e))
    assert (res.best_epoch, res.epochs_run, seen) == (1, 3, [1, 2, 3])
    one = fit_fixed_epochs(_make, x, y, 1, cfg).state_dict  # same seed: the epoch-1 weights
    assert all(torch.equal(one[k], res.state_dict[k]) for k in one)


def test_cv_fits_standardiser_on_training_fold_rows_only(tiny_cohort, monkeypatch):
    """Spy on the standardiser: each fold fits on exactly its training rows, never validation."""
    calls = []
    real = protocol.fit_standardizer

    def spy(x):
        calls.append(np.array(x))
        return real(x)

    monkeypatch.setattr(protocol, "fit_standardizer", spy)
    d = tiny_cohort
    x, y = d.X, per_kg_targets(d.Y, d.weight_kg)
    groups = np.asarray(d.subject_id)
    cfg = TrainConfig(max_epochs=1, folds=3)
    rows, best, _ = protocol.cross_validate(_make, x, y, groups, cfg, Progress(False), "t")
    folds = protocol.group_folds(groups, 3)
    assert len(calls) == len(folds) == len(rows) == 3
    for got, (tr, va) in zip(calls, folds):
        np.testing.assert_array_equal(got, x[tr])
        assert set(groups[tr]).isdisjoint(groups[va])
    assert best == [1, 1, 1]
