"""Export a model bundle to ONNX (degrees in, per-kg out), verified before it is written.

    report = export_onnx(bundle_or_path, "model.onnx", batch="dynamic", opset=17,
                         precision="fp32")

What happens, in order:
1. the bundle's model is traced with PyTorch's fused attention fast path disabled: in its
   ``graph="static"`` form (:mod:`g2h_edge.export.graphs`: standardisation, positions and the
   attention scale folded into the weights, constant T; the default, used for the
   Transformer) or as the bundle's own :class:`~g2h_edge.models.StandardizedModel`
   (``graph="generic"``);
2. the graph is checked by ``onnx.checker`` (full check, with shape inference), refused if it
   holds a Loop/Scan/If, and its op types are checked against TensorRT 10.3 and 10.15;
3. for bf16/int8 the graph is converted (see :mod:`g2h_edge.export.precision`);
4. ONNX Runtime runs it at batch 1 and 64 (or the fixed batch) next to the bundle's own
   torch model (whatever form was traced):
   fp32 must agree within ``tol`` (1e-4), the other precisions within a documented bound;
5. the bundle's metadata, the precision, opset, exporter, TensorRT check and measured
   max abs difference go into ``metadata_props``, and the file is written atomically.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge import __version__
from g2h_edge.errors import ExportError
from g2h_edge.export.cycles import parity_like_cycles
from g2h_edge.export.graphs import GRAPHS, export_module
from g2h_edge.export.trt_ops import DISCOURAGED_OPS, TRT_TARGETS, check_trt_ops, graph_op_types
from g2h_edge.fsutil import write_atomic
from g2h_edge.integrity import CONTENT_KEY, onnx_graph_sha256

__all__ = [
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PRECISIONS",
    "EXPORTERS",
    "ExportReport",
    "export_onnx",
    "onnx_metadata",
    "read_metadata",
    "ACCURACY_BOUND",
]

FORMAT_TAG = "g2h-edge-onnx"
FORMAT_VERSION = 1
INPUT_NAME = "x_deg"  # (B, T, 10) float32, degrees
OUTPUT_NAME = "y_per_kg"  # (B, T, K) float32, N/kg or Nm/kg
PRECISIONS = ("fp32", "bf16", "int8")
EXPORTERS = ("torchscript", "dynamo")
#: max abs difference to the torch model allowed per precision, as a fraction of the largest
#: |output| on the verification cycles (fp32 uses the absolute ``tol`` instead)
ACCURACY_BOUND = {"bf16": 0.05, "int8": 0.15}


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    sha256: str
    precision: str
    opset: int
    exporter: str
    batch: str
    graph: str
    op_types: tuple[str, ...]
    n_nodes: int
    max_abs_diff: float  # ONNX Runtime vs torch, verification cycles
    trt_ok: dict = field(default_factory=dict)  # TensorRT version -> all ops parse
    trt_unsupported: dict = field(default_factory=dict)


def _as_bundle(bundle):
    """(Bundle, sha256 of its file or "unsaved") from a Bundle or a bundle path."""
    from g2h_edge.models import Bundle, file_sha256, load_bundle

    if isinstance(bundle, Bundle):
        return bundle, "unsaved"
    if isinstance(bundle, (str, os.PathLike)):
        return load_bundle(bundle), file_sha256(bundle)
    raise ExportError(
        f"export needs a Bundle or a bundle path, got {type(bundle).__name__}", reason="bad_argument"
    )


def check_choice(name: str, value, choices) -> None:
    """ExportError (``bad_argument``) unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ExportError(f"{name} {value!r} is not one of {list(choices)}", reason="bad_argument")


def _check_args(batch, opset, precision, exporter, graph) -> None:
    check_choice("graph", graph, GRAPHS)
    if not (
        batch == "dynamic" or (isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= 4096)
    ):
        raise ExportError(
            f"batch must be 'dynamic' or an int in 1..4096, got {batch!r}", reason="bad_argument"
        )
    if not isinstance(opset, int) or isinstance(opset, bool) or not 17 <= opset <= 20:
        raise ExportError(
            f"opset {opset!r} is not supported: use 17..20 (17 has native "
            "LayerNormalization; TensorRT 10.3 parses up to 20)",
            reason="bad_argument",
        )
    check_choice("precision", precision, PRECISIONS)
    check_choice("exporter", exporter, EXPORTERS)
    if exporter == "dynamo" and opset < 18:
        raise ExportError("the dynamo exporter needs opset >= 18", reason="bad_argument")


@contextlib.contextmanager
def _no_mha_fastpath():
    """Disable nn.MultiheadAttention's fused fast path (it does not trace to ONNX)."""
    import torch

    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def _trace(module, sample, path: Path, *, batch, opset: int, exporter: str) -> None:
    """Run torch.onnx.export of ``module`` on ``sample`` (B, T, 10) into ``path``."""
    import torch

    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    with _no_mha_fastpath(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            torch.onnx.export(
                module,
                (sample,),
                str(path),
                dynamo=False,
                dynamic_axes=axes if batch == "dynamic" else None,
                **kwargs,
            )
        else:
            shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if batch == "dynamic" else None
            prog = torch.onnx.export(
                module, (sample,), dynamo=True, dynamic_shapes=shapes, verbose=False, **kwargs
            )
            prog.save(str(path))


def onnx_metadata(
    bundle, *, bundle_sha256: str, precision: str, opset: int, exporter: str, batch, graph: str = "generic"
) -> dict[str, str]:
    """The metadata_props of an export: every value JSON-encoded (strings, lists, dicts)."""
    from g2h_edge.models import bundle_metadata

    meta = bundle_metadata(bundle)
    prov = bundle.provenance or {}
    meta.update(
        format=FORMAT_TAG,
        format_version=FORMAT_VERSION,
        precision=precision,
        opset=opset,
        exporter=exporter,
        batch=batch,
        graph=graph,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        bundle_sha256=bundle_sha256,
        source_sha256=str(prov.get("source_sha256", "")),
        g2h_edge_version=__version__,
        exported_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return {k: json.dumps(v, sort_keys=True) for k, v in meta.items()}


def read_metadata(model) -> dict:
    """Decode the metadata_props of an ONNX model (ModelProto) written by :func:`export_onnx`."""
    out = {}
    for prop in model.metadata_props:
        try:
            out[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            out[prop.key] = prop.value  # foreign metadata: kept as the raw string
    return out


def _set_metadata(model, meta: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in sorted(meta.items()):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name, model.producer_version = "g2h-edge", __version__
    model.doc_string = (
        f"g2h-edge export of {json.loads(meta['name'])}: input {INPUT_NAME} "
        "(B, T, 10) degrees, output per kg; see metadata_props"
    )


def _ort_run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def check_parity(
    run,
    module,
    x: np.ndarray,
    batches,
    precision: str,
    tol: float,
    *,
    what: str = "ONNX Runtime",
    fail_reason: str = "ort_failed",
) -> float:
    """Max |run(xb) - module(xb)| over the batch sizes ``batches`` (cycles of ``x`` repeated
    to fill each); ExportError when ``run`` fails, returns a wrong shape or non-finite
    values, or differs by more than ``tol`` (fp32) or ``ACCURACY_BOUND[precision]`` times
    the largest |output| (other precisions). ``run``: float32 (B, T, 10) -> (B, T, K);
    ``what`` names it in messages, ``fail_reason`` is the reason code when it raises."""
    import torch

    worst, scale = 0.0, 0.0
    for b in batches:
        xb = np.ascontiguousarray(np.resize(x, (b,) + x.shape[1:]), dtype=np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(xb)).float().numpy()
        try:
            got = np.asarray(run(xb))
        except Exception as exc:
            raise ExportError(
                f"{what} could not run the exported model at batch {b}: "
                f"{(str(exc).splitlines() or [repr(exc)])[0][:300]}",
                reason=fail_reason,
            ) from exc
        if got.shape != ref.shape or not np.all(np.isfinite(got)):
            raise ExportError(
                f"{what} output at batch {b} has shape {got.shape} "
                f"(expected {ref.shape}) or non-finite values",
                reason="verify_failed",
            )
        worst = max(worst, float(np.max(np.abs(got - ref))))
        scale = max(scale, float(np.max(np.abs(ref))))
    limit = tol if precision == "fp32" else ACCURACY_BOUND[precision] * max(scale, 1e-6)
    if not worst <= limit:
        raise ExportError(
            f"{precision} export differs from the torch model by {worst:.3g} "
            f"(limit {limit:.3g}); not written",
            reason="parity_failed",
        )
    return worst


def _check_graph(model) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError, shape inference errors
        raise ExportError(
            f"the exported graph fails the ONNX checker: {str(exc).splitlines()[0][:300]}",
            reason="checker_failed",
        ) from exc
    loops = sorted({op for _, op in graph_op_types(model)} & DISCOURAGED_OPS)
    if loops:
        raise ExportError(
            f"the exported graph holds control-flow ops {loops}; TensorRT "
            "handles them badly and the project refuses them",
            reason="control_flow",
        )


def export_onnx(
    bundle,
    path,
    *,
    batch="dynamic",
    opset: int = 17,
    precision: str = "fp32",
    exporter: str = "torchscript",
    tol: float = 1e-4,
    int8_mode: str = "fused",
    verify_batches=(1, 64),
    graph: str = "static",
) -> ExportReport:
    """Export ``bundle`` (a Bundle or a bundle path) to ``path`` and verify it (see module doc).

    ``verify_batches`` are the batch sizes of the ONNX Runtime vs torch check of a dynamic
    export (a fixed-batch export is checked at its batch). ``graph``: "static" (the fast
    form, :mod:`g2h_edge.export.graphs`; architectures without one fall back to generic)
    or "generic". Raises ExportError (nothing
    written) when tracing, the checker, ONNX Runtime or the parity check fails.
    """
    import onnx

    from g2h_edge.export.precision import convert_precision

    _check_args(batch, opset, precision, exporter, graph)
    bundle, bundle_sha = _as_bundle(bundle)
    path = Path(path)
    module = bundle.module()  # the reference the export is checked against
    traced, graph = export_module(bundle, graph, module=module)
    x = parity_like_cycles(bundle.mean, bundle.std, 9, bundle.T, seed=0)  # (9, T, 10)
    sample = x[:2] if batch == "dynamic" else np.resize(x, (batch,) + x.shape[1:])
    with tempfile.TemporaryDirectory(prefix="g2h-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            import torch

            _trace(
                traced,
                torch.from_numpy(np.ascontiguousarray(sample)),
                raw,
                batch=batch,
                opset=opset,
                exporter=exporter,
            )
            model = onnx.load(str(raw))
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(
                f"torch.onnx.export ({exporter}) failed for {bundle.arch} "
                f"{bundle.name!r}: {str(exc).splitlines()[0][:300]}",
                reason="trace_failed",
            ) from exc
        _check_graph(model)
        if precision != "fp32":
            calib = parity_like_cycles(bundle.mean, bundle.std, 32, bundle.T, seed=1)
            model = convert_precision(model, precision, calib=calib, int8_mode=int8_mode, workdir=Path(tmp))
            _check_graph(model)
    trt = {v: check_trt_ops(model, v) for v in TRT_TARGETS}
    batches = tuple(verify_batches) if batch == "dynamic" else (batch,)
    unlabelled = model.SerializeToString()
    diff = check_parity(lambda xb: _ort_run(unlabelled, xb), module, x, batches, precision, tol)
    meta = onnx_metadata(
        bundle,
        bundle_sha256=bundle_sha,
        precision=precision,
        opset=opset,
        exporter=exporter,
        batch=batch,
        graph=graph,
    )
    meta["verify_max_abs_diff"] = json.dumps(diff)
    meta["trt_ops_ok"] = json.dumps({v: r.ok for v, r in trt.items()}, sort_keys=True)
    meta[CONTENT_KEY] = json.dumps(onnx_graph_sha256(model))  # verified by the ONNX engine
    _set_metadata(model, meta)
    data = model.SerializeToString()
    write_atomic(path, data, error=ExportError, what="ONNX model")
    return ExportReport(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        precision=precision,
        opset=opset,
        exporter=exporter,
        batch=str(batch),
        graph=graph,
        op_types=tuple(sorted({op for _, op in graph_op_types(model)})),
        n_nodes=len(model.graph.node),
        max_abs_diff=diff,
        trt_ok={v: r.ok for v, r in trt.items()},
        trt_unsupported={v: r.unsupported for v, r in trt.items()},
    )
