"""Glue between the protocol and g2h_edge.models: hyper-parameters, factories, bundles."""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from g2h_edge.errors import ConfigError
from g2h_edge.schema import IN_COLS, TARGET_UNIT, TASKS, T
from g2h_edge.train.config import MODEL_NAMES, TASK_NAMES

__all__ = [
    "resolve_hparams",
    "model_factory",
    "make_bundle",
    "data_digest",
    "model_label",
    "own_model_name",
    "plain",
    "utc_now",
]


def resolve_hparams(arch: str, task: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """The published hyper-parameters of ``arch`` for ``task`` with ``overrides`` applied."""
    from g2h_edge.models import default_hparams

    hp = dict(default_hparams(arch, len(TASKS[task])))
    over = dict(overrides or {})
    unknown = sorted(set(over) - set(hp) - {"dt_rank"})
    if unknown:
        raise ConfigError(f"unknown {arch} hyper-parameter(s) {unknown}: known are {sorted(hp)}")
    if "d_out" in over and over["d_out"] != hp["d_out"]:
        raise ConfigError(f"d_out is fixed by the task ({hp['d_out']} outputs), got {over['d_out']}")
    hp.update(over)
    return hp


def model_factory(arch: str, hparams: dict) -> Callable[[], nn.Module]:
    """A zero-argument constructor (called after seeding, so initialisation is reproducible)."""
    from g2h_edge.models import build_model

    build_model(arch, hparams)  # validate now: bad hparams fail before any training

    def make() -> nn.Module:
        model = build_model(arch, hparams)
        if arch == "mamba":
            # training: the chunked pure-torch scan's forward+backward measured 2.3x faster
            # than the default sequential one on this CPU (B=64: 18 s vs 41 s a step under
            # load); same recurrence. mamba_ssm kernels still take over on CUDA when present.
            from g2h_edge.models.mamba import set_scan

            set_scan(model, "chunked")
        return model

    return make


def model_label(arch: str, task: str) -> str:
    """``Transformer_MF60``-style name used in every file name."""
    return f"{MODEL_NAMES[arch]}_{TASK_NAMES[task]}"


def own_model_name(arch: str, task: str, n_subjects: int) -> str:
    """Default name of a model trained here: the published label only when trained on the
    published cohort size (60 subjects), else ``Transformer_MF-12subj`` so an own model is
    never mistaken for a published one."""
    label = model_label(arch, task)
    if n_subjects == 60:
        return label
    return f"{label.rstrip('0123456789')}-{int(n_subjects)}subj"


def data_digest(data) -> str:
    """sha256 over the arrays that decide training (X, Y, subject ids, masses, cadences)."""
    h = hashlib.sha256()
    for arr in (data.X, data.Y, data.subject_id, data.weight_kg, data.speed_label):
        a = np.ascontiguousarray(np.asarray(arr) if arr is not None else np.zeros(0))
        if a.dtype.kind in "OUS":
            a = np.asarray(a.astype(str)).astype("U")
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(repr((tuple(data.out_cols), bool(data.synthetic))).encode())
    return h.hexdigest()


def plain(obj):
    """Convert numpy scalars/arrays and tuples into JSON/``weights_only``-safe python."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def make_bundle(
    *,
    name: str,
    arch: str,
    hparams: dict,
    state_dict: dict,
    mean,
    std,
    task: str,
    synthetic: bool,
    provenance: dict,
    input_summary: dict | None = None,
):
    """A :class:`g2h_edge.models.Bundle` for a model trained here (``input_summary``:
    :func:`g2h_edge.gait.quality.input_summary` of the training inputs, optional)."""
    from g2h_edge import __version__
    from g2h_edge.models import Bundle

    prov = {"created": utc_now(), "tool": f"g2h-edge {__version__}", **plain(provenance)}
    return Bundle(
        name=name,
        arch=arch,
        hparams=dict(hparams),
        state_dict={k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        in_cols=tuple(IN_COLS),
        out_cols=tuple(TASKS[task]),
        mean=np.asarray(mean, dtype=np.float32),
        std=np.asarray(std, dtype=np.float32),
        task=task,
        unit=TARGET_UNIT[task],
        T=T,
        provenance=prov,
        synthetic=bool(synthetic),
        input_summary=input_summary,
    )
