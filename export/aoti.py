"""Compile a model bundle ahead of time for this CPU (PyTorch AOTInductor).

    report = export_aoti("Transformer_MF60.pt", "Transformer_MF60.pt2", precision="bf16",
                         mode="max-autotune", max_batch=64, threads=2)

writes ``Transformer_MF60.pt2`` (an AOTInductor package: a shared library with the model's
kernels and frozen weights) and ``Transformer_MF60.pt2.json`` (its sidecar, see
:data:`g2h_edge.engines.aoti_engine.SIDECAR_KEYS`). The runtime serves it with
:class:`~g2h_edge.engines.aoti_engine.AotiEngine` (``--engine FILE.pt2``): no Python graph,
no compiler and no guards at serving time, the lowest per-call cost of the CPU engines.

What happens, in order:
1. the bundle's module is put in its serving form: the Transformer folded
   (:mod:`g2h_edge.models.folded`, fused scaled-dot-product attention), the Mamba with its
   chunked scan (run in float32 inside a bf16 model); float32 in and out, ``precision``
   inside;
2. ``torch.export`` traces it with a dynamic batch axis (1..``max_batch``);
3. AOTInductor compiles it with frozen weights (``mode="max-autotune"`` benchmarks GEMM
   kernels, AMX/AVX-512 templates included, and keeps the fastest);
4. the package is loaded and run at batch 1 and ``min(64, max_batch)`` next to the bundle's own
   torch module: fp32 must agree within ``tol`` (1e-4), bf16 within 5 % of the largest
   |output| (the ONNX bf16 bound);
5. the package and its sidecar are written atomically.

A package is machine code for the CPU that built it: its kernels use that CPU's instruction
set (AMX, AVX-512) and the thread count they were compiled for, and it loads only in the same
PyTorch version. The sidecar records all three and the engine refuses a package that cannot
run here, with a message to rebuild it on the target (like a TensorRT plan).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge import __version__
from g2h_edge.engines.aoti_engine import (
    AOTI_FORMAT_TAG,
    AOTI_MODES,
    AOTI_PRECISIONS,
    cpu_isa_flags,
    load_package,
    sidecar_path,
)
from g2h_edge.engines.trust import sign_sidecar
from g2h_edge.errors import ExportError
from g2h_edge.export.cycles import parity_like_cycles
from g2h_edge.export.onnx import _as_bundle, check_choice, check_parity
from g2h_edge.fsutil import write_atomic

__all__ = ["AotiReport", "export_aoti", "serving_module"]

#: largest batch axis a package may declare
MAX_BATCH_LIMIT = 4096


@dataclass(frozen=True)
class AotiReport:
    """What :func:`export_aoti` wrote and measured."""

    path: Path
    sidecar: Path
    sha256: str
    precision: str
    mode: str
    max_batch: int
    threads: int
    build_s: float
    max_abs_diff: float
    metadata: dict


def serving_module(bundle, precision: str):
    """The bundle's module in the form that is compiled: float32 (B, T, 10) degrees in,
    float32 (B, T, K) per kg out, ``precision`` inside."""
    import torch

    from g2h_edge.engines.torch_engine import _CastIO
    from g2h_edge.models.folded import FoldedTransformer

    module = bundle.module()
    if bundle.arch == "transformer":
        module = FoldedTransformer(module, bundle.T, attention="sdpa")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return _CastIO(module.to(dtype), dtype).eval()


def _check_args(bundle, precision, mode, max_batch, threads) -> None:
    check_choice("precision", precision, AOTI_PRECISIONS)
    check_choice("mode", mode, AOTI_MODES)
    for key, v, hi in (("max_batch", max_batch, MAX_BATCH_LIMIT), ("threads", threads, 256)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
            raise ExportError(f"{key} must be an int in 1..{hi}, got {v!r}", reason="bad_argument")
    if bundle.arch == "lstm":
        raise ExportError(
            f"{bundle.name!r} is an LSTM: its recurrence is one fused kernel "
            "already, AOT compilation gains nothing; export it to ONNX",
            reason="unsupported_arch",
        )


def _compile(module, sample, package: Path, *, mode: str, max_batch: int) -> None:
    import torch

    dims = {"x": {0: torch.export.Dim("batch", min=1, max=max_batch)}}
    configs = {
        "freezing": True,  # weights are constants: prepacked for AMX
        "autotune_num_choices_displayed": 0,
    }  # no autotune tables on stderr
    if hasattr(torch._inductor.config, "max_autotune_report_choices_stats"):
        configs["max_autotune_report_choices_stats"] = False
    if mode == "max-autotune":
        configs["max_autotune"] = True
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (sample,), dynamic_shapes=dims)
        torch._inductor.aoti_compile_and_package(program, package_path=str(package), inductor_configs=configs)


def _run_package(runner, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return runner(torch.from_numpy(x)).float().numpy()


def export_aoti(
    bundle,
    path,
    *,
    precision: str = "bf16",
    mode: str = "max-autotune",
    max_batch: int = 64,
    threads: int | None = None,
    tol: float = 1e-4,
) -> AotiReport:
    """Compile ``bundle`` (a Bundle or a bundle path) into the package ``path`` (see module
    doc). ``threads``: intra-op threads the kernels are compiled for (None: PyTorch's
    current setting, one per core by default). Raises ExportError (nothing written) when
    tracing, compiling or the parity check fails."""
    import torch

    bundle, bundle_sha = _as_bundle(bundle)
    threads = torch.get_num_threads() if threads is None else threads
    _check_args(bundle, precision, mode, max_batch, threads)
    path = Path(path)
    if path.suffix != ".pt2":
        raise ExportError(
            f"an AOTInductor package must be named *.pt2 (the runtime picks "
            f"the engine by suffix), got {path.name}",
            reason="bad_argument",
        )
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the generated kernels hard-code this thread count
    try:
        module = serving_module(bundle, precision)
        reference = bundle.module().eval()
        x = parity_like_cycles(bundle.mean, bundle.std, 9, bundle.T, seed=0)  # (9, T, 10)
        with tempfile.TemporaryDirectory(prefix="g2h-aoti-") as tmp:
            package = Path(tmp) / "model.pt2"
            t0 = time.perf_counter()
            try:
                _compile(
                    module,
                    torch.from_numpy(np.ascontiguousarray(x[:2])),
                    package,
                    mode=mode,
                    max_batch=max_batch,
                )
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
                raise ExportError(
                    f"AOTInductor could not compile {bundle.arch} "
                    f"{bundle.name!r} ({first}); it needs a C++ compiler "
                    "(g++) and this PyTorch's headers",
                    reason="compile_failed",
                ) from exc
            build_s = time.perf_counter() - t0
            try:
                runner, extracted = load_package(package)  # a private folder, removed below
            except Exception as exc:
                raise ExportError(
                    f"the compiled package does not load: {exc}", reason="compile_failed"
                ) from exc
            try:
                diff = check_parity(
                    lambda xb: _run_package(runner, xb),
                    reference,
                    x,
                    sorted({1, min(64, max_batch)}),
                    precision,
                    tol,
                    what="the compiled package",
                    fail_reason="run_failed",
                )
            finally:
                shutil.rmtree(extracted, ignore_errors=True)
            data = package.read_bytes()
    finally:
        torch.set_num_threads(before)
    from g2h_edge.models import bundle_metadata

    meta = bundle_metadata(bundle)
    prov = bundle.provenance or {}
    meta.update(
        format=AOTI_FORMAT_TAG,
        precision=precision,
        mode=mode,
        min_batch=1,
        max_batch=max_batch,
        threads=threads,
        torch_version=torch.__version__,
        machine=platform.machine(),
        cpu_flags=sorted(cpu_isa_flags()),
        package_sha256=hashlib.sha256(data).hexdigest(),
        bundle_sha256=bundle_sha,
        source_sha256=str(prov.get("source_sha256", "")),
        verify_max_abs_diff=diff,
        build_s=round(build_s, 1),
        g2h_edge_version=__version__,
        built_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    meta = sign_sidecar(meta)  # this user's build: the engine refuses others' (trust.py)
    write_atomic(path, data, error=ExportError, what="AOTInductor package")
    side = sidecar_path(path)
    write_atomic(
        side, json.dumps(meta, indent=1, sort_keys=True).encode(), error=ExportError, what="package sidecar"
    )
    return AotiReport(
        path=path,
        sidecar=side,
        sha256=meta["package_sha256"],
        precision=precision,
        mode=mode,
        max_batch=max_batch,
        threads=threads,
        build_s=build_s,
        max_abs_diff=diff,
        metadata=meta,
    )
