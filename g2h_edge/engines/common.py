"""What every backend shares: the option base class, chunked batching, sidecar checks.

Each backend has one frozen options dataclass (``TorchOptions``, ``OnnxOptions``,
``AotiOptions``, ``TensorRTOptions``) deriving from :class:`EngineOptions`, whose
``__post_init__`` checks ``threads`` once for all of them. :func:`run_in_chunks` is the one
chunk-and-pad loop (compiled torch buckets, fixed-batch ONNX, AOTInductor and TensorRT batch
ranges). :func:`read_json_sidecar` and :func:`check_built_here` are the one reader and the
one checker of the ``<file>.json`` sidecars of built files (``.pt2`` and ``.plan``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from g2h_edge.errors import EngineError

__all__ = [
    "EngineOptions",
    "check_threads",
    "make_options",
    "torch_flags",
    "run_in_chunks",
    "sidecar_path",
    "read_json_sidecar",
    "check_built_here",
]


def check_threads(threads) -> None:
    """EngineError unless ``threads`` is None or a positive int (bools refused)."""
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise EngineError(f"threads must be a positive int, got {threads!r}", reason="bad_option")


@dataclass(frozen=True)
class EngineOptions:
    """Options every backend accepts. ``threads``: intra-op CPU threads (None: the backend's
    default; a TensorRT plan runs on the GPU and ignores it)."""

    threads: int | None = None

    def __post_init__(self):
        check_threads(self.threads)


def make_options(options_cls, kwargs: dict, what: str):
    """``options_cls(**kwargs)``, with an unknown key an EngineError naming the valid ones
    (``what`` names the file or backend in the message)."""
    names = [f.name for f in fields(options_cls)]
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise EngineError(
            f"option(s) {unknown} do not apply to {what} ({options_cls.__name__} takes {names})",
            reason="bad_option",
        )
    return options_cls(**kwargs)


def torch_flags(path, precision: str | None, compile: str | None) -> dict:
    """The keywords of the CLI's ``--torch-precision``/``--torch-compile`` for ``path``:
    TorchOptions fields for a ``.pt`` bundle, nothing for other files when they are unset,
    an EngineError when they are set for another kind of file."""
    if Path(path).suffix.lower() == ".pt":
        return {"precision": precision or "fp32", "compile": compile}
    if precision not in (None, "fp32") or compile:
        raise EngineError(
            f"torch precision/compile options apply to .pt bundles, not {Path(path).name}",
            reason="bad_option",
        )
    return {}


def run_in_chunks(run_once, x: np.ndarray, *, max_batch: int, pad_to=None) -> np.ndarray:
    """Run ``run_once`` on chunks of at most ``max_batch`` cycles of ``x`` (B, T, C),
    C-contiguous as :meth:`Engine.infer` passes it, and concatenate the outputs (B, T, K).
    ``pad_to(n)`` gives the batch a chunk of ``n`` cycles runs at (>= n; None: n): the
    chunk is padded with copies of its last cycle (any finite input would do, rows are
    independent) and the padding's outputs are dropped. A batch that fits as it is costs
    one call (the serving case)."""
    n = x.shape[0]
    if n <= max_batch and (pad_to is None or pad_to(n) <= n):
        return run_once(x)
    out = []
    for start in range(0, n, max_batch):
        chunk = x[start : start + max_batch]  # (m, T, C), m <= max_batch, still C-contiguous
        m = chunk.shape[0]
        b = m if pad_to is None else int(pad_to(m))
        if b > m:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - m, axis=0)], axis=0)
        out.append(np.asarray(run_once(chunk))[:m])
    return out[0] if len(out) == 1 else np.concatenate(out, axis=0)


def sidecar_path(path) -> Path:
    """``model.plan`` -> ``model.plan.json`` (the sidecar of a built engine file)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_json_sidecar(path, *, keys, tag: str, kind: str, rebuild: str) -> dict:
    """The JSON sidecar of the engine file ``path``: a dict holding every key of ``keys``
    with ``format == tag``, or EngineError (``missing_sidecar`` naming the ``rebuild``
    command, or ``bad_sidecar``). ``kind`` names the file in messages."""
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise EngineError(
            f"{kind} {path} has no sidecar {side.name}: rebuild it with `{rebuild}` on the target",
            reason="missing_sidecar",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"sidecar {side} is not readable JSON: {exc}", reason="bad_sidecar") from exc
    missing = [k for k in keys if k not in meta] if isinstance(meta, dict) else ["all"]
    if missing or meta.get("format") != tag:
        raise EngineError(
            f"sidecar {side} is not a g2h-edge {kind} sidecar (missing "
            f"{missing}, format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r})",
            reason="bad_sidecar",
        )
    return meta


def check_built_here(
    problems: list[str],
    *,
    kind: str,
    name: str,
    why: str,
    rebuild: str,
    reason: str,
    recorded_sha256: str,
    sha256: str,
    also: str = "",
) -> None:
    """The one check of a built file against its sidecar: EngineError ``reason`` listing
    ``problems`` (what was built for another place), then ``corrupt`` when the file's
    sha256 differs from the one its sidecar recorded. ``why`` explains what ties the file
    to its build, ``rebuild`` is the command that rebuilds it on the target, ``also`` an
    alternative appended to the message."""
    if problems:
        raise EngineError(
            f"{kind} {name} cannot run here: {'; '.join(problems)}. {why}: "
            f"rebuild it on the target with `{rebuild}`{also}",
            reason=reason,
        )
    if str(recorded_sha256) != str(sha256):
        raise EngineError(
            f"{kind} {name} does not match its sidecar (sha256 {sha256[:12]}... "
            f"vs {str(recorded_sha256)[:12]}...): the file was changed or "
            "truncated; rebuild it",
            reason="corrupt",
        )
