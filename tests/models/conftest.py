"""Fixtures for the model tests: small random bundles and published-format checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.models import Bundle, build_model, default_hparams
from g2h_edge.schema import IN_COLS, TARGET_UNIT, TASKS

#: small hyper-parameters (same structure as the published ones) to keep tests fast
SMALL = {
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "max_len": 200},
    "lstm": {"hidden": 16, "layers": 2},
    "mamba": {"d_model": 16, "d_state": 4, "layers": 2},
}
MEAN = np.array([16.6, 2.8, -8.0, 21.0, -6.3, 1.2, 23.0, 5.6, 31.9, 8.9], np.float32)
STD = np.array([22.3, 6.2, 7.2, 22.7, 6.5, 5.8, 20.0, 7.5, 18.5, 8.2], np.float32)


def small_hparams(arch: str, task: str) -> dict:
    return {**default_hparams(arch, len(TASKS[task])), **SMALL[arch]}


def make_bundle(arch="transformer", task="jm", seed=0, **overrides) -> Bundle:
    """A random-weight bundle (synthetic=True) with small hyper-parameters."""
    torch.manual_seed(seed)
    hp = small_hparams(arch, task)
    fields = dict(
        name=f"test-{arch}-{task}",
        arch=arch,
        hparams=hp,
        state_dict=build_model(arch, hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=TASKS[task],
        mean=MEAN,
        std=STD,
        task=task,
        unit=TARGET_UNIT[task],
        T=hp["T"],
        provenance={"note": "random weights for tests"},
        synthetic=True,
    )
    fields.update(overrides)
    return Bundle(**fields)


def published_style_checkpoint(arch="lstm", task="mf", seed=0, **overrides) -> dict:
    """A dict laid out like the published checkpoints (numpy mu_x/sd_x, lists of names)."""
    torch.manual_seed(seed)
    hp = small_hparams(arch, task)
    ckpt = {
        "model_type": arch,
        "state_dict": build_model(arch, hp).state_dict(),
        "hparams": hp,
        "mu_x": MEAN.copy(),
        "sd_x": STD.copy(),
        "in_cols": list(IN_COLS),
        "out_cols": list(TASKS[task]),
        "target_unit": TARGET_UNIT[task],
        "raw_target_unit": {"mf": "N", "jm": "Nm"}[task],
        "test_subjects": ["H29", "H56"],
        "global_seed": 2025,
        "protocol": "test",
        "test_metrics_subject_mean": {"RMSE": 1.0, "MAE": 0.5, "R2": 0.8},
        "alpha": 0.0,
        "r": 0,
        "synergy_loss_mode": None,
    }
    ckpt.update(overrides)
    return ckpt


@pytest.fixture
def bundle():
    return make_bundle()


@pytest.fixture
def cycles():
    """(3, 180, 10) smooth cycles in degrees around the training statistics."""
    rng = np.random.default_rng(0)
    phase = np.linspace(0, 2 * np.pi, 180)[None, :, None]
    amp = rng.uniform(0.5, 1.0, (3, 1, 10)) * STD
    return (MEAN + amp * np.sin(phase + rng.uniform(0, 6.28, (3, 1, 10)))).astype(np.float32)


@pytest.fixture
def bundle_factory():
    """make_bundle(arch="transformer", task="jm", seed=0, **field_overrides) -> Bundle."""
    return make_bundle


@pytest.fixture
def ckpt_factory():
    """published_style_checkpoint(arch="lstm", task="mf", seed=0, **key_overrides) -> dict."""
    return published_style_checkpoint


@pytest.fixture
def stats():
    return MEAN, STD
