"""Static check that an ONNX graph only uses operators TensorRT's ONNX parser supports.

The table is written from onnx-tensorrt's ``docs/operators.md`` (the operator support
matrix shipped with each TensorRT release). TensorRT 10.0 parses opsets 9..20; ops that
later 10.x releases added carry the first version that lists them, so a check against
``"10.3"`` (JetPack 6.x) is stricter than one against ``"10.15"`` (a current desktop).
Ops that are listed as unsupported (N) in every 10.x matrix are simply absent. Only the
default ONNX domain is supported: contrib ops (``com.microsoft``: FusedMatMul, Attention,
SkipLayerNormalization, MatMulInteger's helpers...) are runtime-specific and fail here.

Operator restrictions (e.g. "``axes`` must be an initializer") are not checked; the plan
build is the final judge. This check exists to fail early, before anyone copies an ONNX
file to a Jetson, when the exporter emitted an op TensorRT cannot parse at all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TRT_TARGETS",
    "TRT_MIN_OPSET",
    "TRT_MAX_OPSET",
    "TRT_SUPPORTED_OPS",
    "DISCOURAGED_OPS",
    "TrtOpReport",
    "supported_ops",
    "check_trt_ops",
    "graph_op_types",
]

#: TensorRT versions the project targets: a desktop 10.x and JetPack 6.x (TensorRT 10.3)
TRT_TARGETS: tuple[str, ...] = ("10.3", "10.15")
#: parsable default-domain opset range (operators.md header: "opset 9 to opset 20" for 10.0)
TRT_MIN_OPSET = 9
TRT_MAX_OPSET = {"10.0": 20, "10.3": 20, "10.15": 24}

_SINCE_10_0 = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor GRU Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad
ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum
Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
"""
# ops listed only by later matrices (first listing used as the minimum version)
_LATER = {
    "Gelu": "10.4",
    "BlackmanWindow": "10.4",
    "HammingWindow": "10.4",
    "HannWindow": "10.4",
    "STFT": "10.4",
    "DeformConv": "10.8",
    "Mish": "10.8",
    "Attention": "10.14",
    "RMSNormalization": "10.15",
    "RotaryEmbedding": "10.15",
    "TensorScatter": "10.15",
}

#: op type -> first TensorRT 10.x version whose ONNX parser supports it
TRT_SUPPORTED_OPS: dict[str, str] = {
    **{op: "10.0" for op in _SINCE_10_0.split()},
    **_LATER,
}

#: ops that parse but that this project refuses in exported graphs (see docs/export.md)
DISCOURAGED_OPS: frozenset[str] = frozenset({"Loop", "Scan", "If"})


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(version).split(".")[:2])
    except ValueError:
        raise ValueError(f"TensorRT version {version!r} is not like '10.3'") from None


def supported_ops(trt_version: str) -> frozenset[str]:
    """Default-domain op types TensorRT ``trt_version`` (10.x) parses."""
    key = _version_key(trt_version)
    if key[0] != 10:
        raise ValueError(f"only TensorRT 10.x is tabulated, got {trt_version!r}")
    return frozenset(op for op, since in TRT_SUPPORTED_OPS.items() if _version_key(since) <= key)


def graph_op_types(model) -> list[tuple[str, str]]:
    """Sorted unique (domain, op_type) of every node, subgraphs included."""
    found: set[tuple[str, str]] = set()

    def visit(graph):
        for node in graph.node:
            found.add((node.domain or "", node.op_type))
            for attr in node.attribute:
                if attr.g is not None and len(attr.g.node):
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    return sorted(found)


@dataclass(frozen=True)
class TrtOpReport:
    """Result of :func:`check_trt_ops` for one TensorRT version."""

    trt_version: str
    opset: int
    op_types: tuple[str, ...]
    unsupported: tuple[str, ...]  # "domain::Op" for non-default domains
    opset_ok: bool

    @property
    def ok(self) -> bool:
        return self.opset_ok and not self.unsupported


def check_trt_ops(model, trt_version: str = "10.3") -> TrtOpReport:
    """Check an ``onnx.ModelProto`` (or a path) against TensorRT ``trt_version``'s op list."""
    import onnx

    if not hasattr(model, "graph"):
        model = onnx.load(str(model), load_external_data=False)
    allowed = supported_ops(trt_version)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    max_opset = TRT_MAX_OPSET.get(".".join(map(str, _version_key(trt_version))), 20)
    ops = graph_op_types(model)
    bad = [
        op if dom in ("", "ai.onnx") else f"{dom}::{op}"
        for dom, op in ops
        if dom not in ("", "ai.onnx") or op not in allowed
    ]
    return TrtOpReport(
        trt_version=str(trt_version),
        opset=int(opset),
        op_types=tuple(sorted({op for _, op in ops})),
        unsupported=tuple(sorted(bad)),
        opset_ok=TRT_MIN_OPSET <= opset <= max_opset,
    )
