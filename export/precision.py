"""Reduced-precision variants of an exported fp32 graph.

- ``int8``: MatMul weights in int8.
  ``int8_mode="fused"`` (default) rewrites every MatMul with a constant 2-D weight (and the
  bias Add that follows it) into ONNX Runtime's ``com.microsoft.DynamicQuantizeMatMul``
  with per-output-channel symmetric 8-bit weights stored as uint8 (zero point 128; int8
  weights saturate on AVX2-only CPUs, see :func:`to_int8_fused`): one kernel quantises the
  activations per call, multiplies in 8-bit integers and applies scale and bias. It runs
  on ONNX Runtime only (contrib op). ``int8_mode="dynamic"`` uses ``onnxruntime.quantization``
  (per-tensor weights) and quantises activations per call
  (DynamicQuantizeLinear -> MatMulInteger, which MLAS runs with AVX-512 VNNI/AMX where the
  CPU has them); ``"static"`` writes a QDQ graph whose activation scales come from
  calibration on parity-like synthetic cycles.
- ``bf16``: the float weight matrices are stored as bfloat16 and cast back to float32 in the
  graph; vectors (biases, norm scales, the Mamba's D) stay float32: they are a small part
  of the file, and a static graph's folded input bias (b - W mean/std) is large enough that
  rounding it shifted every activation (Mamba_JM60 parity R2 0.997 with it rounded).
  ONNX Runtime's CPU execution provider has no bfloat16 MatMul/Add/Softmax kernels on x86
  (checked with onnxruntime 1.31: "Could not find an implementation for MatMul(13)"), and
  ``mlas.enable_gemm_fastmath_arm64_bfloat16`` applies to ARM64 only, so on this CPU the
  arithmetic stays fp32: bf16 halves the file and shows the accuracy cost of bf16 weights,
  but it is not faster here. The casts are constant-folded when the session is created.

Both variants use ops outside TensorRT's ONNX parser for int8 (MatMulInteger,
DynamicQuantizeLinear): build TensorRT plans from the fp32 export with ``--fp16`` instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from g2h_edge.errors import ExportError

__all__ = ["convert_precision", "to_bf16", "to_int8", "to_int8_fused", "quantize_weight_u8", "INT8_MODES"]

INT8_MODES = ("fused", "dynamic", "static")
_MIN_BF16_SIZE = 16  # smaller float initializers (scalars, shapes) stay fp32
#: fused int8 leaves MatMuls with a weight dimension below this in fp32: they cost little
#: time, and in the Mamba they are the dt/B/C projections (K=8 or N=dt_rank+2N=40) whose
#: errors compound through the selective scan
_MIN_INT8_DIM = 64


def convert_precision(
    model,
    precision: str,
    *,
    calib: np.ndarray | None = None,
    int8_mode: str = "fused",
    workdir: Path | None = None,
):
    """Return a new ModelProto in ``precision`` ("bf16" | "int8") from an fp32 ModelProto."""
    if precision == "bf16":
        return to_bf16(model)
    if precision == "int8":
        return to_int8(model, calib=calib, mode=int8_mode, workdir=workdir)
    raise ExportError(f"no conversion to precision {precision!r}", reason="bad_argument")


def to_bf16(model):
    """Store float initializers of 2 or more dims with >= 16 values as bfloat16, cast back
    to float in-graph (see module doc)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < _MIN_BF16_SIZE or arr.ndim < 2:
            continue
        bits = _to_bf16_bits(arr)  # uint16, round to nearest even
        name = init.name
        new = helper.make_tensor(name + "__bf16", TensorProto.BFLOAT16, arr.shape, bits.tobytes(), raw=True)
        init.CopyFrom(new)
        casts.append(
            helper.make_node(
                "Cast", [name + "__bf16"], [name], to=TensorProto.FLOAT, name=f"bf16_to_fp32/{name}"
            )
        )
    for node in reversed(casts):
        graph.node.insert(0, node)
    return out


def _to_bf16_bits(arr: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round-to-nearest-even."""
    u = np.ascontiguousarray(arr, np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


class _CalibReader:
    """onnxruntime.quantization CalibrationDataReader over (N, T, 10) cycles, batch 1."""

    def __init__(self, x: np.ndarray, input_name: str):
        self._items = iter([{input_name: x[i : i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - not used by minmax calibration
        pass


def quantize_weight_u8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-output-channel symmetric 8-bit quantisation of a (K, N) weight, stored as uint8.

    Returns ``(wq, scale, zero)``: ``wq`` (K, N) uint8 = round(W / scale) + 128 with the
    integer part in [-127, 127], ``scale`` (N,) float32 = max|W[:, n]| / 127 and ``zero``
    (N,) uint8 = 128, so ``(wq - zero) * scale`` approximates W. The levels are those of a
    symmetric int8 weight; the uint8 storage makes ONNX Runtime pick its u8u8 GEMM, which
    is exact on every CPU (see :func:`to_int8_fused` for why not int8).
    """
    scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)  # (N,)
    q = np.clip(np.rint(w / scale), -127, 127)  # (K, N)
    return ((q + 128).astype(np.uint8), scale, np.full(w.shape[1], 128, np.uint8))


def to_int8_fused(model):
    """MatMul(x, W) [+ b] with a constant 2-D float W (both dimensions >= 64) ->
    com.microsoft.DynamicQuantizeMatMul with per-output-channel symmetric 8-bit weights
    (scale = max|W[:, n]| / 127), stored as uint8 with zero point 128.

    Not int8: with an int8 weight ONNX Runtime (MLAS) multiplies uint8 activations by int8
    weights, and on x86 CPUs without VNNI (AVX2 only) that kernel adds products in pairs
    with ``vpmaddubsw``, which saturates at 32767: a pair such as 200*127 + 190*120
    overflows. With per-channel weights every column reaches +-127, so rows of large
    activations overflow often (max error 0.37 of the output range on a 180x128x384
    MatMul, onnxruntime 1.30-1.32 alike). uint8 weights select the u8u8 kernel, which
    widens to 16 bits before multiplying and is exact on any CPU.
    """
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    # the exporter deduplicates equal weights as Identity(initializer): see through them
    alias = {
        node.output[0]: node.input[0]
        for node in graph.node
        if node.op_type == "Identity" and node.input[0] in inits
    }

    def float_init(name, ndim):
        init = inits.get(alias.get(name, name))
        if init is None or init.data_type != onnx.TensorProto.FLOAT or len(init.dims) != ndim:
            return None
        return numpy_helper.to_array(init)

    new_nodes, dropped, new_inits, n_rewritten = [], set(), [], 0
    for node in graph.node:
        if id(node) in dropped:
            continue
        w = float_init(node.input[1], 2) if node.op_type == "MatMul" else None
        if w is None or min(w.shape) < _MIN_INT8_DIM:
            new_nodes.append(node)
            continue
        n = w.shape[1]
        bias_name, out_name = "", node.output[0]
        users = consumers.get(out_name, [])
        if len(users) == 1 and users[0].op_type == "Add" and out_name not in graph_outputs:
            add = users[0]
            other = add.input[1] if add.input[0] == out_name else add.input[0]
            b = float_init(other, 1)
            if b is not None and b.shape == (n,):
                bias_name, out_name = other, add.output[0]
                dropped.add(id(add))
        wq, scale, zero = quantize_weight_u8(w)
        base = f"{node.name or 'matmul'}_{n_rewritten}"
        new_inits += [
            numpy_helper.from_array(wq, base + "_w_uint8"),
            numpy_helper.from_array(scale, base + "_w_scale"),
            numpy_helper.from_array(zero, base + "_w_zero"),
        ]
        ins = [node.input[0], base + "_w_uint8", base + "_w_scale", base + "_w_zero"]
        new_nodes.append(
            helper.make_node(
                "DynamicQuantizeMatMul",
                ins + ([bias_name] if bias_name else []),
                [out_name],
                name=base + "_dqmm",
                domain="com.microsoft",
            )
        )
        n_rewritten += 1
    if n_rewritten == 0:
        raise ExportError(
            "int8 (fused): the graph has no MatMul with a constant weight of "
            f"at least {_MIN_INT8_DIM}x{_MIN_INT8_DIM} (an LSTM's recurrent "
            "weights live in the LSTM op, which is not quantised); export fp32, "
            "or --int8-mode dynamic to quantise the small layers anyway",
            reason="quantize_failed",
        )
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    if not any(op.domain == "com.microsoft" for op in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def to_int8(model, *, calib: np.ndarray | None, mode: str = "fused", workdir: Path | None = None):
    """Quantise MatMul weights to int8 (see module doc for the modes)."""
    import tempfile

    import onnx
    from onnxruntime import quantization as q

    if mode not in INT8_MODES:
        raise ExportError(f"int8 mode {mode!r} is not one of {list(INT8_MODES)}", reason="bad_argument")
    if mode == "fused":
        return to_int8_fused(model)
    with tempfile.TemporaryDirectory(prefix="g2h-int8-", dir=workdir) as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        try:
            if mode == "dynamic":
                q.quantize_dynamic(
                    str(src),
                    str(dst),
                    weight_type=q.QuantType.QInt8,
                    per_channel=False,
                    op_types_to_quantize=["MatMul", "Gemm"],
                )
            else:
                if calib is None or len(calib) == 0:
                    raise ExportError("static int8 needs calibration cycles", reason="bad_argument")
                reader = _CalibReader(np.asarray(calib, np.float32), model.graph.input[0].name)
                q.quantize_static(
                    str(src),
                    str(dst),
                    reader,
                    quant_format=q.QuantFormat.QDQ,
                    activation_type=q.QuantType.QInt8,
                    weight_type=q.QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm"],
                )
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(
                f"int8 ({mode}) quantisation failed: {str(exc).splitlines()[0][:300]}",
                reason="quantize_failed",
            ) from exc
        return onnx.load(str(dst))
