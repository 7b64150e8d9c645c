"""Configuration validation: unknown keys and wrong types are ConfigError."""

from __future__ import annotations

import pytest

from g2h_edge.errors import ConfigError
from g2h_edge.train.benchmark import parse_archs
from g2h_edge.train.config import TrainConfig
from g2h_edge.train.modelling import resolve_hparams


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1.0}, "lr=-1.0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"batch_size": 2.5}, "batch_size=2.5 has type float"),
        ({"folds": 1}, "folds=1"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"test_ratio": 1.0}, "test_ratio"),
        ({"hparams": {"gru": {}}}, "unknown architecture 'gru'"),
        ({"max_epochs": True}, "max_epochs=True has type bool"),
    ],
)
def test_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown TrainConfig key\(s\) \['epochs'\]"):
        TrainConfig.from_dict({"epochs": 3})


def test_defaults_are_the_published_protocol():
    c = TrainConfig()
    assert (
        c.lr,
        c.weight_decay,
        c.batch_size,
        c.max_epochs,
        c.grad_clip_norm,
        c.patience_epochs,
        c.folds,
        c.test_ratio,
        c.split_seed,
        c.seed,
    ) == (1e-4, 1e-5, 64, 300, 0.5, 30, 5, 0.2, 42, 2025)


@pytest.mark.parametrize(
    "arch, over, match",
    [
        ("transformer", {"width": 3}, "unknown transformer hyper-parameter"),
        ("lstm", {"d_out": 5}, "d_out is fixed by the task"),
    ],
)
def test_bad_hparams(arch, over, match):
    with pytest.raises(ConfigError, match=match):
        resolve_hparams(arch, "jm", over)


@pytest.mark.parametrize("text", ["", "lstm,gru", "cnn"])
def test_bad_model_list(text):
    with pytest.raises(ConfigError, match="--models"):
        parse_archs(text)


def test_model_list_order_kept_and_deduplicated():
    assert parse_archs("Mamba, lstm,mamba") == ["mamba", "lstm"]
