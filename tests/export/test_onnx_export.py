"""ONNX export: parity with torch, metadata round-trip, graph content, bad arguments."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from g2h_edge.engines.onnx_engine import OnnxEngine
from g2h_edge.errors import ExportError
from g2h_edge.export.cycles import parity_like_cycles
from g2h_edge.export.onnx import export_onnx, read_metadata
from g2h_edge.export.trt_ops import graph_op_types
from g2h_edge.models import bundle_metadata, file_sha256, load_bundle

ARCHS = ("transformer", "lstm", "mamba")


def _torch_out(bundle, x):
    with torch.no_grad():
        return bundle.module()(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch", [1, 64])
def test_tiny_parity_with_torch(tiny_exports, arch, batch):
    bundle_path, onnx_path, report = tiny_exports[arch]
    bundle = load_bundle(bundle_path)
    x = np.resize(parity_like_cycles(bundle.mean, bundle.std, 9, bundle.T, seed=5), (batch, bundle.T, 10))
    with OnnxEngine.from_file(onnx_path, threads=1) as eng:
        got = eng.infer(x)
    ref = _torch_out(bundle, x)
    assert got.shape == ref.shape == (batch, bundle.T, 3)
    assert np.max(np.abs(got - ref)) <= 1e-4
    assert report.max_abs_diff <= 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_metadata_round_trip(tiny_exports, arch):
    bundle_path, onnx_path, report = tiny_exports[arch]
    bundle = load_bundle(bundle_path)
    meta = read_metadata(onnx.load(str(onnx_path)))
    for key, value in bundle_metadata(bundle).items():
        assert meta[key] == pytest.approx(value) if key in ("mean", "std") else meta[key] == value, key
    assert meta["format"] == "g2h-edge-onnx" and meta["precision"] == "fp32"
    assert meta["bundle_sha256"] == file_sha256(bundle_path)
    assert meta["source_sha256"] == bundle.provenance["source_sha256"]
    assert meta["synthetic"] is True and meta["opset"] == 17 and meta["batch"] == "dynamic"
    assert report.sha256 == file_sha256(onnx_path)
    with OnnxEngine.from_file(onnx_path) as eng:  # the engine reads the same metadata
        assert (eng.name, eng.task, eng.unit, eng.T, eng.synthetic) == (
            bundle.name,
            "jm",
            "Nm/kg",
            bundle.T,
            True,
        )
        assert eng.sha256 == file_sha256(onnx_path)


@pytest.mark.parametrize("arch", ARCHS)
def test_graph_has_no_control_flow_and_parses_in_tensorrt(tiny_exports, arch):
    _, onnx_path, report = tiny_exports[arch]
    ops = {op for _, op in graph_op_types(onnx.load(str(onnx_path)))}
    assert not ops & {"Loop", "Scan", "If"}, ops
    assert report.trt_ok == {"10.3": True, "10.15": True}, report.trt_unsupported
    if arch == "mamba":
        assert {"Exp", "Mul", "MatMul"} <= ops  # the scan is there, as plain tensor ops


def test_fixed_batch_export_serves_any_batch(tiny_bundle_paths, tmp_path):
    bundle = load_bundle(tiny_bundle_paths["transformer"])
    rep = export_onnx(tiny_bundle_paths["transformer"], tmp_path / "b4.onnx", batch=4)
    assert rep.batch == "4"
    x = parity_like_cycles(bundle.mean, bundle.std, 9, bundle.T, seed=3)
    with OnnxEngine.from_file(rep.path) as eng:
        assert eng.fixed_batch == 4
        for n in (1, 4, 9):  # padded / exact / chunked
            assert np.max(np.abs(eng.infer(x[:n]) - _torch_out(bundle, x[:n]))) <= 1e-4


@pytest.mark.parametrize("precision,mode,bound", [("bf16", None, 0.05), ("int8", "dynamic", 0.15)])
def test_reduced_precision_is_runnable_and_bounded(tiny_bundle_paths, tmp_path, precision, mode, bound):
    bundle = load_bundle(tiny_bundle_paths["transformer"])
    kwargs = {"int8_mode": mode} if mode else {}
    rep = export_onnx(
        tiny_bundle_paths["transformer"],
        tmp_path / f"{precision}.onnx",
        precision=precision,
        verify_batches=(1,),
        **kwargs,
    )
    x = parity_like_cycles(bundle.mean, bundle.std, 9, bundle.T, seed=7)
    ref = _torch_out(bundle, x)
    with OnnxEngine.from_file(rep.path) as eng:
        got = eng.infer(x)
        assert eng.metadata["precision"] == precision
    err = np.max(np.abs(got - ref))
    assert 0 < err <= bound * np.max(np.abs(ref))  # not bit-identical, but close
    ops = {op for _, op in graph_op_types(onnx.load(str(rep.path)))}
    if precision == "int8":
        assert "MatMulInteger" in ops and rep.trt_ok["10.3"] is False
    else:
        assert "Cast" in ops and rep.trt_ok["10.3"] is True
        model = onnx.load(str(rep.path))
        kinds = {
            (len(i.dims) >= 2, i.data_type)
            for i in model.graph.initializer
            if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.BFLOAT16) and np.prod(i.dims) >= 16
        }
        # matrices in bf16, vectors (biases, norm scales) kept in fp32
        assert kinds == {(True, onnx.TensorProto.BFLOAT16), (False, onnx.TensorProto.FLOAT)}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch": 0}, "batch must be"),
        ({"batch": "auto"}, "batch must be"),
        ({"opset": 13}, "opset 13 is not supported"),
        ({"opset": 21}, "opset 21 is not supported"),
        ({"precision": "fp16"}, "precision 'fp16'"),
        ({"exporter": "jit"}, "exporter 'jit'"),
        ({"exporter": "dynamo", "opset": 17}, "needs opset >= 18"),
    ],
)
def test_bad_arguments(tiny_bundle_paths, tmp_path, kwargs, match):
    with pytest.raises(ExportError, match=match):
        export_onnx(tiny_bundle_paths["lstm"], tmp_path / "x.onnx", **kwargs)
    assert not (tmp_path / "x.onnx").exists()


def test_not_a_bundle(tmp_path):
    with pytest.raises(ExportError, match="needs a Bundle or a bundle path"):
        export_onnx(42, tmp_path / "x.onnx")


def test_parity_failure_writes_nothing(tiny_bundle_paths, tmp_path):
    with pytest.raises(ExportError, match="differs from the torch model"):
        export_onnx(tiny_bundle_paths["lstm"], tmp_path / "x.onnx", tol=0.0)
    assert not (tmp_path / "x.onnx").exists()
