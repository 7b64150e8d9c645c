"""The static Transformer and Mamba export graphs and the fused int8 rewrite."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from g2h_edge.engines.onnx_engine import OnnxEngine
from g2h_edge.errors import ExportError
from g2h_edge.export.cycles import parity_like_cycles
from g2h_edge.export.graphs import export_module
from g2h_edge.export.onnx import export_onnx, read_metadata
from g2h_edge.export.precision import quantize_weight_u8, to_int8_fused
from g2h_edge.export.trt_ops import graph_op_types
from g2h_edge.models import Bundle, build_model, load_bundle, save_bundle
from g2h_edge.schema import IN_COLS, MF_COLS, T

from .conftest import TINY_HPARAMS, tiny_bundle

SHAPE_OPS = {"Shape", "Concat", "Unsqueeze", "ConstantOfShape", "Expand", "Where"}


def _two_layer(arch: str, name: str, seed: int, **hparams) -> Bundle:
    torch.manual_seed(seed)
    hp = {**TINY_HPARAMS[arch], "d_out": len(MF_COLS), **hparams}
    rng = np.random.default_rng(seed)
    return Bundle(
        name=name,
        arch=arch,
        hparams=hp,
        state_dict=build_model(arch, hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=MF_COLS,
        mean=rng.normal(0, 10, 10).astype(np.float32),
        std=rng.uniform(3, 15, 10).astype(np.float32),
        task="mf",
        unit="N/kg",
        T=T,
        provenance={},
        synthetic=True,
    )


def _two_layer_bundle(width: int = 16) -> Bundle:
    return _two_layer(
        "transformer", "tiny_tf2", 3, num_layers=2, nhead=4, d_model=width, dim_feedforward=2 * width
    )


def _two_layer_mamba() -> Bundle:
    return _two_layer("mamba", "tiny_mamba2", 4, layers=2)


def _static_form_matches(bundle):
    """The static form of ``bundle`` computes its model within 1e-5 at batch 1 and 5;
    returns (the bundle's model, the static form, the 5 test cycles)."""
    ref_mod = bundle.module()
    static, form = export_module(bundle, "static", module=ref_mod)
    assert form == "static"
    x = torch.from_numpy(parity_like_cycles(bundle.mean, bundle.std, 5, bundle.T, seed=2))
    with torch.no_grad():
        for b in (1, 5):
            ref, got = ref_mod(x[:b]), static(x[:b])
            assert got.shape == ref.shape
            assert float((got - ref).abs().max()) <= 1e-5
    return ref_mod, static, x


@pytest.mark.parametrize("make", [lambda: tiny_bundle("transformer"), _two_layer_bundle])
def test_static_transformer_computes_the_bundle_model(make):
    _static_form_matches(make())


def _static_and_generic_exports(path, tmp_path, seed):
    """Export ``path`` in both forms; both are smaller-static, TensorRT-clean and within 1e-4
    of the bundle at batch 1 and 7. Returns (static report, generic report)."""
    bundle = load_bundle(path)
    static = export_onnx(path, tmp_path / "s.onnx")
    generic = export_onnx(path, tmp_path / "g.onnx", graph="generic")
    assert (static.graph, generic.graph) == ("static", "generic")
    assert static.n_nodes < generic.n_nodes
    assert static.trt_ok == {"10.3": True, "10.15": True}
    assert read_metadata(onnx.load(str(static.path)))["graph"] == "static"
    x = parity_like_cycles(bundle.mean, bundle.std, 7, bundle.T, seed=seed)
    with torch.no_grad():
        ref = bundle.module()(torch.from_numpy(x)).numpy()
    for rep in (static, generic):
        with OnnxEngine.from_file(rep.path) as eng:
            for b in (1, 7):
                assert np.max(np.abs(eng.infer(x[:b]) - ref[:b])) <= 1e-4
    return static, generic


def test_static_export_is_smaller_and_keeps_parity(tiny_bundle_paths, tmp_path):
    static, generic = _static_and_generic_exports(tiny_bundle_paths["transformer"], tmp_path, seed=11)
    assert not set(static.op_types) & SHAPE_OPS, static.op_types
    assert set(generic.op_types) & SHAPE_OPS  # what the static form removes


@pytest.mark.parametrize("make", [lambda: tiny_bundle("mamba"), _two_layer_mamba])
def test_static_mamba_computes_the_bundle_model(make):
    ref_mod, static, x = _static_form_matches(make())
    # the bundle's own model is left as it was (the static form is a copy)
    assert all((b.scan, b.static_len) == ("auto", None) for b in ref_mod.core.blocks)
    assert all((b.scan, b.static_len) == ("unrolled", T) for b in static.blocks)
    with torch.no_grad(), pytest.raises(RuntimeError):  # exactly T frames
        static(x[:, 1:])


def test_static_mamba_export_folds_the_standardisation(tiny_bundle_paths, tmp_path):
    static, generic = _static_and_generic_exports(tiny_bundle_paths["mamba"], tmp_path, seed=12)
    graphs = {rep.graph: onnx.load(str(rep.path)).graph for rep in (static, generic)}
    first = {
        form: sorted(n.op_type for n in g.node if g.input[0].name in n.input) for form, g in graphs.items()
    }
    # the standardisation is folded into input_proj: the degrees go straight into a MatMul
    assert first == {"static": ["MatMul"], "generic": ["Sub"]}
    # only in_proj's split keeps computed bounds (see MambaBlock.forward)
    assert [n.op_type for n in graphs["static"].node].count("Shape") <= 2


def test_static_request_falls_back_for_other_archs(tiny_bundle_paths, tmp_path):
    rep = export_onnx(tiny_bundle_paths["lstm"], tmp_path / "l.onnx", graph="static", verify_batches=(1,))
    assert rep.graph == "generic"


def test_unknown_graph_is_refused(tiny_bundle_paths, tmp_path):
    with pytest.raises(ExportError, match="graph 'fast' is not one of"):
        export_onnx(tiny_bundle_paths["transformer"], tmp_path / "x.onnx", graph="fast")
    assert not (tmp_path / "x.onnx").exists()


def test_fused_int8_export_of_a_transformer(tmp_path):
    bundle = _two_layer_bundle(width=64)  # projections of 64 and up are quantised
    path = save_bundle(bundle, tmp_path / "tf64.pt")
    rep = export_onnx(path, tmp_path / "i8.onnx", precision="int8", verify_batches=(1, 3))
    model = onnx.load(str(rep.path))
    consts = {i.name for i in model.graph.initializer}
    weight_mm = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in consts]
    assert rep.graph == "static" and rep.trt_ok["10.3"] is False
    assert [n.op_type for n in model.graph.node].count("DynamicQuantizeMatMul") == 8
    assert len(weight_mm) == 2  # input (K=10) and output (N=14) projections stay fp32
    x = parity_like_cycles(bundle.mean, bundle.std, 4, bundle.T, seed=5)
    with torch.no_grad():
        ref = bundle.module()(torch.from_numpy(x)).numpy()
    with OnnxEngine.from_file(rep.path) as eng:
        err = np.max(np.abs(eng.infer(x) - ref))
    assert 0 < err <= 0.15 * np.max(np.abs(ref))


def _matmul_model(w, b=None, extra_user=False):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm")]
    inits = [numpy_helper.from_array(w, "w")]
    out = "mm"
    if b is not None:
        inits.append(numpy_helper.from_array(b, "b"))
        nodes.append(helper.make_node("Add", ["mm", "b"], ["y"], name="add"))
        out = "y"
    outputs = [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)]
    if extra_user:  # the MatMul output is used twice: the bias Add must stay separate
        nodes.append(helper.make_node("Relu", ["mm"], ["r"], name="relu"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 5, w.shape[0]])],
        outputs,
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _run(model, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


@pytest.mark.parametrize("extra_user", [False, True])
def test_fused_int8_rewrites_weight_matmuls(extra_user):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (64, 96)).astype(np.float32)
    w[:, 0] *= 100  # per-channel scales: a large column must not crush the others
    b = rng.normal(0, 1, 96).astype(np.float32)
    model = _matmul_model(w, b, extra_user)
    q = to_int8_fused(model)
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 1 and "MatMul" not in ops
    assert ("Add" in ops) == extra_user
    x = rng.normal(0, 1, (3, 5, 64)).astype(np.float32)
    ref = _run(model, x)
    got = _run(q, x)
    for r, g in zip(ref, got):
        err = np.abs(g - r) / (np.abs(r).max(axis=(0, 1)) + 1e-6)  # per output channel
        assert 0 < err.max() < 0.03, err.max()


def test_fused_int8_is_exact_where_int8_pair_sums_would_saturate():
    # positive activations (uint8 codes up to 255) times weights at the top of their range:
    # every pair sum 255*127*2 overflows int16, which an int8 weight (u8s8 kernel) hits on
    # x86 CPUs without VNNI; the uint8 weight (u8u8 kernel) must stay exact on any CPU
    rng = np.random.default_rng(1)
    w = (rng.uniform(0.9, 1.0, (64, 96)) * rng.choice([-1, 1], 96)).astype(np.float32)
    model = _matmul_model(w)
    q = to_int8_fused(model)
    x = rng.uniform(0, 1, (3, 5, 64)).astype(np.float32)
    (ref,), (got,) = _run(model, x), _run(q, x)
    err = np.abs(got - ref) / np.abs(ref).max(axis=(0, 1))
    assert 0 < err.max() < 0.03, err.max()


def test_fused_int8_weights_are_uint8_with_zero_point_128():
    # int8 weights select ONNX Runtime's u8s8 kernel, which saturates on AVX2-only CPUs
    # (see to_int8_fused): keep this check even where the CPU (VNNI) would not show it
    q = to_int8_fused(_matmul_model(np.ones((64, 64), np.float32)))
    node = next(n for n in q.graph.node if n.op_type == "DynamicQuantizeMatMul")
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    wq, scale, zero = (inits[name] for name in node.input[1:4])
    assert wq.dtype == np.uint8 and zero.dtype == np.uint8 and scale.dtype == np.float32
    assert np.all(zero == 128) and np.all(wq == 255)


def test_quantize_weight_u8_round_trips_within_half_a_step():
    rng = np.random.default_rng(2)
    w = rng.normal(0, 1, (70, 33)).astype(np.float32) * np.geomspace(1e-3, 1e3, 33)
    w[:, 5] = 0  # an all-zero column keeps a finite scale
    wq, scale, zero = quantize_weight_u8(w)
    back = (wq.astype(np.float32) - zero) * scale
    assert wq.min() >= 1 and np.all(np.isfinite(scale)) and np.all(back[:, 5] == 0)
    assert np.all(np.abs(back - w) <= scale / 2 * (1 + 1e-6))
    assert np.array_equal(np.abs(wq.astype(int) - 128).max(axis=0)[w.any(axis=0)], [127] * 32)


def test_fused_int8_leaves_small_projections_in_fp32():
    model = _matmul_model(np.ones((64, 40), np.float32), np.zeros(40, np.float32))
    with pytest.raises(ExportError, match="no MatMul with a constant weight"):
        to_int8_fused(model)  # its only MatMul is too small to quantise


def test_fused_int8_needs_a_weight_matmul():
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ExportError, match="no MatMul with a constant weight"):
        to_int8_fused(model)


def test_graph_op_types_sees_the_contrib_op():
    q = to_int8_fused(_matmul_model(np.ones((64, 64), np.float32)))
    assert "DynamicQuantizeMatMul" in {op for _, op in graph_op_types(q)}
