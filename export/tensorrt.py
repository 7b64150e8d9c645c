"""Build a TensorRT plan from an exported ONNX model (TensorRT 10.x Python API).

    build_plan("model.onnx", "model.plan", fp16=True, min_batch=1, opt_batch=8,
               max_batch=64, workspace_mb=1024)

writes ``model.plan`` and ``model.plan.json`` (the ONNX metadata plus TensorRT version, GPU
name, compute capability, precision, batch profile, build time and the plan's sha256). A plan
only runs on the TensorRT version and GPU model that built it: build it on the target (a
Jetson builds its own; see docs/jetson.md).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from g2h_edge.engines.tensorrt_engine import (
    PLAN_FORMAT_TAG,
    cuda_device_info,
    require_tensorrt,
    sidecar_path,
)
from g2h_edge.engines.trust import sign_sidecar
from g2h_edge.errors import ExportError
from g2h_edge.export.onnx import FORMAT_TAG as ONNX_FORMAT_TAG
from g2h_edge.export.onnx import read_metadata
from g2h_edge.export.trt_ops import check_trt_ops
from g2h_edge.fsutil import write_atomic

__all__ = ["PlanReport", "build_plan", "check_profile"]


@dataclass(frozen=True)
class PlanReport:
    """What :func:`build_plan` wrote."""

    plan: Path
    sidecar: Path
    sha256: str
    build_s: float
    metadata: dict


def check_profile(min_batch: int, opt_batch: int, max_batch: int, workspace_mb: int) -> None:
    """ExportError unless 1 <= min <= opt <= max and workspace_mb >= 16."""
    vals = {
        "min_batch": min_batch,
        "opt_batch": opt_batch,
        "max_batch": max_batch,
        "workspace_mb": workspace_mb,
    }
    for key, v in vals.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ExportError(f"{key} must be a positive int, got {v!r}", reason="bad_argument")
    if not min_batch <= opt_batch <= max_batch:
        raise ExportError(
            f"batch profile must satisfy min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}",
            reason="bad_argument",
        )
    if workspace_mb < 16:
        raise ExportError(f"workspace_mb {workspace_mb} is too small (>= 16)", reason="bad_argument")


def _load_onnx(onnx_path: Path):
    import onnx

    try:
        data = onnx_path.read_bytes()
        model = onnx.load_from_string(data)
    except Exception as exc:
        raise ExportError(
            f"{onnx_path} is not a readable ONNX model: {str(exc).splitlines()[0][:200]}", reason="bad_onnx"
        ) from exc
    meta = read_metadata(model)
    if meta.get("format") != ONNX_FORMAT_TAG:
        raise ExportError(
            f"{onnx_path} is not a g2h-edge ONNX export (no format tag in its "
            "metadata): export it with `g2h-edge export onnx`",
            reason="bad_onnx",
        )
    if meta.get("precision", "fp32") != "fp32":
        raise ExportError(
            f"{onnx_path} is a {meta.get('precision')} export; TensorRT plans "
            "are built from the fp32 export (add --fp16 for half precision)",
            reason="bad_onnx",
        )
    return data, model, meta


def build_plan(
    onnx_path,
    plan_path,
    *,
    fp16: bool = False,
    min_batch: int = 1,
    opt_batch: int = 1,
    max_batch: int = 64,
    workspace_mb: int = 1024,
    device: int = 0,
) -> PlanReport:
    """Build ``plan_path`` (+ sidecar) from a g2h-edge fp32 ONNX export; see module doc."""
    check_profile(min_batch, opt_batch, max_batch, workspace_mb)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    data, model, meta = _load_onnx(onnx_path)
    trt = require_tensorrt()
    ops = check_trt_ops(model, ".".join(trt.__version__.split(".")[:2]))
    if not ops.ok:
        raise ExportError(
            f"{onnx_path} uses ops TensorRT {trt.__version__} cannot parse: "
            f"{list(ops.unsupported)} (opset {ops.opset})",
            reason="trt_ops",
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # explicit batch: the default (and only) mode in TensorRT 10; TensorRT 8.x needs the flag
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(
            f"TensorRT's ONNX parser rejected {onnx_path}: {'; '.join(errors)[:500]}",
            reason="trt_parse_failed",
        )
    inp = network.get_input(0)
    T, c = int(meta["T"]), len(meta["in_cols"])
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        if not getattr(builder, "platform_has_fast_fp16", True):
            raise ExportError("this GPU has no fast FP16; build without --fp16", reason="no_fp16")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (min_batch, T, c), (opt_batch, T, c), (max_batch, T, c))
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if serialized is None:
        raise ExportError(
            f"TensorRT failed to build a plan from {onnx_path} (see the TensorRT log above)",
            reason="trt_build_failed",
        )
    plan = bytes(serialized)
    gpu, cc = cuda_device_info(device)
    side = dict(meta)
    side.update(
        format=PLAN_FORMAT_TAG,
        onnx_format=meta.get("format"),
        onnx_sha256=hashlib.sha256(data).hexdigest(),
        tensorrt_version=trt.__version__,
        gpu_name=gpu,
        compute_capability=cc,
        precision="fp16" if fp16 else "fp32",
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_mb=workspace_mb,
        build_s=round(build_s, 3),
        plan_sha256=hashlib.sha256(plan).hexdigest(),
        built_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    side = sign_sidecar(side)  # this user's build: the engine refuses others' (trust.py)
    write_atomic(plan_path, plan, error=ExportError, what="TensorRT plan")
    write_atomic(
        sidecar_path(plan_path),
        json.dumps(side, indent=1, sort_keys=True).encode(),
        error=ExportError,
        what="plan sidecar",
    )
    return PlanReport(
        plan=plan_path,
        sidecar=sidecar_path(plan_path),
        sha256=side["plan_sha256"],
        build_s=build_s,
        metadata=side,
    )
