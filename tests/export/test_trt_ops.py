"""The TensorRT op-list check on hand-built graphs (the exported ones are checked in
test_onnx_export.py and test_reference_parity.py)."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from g2h_edge.export.trt_ops import check_trt_ops, supported_ops


def _model(nodes, opset=17, extra_opsets=()):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])


def test_version_tables():
    old, new = supported_ops("10.3"), supported_ops("10.15")
    assert {"MatMul", "LayerNormalization", "Softmax", "Conv", "LSTM", "Softplus"} <= old
    assert "Attention" not in old and "Attention" in new and old < new
    assert "MatMulInteger" not in new and "DynamicQuantizeLinear" not in new


@pytest.mark.parametrize("version,match", [("9.0", "only TensorRT 10.x"), ("ten", "is not like")])
def test_bad_versions(version, match):
    with pytest.raises(ValueError, match=match):
        supported_ops(version)


def test_plain_graph_passes():
    rep = check_trt_ops(_model([helper.make_node("Relu", ["x"], ["y"])]), "10.3")
    assert rep.ok and rep.op_types == ("Relu",)


@pytest.mark.parametrize(
    "nodes,opsets,bad",
    [
        ([helper.make_node("MatMulInteger", ["x", "x"], ["y"])], (), ("MatMulInteger",)),
        (
            [helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")],
            (helper.make_opsetid("com.microsoft", 1),),
            ("com.microsoft::FusedMatMul",),
        ),
        ([helper.make_node("Gelu", ["x"], ["y"])], (), ("Gelu",)),  # added after 10.3
    ],
)
def test_unsupported_ops_are_listed(nodes, opsets, bad):
    rep = check_trt_ops(_model(nodes, opset=20, extra_opsets=opsets), "10.3")
    assert not rep.ok and rep.unsupported == bad


def test_subgraph_ops_are_seen():
    body = helper.make_graph(
        [helper.make_node("Hardmax", ["x"], ["y"])],
        "b",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    rep = check_trt_ops(_model([node]), "10.3")
    assert {"If", "Hardmax"} <= set(rep.op_types)


def test_opset_range():
    assert not check_trt_ops(_model([helper.make_node("Relu", ["x"], ["y"])], opset=22), "10.3").opset_ok
    assert check_trt_ops(_model([helper.make_node("Relu", ["x"], ["y"])], opset=22), "10.15").opset_ok
