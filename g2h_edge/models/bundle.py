"""The model bundle: one file that holds everything needed to serve a model.

A bundle is a plain dict saved with ``torch.save`` that ``torch.load(weights_only=True)``
reads: only tensors, str, int, float, bool, None, lists and dicts. See docs/models.md for
every key. :func:`load_bundle` validates all of it and raises :class:`ModelError` naming the
problem.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from g2h_edge.errors import ModelError
from g2h_edge.fsutil import write_atomic
from g2h_edge.integrity import CONTENT_KEY, HASHED_FIELDS, bundle_content_sha256, check_content
from g2h_edge.models.architectures import build_model, validate_hparams
from g2h_edge.schema import IN_COLS, N_IN, TARGET_UNIT, TASKS

__all__ = [
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "Bundle",
    "StandardizedModel",
    "save_bundle",
    "load_bundle",
    "file_sha256",
    "bundle_metadata",
    "check_plain",
    "safe_torch_load",
    "UnsafePickleError",
]

FORMAT_TAG = "g2h-edge-bundle"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format",
    "format_version",
    "name",
    "arch",
    "hparams",
    "state_dict",
    "in_cols",
    "out_cols",
    "mean",
    "std",
    "task",
    "unit",
    "T",
    "provenance",
    "synthetic",
)


class StandardizedModel(nn.Module):
    """Degrees in, per-kg out: ``core((x - mean) / std)``.

    x: (B, T, 10) degrees in IN_COLS order -> (B, T, K). ``mean``/``std`` are buffers, so an
    ONNX export bakes the standardisation into the graph.
    """

    def __init__(self, core: nn.Module, mean, std):
        super().__init__()
        self.core = core
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))  # (10,)
        self.register_buffer("std", torch.as_tensor(np.asarray(std, np.float32)))  # (10,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.core((x - self.mean) / self.std)  # (B, T, 10) -> (B, T, K)


@dataclass(frozen=True, eq=False)
class Bundle:
    """A model and everything needed to serve it (see docs/models.md)."""

    name: str
    arch: str
    hparams: dict
    state_dict: dict
    in_cols: tuple
    out_cols: tuple
    mean: np.ndarray  # (10,) float32, degrees
    std: np.ndarray  # (10,) float32, degrees
    task: str  # "mf" | "jm"
    unit: str  # "N/kg" | "Nm/kg"
    T: int
    provenance: dict = field(default_factory=dict)
    synthetic: bool = False
    #: optional per-phase summary of the training inputs (g2h_edge.gait.quality.input_summary)
    input_summary: dict | None = None

    def __post_init__(self):
        _validate(self)

    def module(self) -> StandardizedModel:
        """The model, float32 on the CPU in eval mode, weights loaded with strict=True."""
        core = build_model(self.arch, self.hparams)
        core.load_state_dict(self.state_dict, strict=True)
        return StandardizedModel(core, self.mean, self.std).float().eval()

    def n_params(self) -> int:
        """Number of scalar parameters in the state_dict (buffers included)."""
        return int(sum(t.numel() for t in self.state_dict.values()))


def bundle_metadata(bundle: Bundle) -> dict:
    """The serving metadata of a bundle as plain values (for engines and ONNX metadata)."""
    return {
        "name": bundle.name,
        "arch": bundle.arch,
        "hparams": dict(bundle.hparams),
        "in_cols": list(bundle.in_cols),
        "out_cols": list(bundle.out_cols),
        "task": bundle.task,
        "unit": bundle.unit,
        "T": bundle.T,
        "mean": [float(v) for v in bundle.mean],
        "std": [float(v) for v in bundle.std],
        "synthetic": bundle.synthetic,
        "provenance": bundle.provenance,
        **({"input_summary": bundle.input_summary} if bundle.input_summary else {}),
    }


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_plain(value, where: str = "value") -> None:
    """Raise ModelError unless ``value`` is made of None/bool/int/float/str/list/dict(str keys)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ModelError(f"{where} has a non-string key {k!r}", reason="bad_bundle")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise ModelError(
        f"{where} holds a {type(value).__name__}, which a bundle cannot store "
        "(use str, int, float, bool, None, lists and dicts)",
        reason="bad_bundle",
    )


def _vector(values, what: str) -> np.ndarray:
    arr = np.asarray(values.numpy() if isinstance(values, torch.Tensor) else values)
    if arr.shape != (N_IN,) or not np.issubdtype(arr.dtype, np.floating):
        raise ModelError(
            f"bundle {what} must be {N_IN} floats, got shape {arr.shape} dtype {arr.dtype}",
            reason="bad_bundle",
        )
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ModelError(f"bundle {what} has non-finite values: {arr.tolist()}", reason="bad_bundle")
    return arr


def _validate(b: Bundle) -> None:
    """Check a bundle's fields against each other and the schema (ModelError on failure)."""
    for key in ("name", "arch", "task", "unit"):
        if not isinstance(getattr(b, key), str) or not getattr(b, key):
            raise ModelError(
                f"bundle {key} must be a non-empty string, got {getattr(b, key)!r}", reason="bad_bundle"
            )
    hp = validate_hparams(b.arch, b.hparams)
    for what in ("in_cols", "out_cols"):
        cols = getattr(b, what)
        if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
            raise ModelError(f"bundle {what} must be a list of strings, got {cols!r}", reason="bad_columns")
    if tuple(b.in_cols) != IN_COLS:
        raise ModelError(
            f"bundle in_cols {list(b.in_cols)} do not match the schema's {list(IN_COLS)} (names and order)",
            reason="bad_columns",
        )
    if b.task not in TASKS:
        raise ModelError(f"bundle task {b.task!r} is not one of {sorted(TASKS)}", reason="bad_bundle")
    if tuple(b.out_cols) != TASKS[b.task]:
        raise ModelError(
            f"bundle out_cols {list(b.out_cols)} do not match the schema's "
            f"{b.task!r} outputs {list(TASKS[b.task])}",
            reason="bad_columns",
        )
    if b.unit != TARGET_UNIT[b.task]:
        raise ModelError(
            f"bundle unit {b.unit!r} is wrong for task {b.task!r} (expected {TARGET_UNIT[b.task]!r})",
            reason="bad_bundle",
        )
    if hp["d_in"] != N_IN or hp["d_out"] != len(b.out_cols):
        raise ModelError(
            f"hparams d_in/d_out {hp['d_in']}/{hp['d_out']} do not match "
            f"{N_IN} inputs and {len(b.out_cols)} outputs",
            reason="bad_bundle",
        )
    if not isinstance(b.T, int) or isinstance(b.T, bool) or b.T != hp["T"]:
        raise ModelError(f"bundle T {b.T!r} must be an int equal to hparams T {hp['T']}", reason="bad_bundle")
    for what in ("mean", "std"):
        object.__setattr__(b, what, _vector(getattr(b, what), what))
    if np.any(b.std <= 0):
        raise ModelError(f"bundle std must be > 0, got {b.std.tolist()}", reason="bad_bundle")
    if not isinstance(b.synthetic, bool):
        raise ModelError(f"bundle synthetic must be a bool, got {b.synthetic!r}", reason="bad_bundle")
    check_plain(b.provenance, "provenance")
    if b.input_summary is not None:
        _check_input_summary(b.input_summary)
    if not isinstance(b.provenance, dict):
        raise ModelError("bundle provenance must be a dict", reason="bad_bundle")
    object.__setattr__(b, "in_cols", tuple(b.in_cols))
    object.__setattr__(b, "out_cols", tuple(b.out_cols))
    object.__setattr__(b, "state_dict", _check_state_dict(b.arch, hp, b.state_dict))


def _check_input_summary(summary) -> None:
    """An input summary must be plain and well-formed (ModelError otherwise)."""
    from g2h_edge.errors import DataError
    from g2h_edge.gait.quality import check_summary

    check_plain(summary, "input_summary")
    try:
        check_summary(summary)
    except DataError as exc:
        raise ModelError(f"bundle {exc}", reason="bad_bundle") from None


def _check_state_dict(arch: str, hparams: dict, state_dict) -> dict:
    """The state_dict as a plain dict of float32 CPU tensors matching the architecture."""
    if not isinstance(state_dict, dict):
        raise ModelError(f"state_dict must be a dict, got {type(state_dict).__name__}", reason="bad_bundle")
    expected = {k: tuple(v.shape) for k, v in build_model(arch, hparams).state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{arch} state_dict does not match the architecture: missing "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}",
            reason="bad_state_dict",
        )
    out = {}
    for key, shape in expected.items():
        t = state_dict[key]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ModelError(
                f"state_dict[{key!r}] must be a float tensor, got {type(t).__name__}", reason="bad_state_dict"
            )
        if tuple(t.shape) != shape:
            raise ModelError(
                f"state_dict[{key!r}] has shape {tuple(t.shape)}, the {arch} "
                f"architecture with these hparams needs {shape}",
                reason="shape_mismatch",
            )
        if not bool(torch.isfinite(t).all()):
            raise ModelError(f"state_dict[{key!r}] has non-finite values", reason="bad_state_dict")
        out[key] = t.detach().to("cpu", torch.float32).contiguous()
    return out


def save_bundle(bundle: Bundle, path) -> Path:
    """Write ``bundle`` to ``path`` (atomically: a temp file then rename); returns the path."""
    path = Path(path)
    payload = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "name": bundle.name,
        "arch": bundle.arch,
        "hparams": dict(bundle.hparams),
        "state_dict": {k: v.clone() for k, v in bundle.state_dict.items()},
        "in_cols": list(bundle.in_cols),
        "out_cols": list(bundle.out_cols),
        "mean": torch.from_numpy(bundle.mean.copy()),
        "std": torch.from_numpy(bundle.std.copy()),
        "task": bundle.task,
        "unit": bundle.unit,
        "T": bundle.T,
        "provenance": bundle.provenance,
        "synthetic": bundle.synthetic,
        CONTENT_KEY: _content_sha256(bundle),  # verified by load_bundle (integrity.py)
    }
    if bundle.input_summary is not None:  # optional, additive: older readers ignore it
        payload["input_summary"] = bundle.input_summary
    return write_atomic(path, lambda tmp: torch.save(payload, tmp), error=ModelError, what="bundle")


_REFUSED_RE = (
    re.compile(r"GLOBAL ([\w.]+) was not an allowed global"),
    re.compile(r"but got <class '([\w.]+)'>"),
)
_DETAIL_RE = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")


class UnsafePickleError(ModelError):
    """The weights-only unpickler refused a global (``what`` names it)."""

    reason = "unsafe_pickle"

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what


def safe_torch_load(path: Path, kind: str, allowed=()):
    """``torch.load(weights_only=True)`` on CPU with only ``allowed`` extra globals.

    Raises ModelError (reason missing_file/corrupt) or :class:`UnsafePickleError` naming the
    global the file needed; no pickle code from the file ever runs.
    """
    if not path.is_file():
        raise ModelError(f"{kind} file {path} does not exist", reason="missing_file")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise ModelError(
            f"{path} is not a {kind} (not a torch zip archive: corrupt, truncated or another kind of file)",
            reason="corrupt",
        )
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        for pattern in _REFUSED_RE:
            match = pattern.search(text)
            if match and match.group(1).strip():
                what = match.group(1).strip()
                raise UnsafePickleError(f"{path} needs a non-allow-listed global {what}", what) from exc
        detail = _DETAIL_RE.search(text)
        detail = detail.group(1).strip() if detail else text.strip()[:200]
        raise ModelError(
            f"{path} is not a readable {kind} (corrupt pickle data: {detail})", reason="corrupt"
        ) from exc
    except Exception as exc:  # zip/record errors of a truncated or damaged archive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(
            f"{path} is not a readable {kind} (corrupt or truncated?): {first}", reason="corrupt"
        ) from exc


def _read(path: Path) -> dict:
    try:
        obj = safe_torch_load(path, "bundle")
    except UnsafePickleError as exc:
        raise ModelError(
            f"{path} is not a g2h-edge bundle: it needs the pickle global "
            f"{exc.what}, which bundles never use (a published checkpoint? "
            "run `g2h-edge models import` on it)",
            reason="not_a_bundle",
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG:
        tag = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        hint = (
            " (it looks like a published checkpoint: run `g2h-edge models import`)"
            if isinstance(obj, dict) and "model_type" in obj
            else ""
        )
        raise ModelError(
            f"{path} is not a g2h-edge bundle: format tag {tag!r}, expected {FORMAT_TAG!r}{hint}",
            reason="not_a_bundle",
        )
    return obj


def load_bundle(path) -> Bundle:
    """Read and validate a bundle written by :func:`save_bundle` (ModelError on any problem)."""
    path = Path(path)
    obj = _read(path)
    version = obj.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelError(
            f"{path}: bundle format version {version!r} is not supported (this "
            f"g2h-edge reads versions 1..{FORMAT_VERSION}; upgrade g2h-edge)",
            reason="bad_version",
        )
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise ModelError(f"{path}: bundle is missing keys {missing}", reason="missing_keys")
    try:
        bundle = Bundle(
            name=obj["name"],
            arch=obj["arch"],
            hparams=obj["hparams"],
            state_dict=obj["state_dict"],
            in_cols=obj["in_cols"],
            out_cols=obj["out_cols"],
            mean=obj["mean"],
            std=obj["std"],
            task=obj["task"],
            unit=obj["unit"],
            T=obj["T"],
            provenance=obj["provenance"],
            synthetic=obj["synthetic"],
            input_summary=obj.get("input_summary"),
        )
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}", reason=exc.reason) from exc
    check_content(
        obj.get(CONTENT_KEY),
        _content_sha256(bundle),
        path=path,
        kind="bundle",
        fix="re-import or re-train it (`g2h-edge models import`, `g2h-edge train`) or restore a good copy",
        add="re-save it with this g2h-edge (save_bundle(load_bundle(path), path)) to add one",
    )
    return bundle


def _content_sha256(bundle: Bundle) -> str:
    """The content hash of a bundle (state dict + :data:`HASHED_FIELDS`)."""
    return bundle_content_sha256(bundle.state_dict, {k: getattr(bundle, k) for k in HASHED_FIELDS})
