"""Configuration of the benchmark protocol (one frozen dataclass, validated).

Defaults are the published protocol of Gait2Hip-60 (arXiv 2605.30374, public code):
AdamW lr 1e-4, weight decay 1e-5, batch 64, at most 300 epochs, gradient-norm clip 0.5,
MSE, early stopping with patience 30 (improvement > 1e-8), 5-fold GroupKFold, 20 % of the
subjects held out with seed 42, seed 2025 everywhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from g2h_edge.config import config_from_mapping
from g2h_edge.errors import ConfigError
from g2h_edge.schema import GLOBAL_SEED, HOLDOUT_SEED

__all__ = ["TrainConfig", "ARCHS", "MODEL_NAMES", "TASK_NAMES", "config_fingerprint"]

#: architectures the protocol knows, in the order the paper reports them
ARCHS: tuple[str, ...] = ("lstm", "transformer", "mamba")
#: file-name spelling of each architecture (as the reference writes its CSVs)
MODEL_NAMES: dict[str, str] = {"lstm": "LSTM", "transformer": "Transformer", "mamba": "Mamba"}
#: file-name spelling of each task (as the reference writes its CSVs)
TASK_NAMES: dict[str, str] = {"mf": "MF60", "jm": "JM60"}

_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained and evaluated.

    ``hparams`` maps an architecture ("lstm", "transformer", "mamba") to overrides of
    :func:`g2h_edge.models.default_hparams` (e.g. ``{"transformer": {"d_model": 16}}`` for
    tiny test models); empty means the published sizes.
    """

    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 64
    max_epochs: int = 300
    grad_clip_norm: float = 0.5
    patience_epochs: int = 30
    min_delta: float = 1e-8
    folds: int = 5
    test_ratio: float = 0.2
    split_seed: int = HOLDOUT_SEED
    seed: int = GLOBAL_SEED
    device: str = "cpu"
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        _check_types(self)
        checks = [
            (self.lr > 0, "lr", "a positive learning rate"),
            (self.weight_decay >= 0, "weight_decay", "a non-negative weight decay"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.max_epochs >= 1, "max_epochs", "at least 1"),
            (self.grad_clip_norm > 0, "grad_clip_norm", "a positive norm"),
            (self.patience_epochs >= 1, "patience_epochs", "at least 1"),
            (self.min_delta >= 0, "min_delta", "non-negative"),
            (self.folds >= 2, "folds", "at least 2 (GroupKFold)"),
            (0 < self.test_ratio < 1, "test_ratio", "strictly between 0 and 1"),
            (self.device in _DEVICES, "device", f"one of {_DEVICES}"),
        ]
        for ok, name, need in checks:
            if not ok:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r}: must be {need}")
        for arch, over in self.hparams.items():
            if arch not in ARCHS:
                raise ConfigError(f"TrainConfig.hparams has unknown architecture {arch!r}: use {ARCHS}")
            if not isinstance(over, Mapping):
                raise ConfigError(
                    f"TrainConfig.hparams[{arch!r}] must be a mapping, got {type(over).__name__}"
                )
        # freeze a private copy so later edits of the caller's dict change nothing
        object.__setattr__(self, "hparams", {a: dict(o) for a, o in self.hparams.items()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are a :class:`ConfigError`."""
        return config_from_mapping(cls, d)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _check_types(cfg: TrainConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "hparams":
            ok = isinstance(value, Mapping)
        elif f.type in ("float",):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                object.__setattr__(cfg, f.name, float(value))
        elif f.type in ("int",):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(
                f"TrainConfig.{f.name}={value!r} has type {type(value).__name__}; expected {f.type}"
            )


def config_fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 of a JSON-serialisable mapping (sorted keys): used to decide resumption."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
