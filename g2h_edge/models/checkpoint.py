"""Import the published Gait2Hip-60 checkpoints into bundles, without running pickle code.

The published ``.pt`` files are pickled dicts holding numpy arrays (``mu_x``, ``sd_x``), so a
plain ``torch.load(weights_only=True)`` refuses them. We allow-list exactly the numpy globals
needed to rebuild a plain ndarray and nothing else: a checkpoint that needs any other global
(a class, ``os.system``...) is refused with a :class:`ModelError` naming that global.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import torch

from g2h_edge import __version__
from g2h_edge.errors import ModelError
from g2h_edge.models.architectures import ARCHS
from g2h_edge.models.bundle import (
    Bundle,
    UnsafePickleError,
    check_plain,
    file_sha256,
    safe_torch_load,
)
from g2h_edge.schema import TARGET_UNIT, task_for_out_cols

__all__ = ["import_checkpoint", "read_checkpoint", "allowed_numpy_globals", "CHECKPOINT_KEYS"]

#: keys every published checkpoint has (the rest are optional, kept in provenance)
CHECKPOINT_KEYS = ("model_type", "state_dict", "hparams", "mu_x", "sd_x", "in_cols", "out_cols")
_LICENCE = "Gait2Hip-60 published checkpoint (arXiv 2605.30374), MIT licence, Copyright (c) 2026 Jiaqi Zhang"


def allowed_numpy_globals() -> list:
    """The numpy globals a checkpoint may use: what rebuilds a plain ndarray, nothing more.

    numpy 2 pickles name ``numpy._core.multiarray._reconstruct``; numpy 1 pickles name
    ``numpy.core.multiarray._reconstruct`` (the same function), so both names are admitted.
    """
    core = getattr(np, "_core", None)
    multiarray = core.multiarray if core is not None else np.core.multiarray
    dtypes = [
        getattr(np.dtypes, n)
        for n in ("Float32DType", "Float64DType")
        if hasattr(getattr(np, "dtypes", None), n)
    ]  # the classes of float dtypes
    return [
        np.ndarray,
        np.dtype,
        *dtypes,
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    ]


def read_checkpoint(src) -> dict:
    """Load a published checkpoint dict safely (ModelError if anything is refused)."""
    src = Path(src)
    try:
        obj = safe_torch_load(src, "checkpoint", allowed_numpy_globals())
    except UnsafePickleError as exc:
        raise ModelError(
            f"checkpoint {src} needs a non-allow-listed global {exc.what} and was refused (only "
            f"tensors, plain containers and numpy arrays are admitted, so no pickle code runs; "
            f"if you trust this file, re-save it as plain tensors/arrays)",
            reason="unsafe_checkpoint",
        ) from exc
    if not isinstance(obj, dict):
        raise ModelError(
            f"checkpoint {src} holds a {type(obj).__name__}, expected the published dict",
            reason="bad_checkpoint",
        )
    if obj.get("format") == "g2h-edge-bundle":
        raise ModelError(f"{src} is already a g2h-edge bundle; use it directly", reason="already_bundle")
    missing = [k for k in CHECKPOINT_KEYS if k not in obj]
    if missing:
        raise ModelError(
            f"checkpoint {src} is missing keys {missing} (expected a published Gait2Hip-60 checkpoint)",
            reason="missing_keys",
        )
    return obj


def _strings(value, what: str, src) -> list[str]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ModelError(
            f"checkpoint {src}: {what} must be a list of names, got {type(value).__name__}",
            reason="bad_checkpoint",
        )
    out = []
    for v in value:
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        if not isinstance(v, str):
            raise ModelError(f"checkpoint {src}: {what} holds {v!r}, not a name", reason="bad_checkpoint")
        out.append(v)
    return out


def _array(value, what: str, src) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ModelError(
            f"checkpoint {src}: {what} must be a float array, got dtype {arr.dtype}", reason="bad_checkpoint"
        )
    # some training scripts keep (1, 1, 10) for broadcasting; the bundle checks the size
    return arr.reshape(-1).astype(np.float32)


def _provenance(src: Path, obj: dict) -> dict:
    metrics = {
        k[len("test_metrics_") :]: v
        for k, v in obj.items()
        if k.startswith("test_metrics_") and isinstance(v, dict)
    }
    prov = {
        "source_file": src.name,
        "source_path": str(src.resolve()),
        "source_sha256": file_sha256(src),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": f"g2h-edge {__version__} models import",
        "origin": _LICENCE,
        "published_test_metrics": metrics,
        "test_subjects": [str(s) for s in obj.get("test_subjects", [])],
    }
    for key in ("protocol", "global_seed", "raw_target_unit"):
        if isinstance(obj.get(key), (str, int)):
            prov[key] = obj[key]
    check_plain(prov, "provenance")
    return prov


def import_checkpoint(src, *, name: str | None = None) -> Bundle:
    """Convert a published Gait2Hip-60 checkpoint into a validated :class:`Bundle`.

    No pickle code is executed (see :func:`read_checkpoint`). The bundle records where it
    came from (file name, path, sha256), the published test metrics and test subjects, and
    ``synthetic=False``.
    """
    src = Path(src)
    obj = read_checkpoint(src)
    arch = obj["model_type"]
    if arch not in ARCHS:
        raise ModelError(
            f"checkpoint {src}: model_type {arch!r} is not one of {list(ARCHS)}", reason="unknown_arch"
        )
    if not isinstance(obj["hparams"], dict):
        raise ModelError(f"checkpoint {src}: hparams is not a dict", reason="bad_checkpoint")
    in_cols = _strings(obj["in_cols"], "in_cols", src)
    out_cols = _strings(obj["out_cols"], "out_cols", src)
    try:
        task = task_for_out_cols(out_cols)
    except ValueError as exc:
        raise ModelError(f"checkpoint {src}: {exc}", reason="bad_columns") from exc
    unit = obj.get("target_unit", TARGET_UNIT[task])
    if unit != TARGET_UNIT[task]:
        raise ModelError(
            f"checkpoint {src}: target_unit {unit!r} is not the per-kg unit "
            f"{TARGET_UNIT[task]!r} of task {task!r}",
            reason="bad_checkpoint",
        )
    hparams = dict(obj["hparams"])
    try:
        return Bundle(
            name=name or src.stem,
            arch=arch,
            hparams=hparams,
            state_dict=dict(obj["state_dict"]),
            in_cols=in_cols,
            out_cols=out_cols,
            mean=_array(obj["mu_x"], "mu_x", src),
            std=_array(obj["sd_x"], "sd_x", src),
            task=task,
            unit=unit,
            T=hparams.get("T"),
            provenance=_provenance(src, obj),
            synthetic=False,
        )
    except ModelError as exc:
        raise ModelError(f"checkpoint {src}: {exc}", reason=exc.reason) from exc
