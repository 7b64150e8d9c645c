"""OnnxEngine: loading, refusing bad files, providers, options (real ONNX Runtime sessions)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from g2h_edge.engines import load_engine
from g2h_edge.engines.onnx_engine import OnnxEngine, choose_providers
from g2h_edge.errors import EngineError
from g2h_edge.models import Bundle, build_model, save_bundle
from g2h_edge.schema import IN_COLS, JM_COLS, T

HP = {"hidden": 8, "layers": 1, "dropout": 0.0, "d_in": 10, "T": T, "d_out": 3}


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    from g2h_edge.export.onnx import export_onnx

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("onnx_engine")
    b = Bundle(
        name="tiny_lstm",
        arch="lstm",
        hparams=dict(HP),
        state_dict=build_model("lstm", HP).state_dict(),
        in_cols=IN_COLS,
        out_cols=JM_COLS,
        mean=np.zeros(10, np.float32),
        std=np.full(10, 10, np.float32),
        task="jm",
        unit="Nm/kg",
        T=T,
        provenance={},
        synthetic=True,
    )
    bp = save_bundle(b, d / "tiny.pt")
    return bp, export_onnx(bp, d / "tiny.onnx", verify_batches=(1,)).path


def _foreign_onnx(path):
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, T, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, T, 10])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda p, good: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2]),
            "not a loadable ONNX model",
        ),
        (lambda p, good: p.write_bytes(b""), "not a loadable ONNX model"),
        (lambda p, good: p.write_bytes(np.random.default_rng(0).bytes(4096)), "not a loadable ONNX model"),
        (lambda p, good: _foreign_onnx(p), "not a g2h-edge export"),
    ],
)
def test_bad_files_raise_engine_error(onnx_file, tmp_path, make, match):
    bad = tmp_path / "bad.onnx"
    make(bad, onnx_file[1])
    with pytest.raises(EngineError, match=match):
        OnnxEngine.from_file(bad)
    with pytest.raises(EngineError, match=match):
        load_engine(bad)


def test_load_engine_picks_onnx_and_matches_torch(onnx_file):
    from g2h_edge.engines.torch_engine import TorchEngine

    bp, op = onnx_file
    x = np.random.default_rng(1).normal(0, 20, (5, T, 10)).astype(np.float32)
    with load_engine(op, threads=1) as eng, TorchEngine.from_file(bp) as ref:
        assert isinstance(eng, OnnxEngine) and eng.backend == "onnxruntime"
        assert eng.metadata["providers"] == ["CPUExecutionProvider"]
        assert np.max(np.abs(eng.infer(x) - ref.infer(x))) <= 1e-4


@pytest.mark.parametrize(
    "opts",
    [
        {"io_binding": False},
        {"graph_opt": "disable"},
        {"graph_opt": "basic"},
        {"spinning": False, "threads": 2},
    ],
)
def test_options_give_the_same_outputs(onnx_file, opts):
    x = np.random.default_rng(2).normal(0, 20, (3, T, 10)).astype(np.float32)
    with OnnxEngine.from_file(onnx_file[1]) as a, OnnxEngine.from_file(onnx_file[1], **opts) as b:
        assert np.max(np.abs(a.infer(x) - b.infer(x))) <= 1e-5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"graph_opt": "max"}, "graph_opt 'max'"),
        ({"threads": 0}, "threads must be a positive int"),
        ({"providers": ["NoSuchExecutionProvider"]}, "not available in this installation"),
        ({"providers": []}, "not available in this installation"),
    ],
)
def test_bad_options(onnx_file, kwargs, match):
    with pytest.raises(EngineError, match=match):
        OnnxEngine.from_file(onnx_file[1], **kwargs)


@pytest.mark.parametrize(
    "available,requested,expected",
    [
        (
            ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
            None,
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (["AzureExecutionProvider", "CPUExecutionProvider"], None, ["CPUExecutionProvider"]),
        (["CPUExecutionProvider", "CUDAExecutionProvider"], "CPUExecutionProvider", ["CPUExecutionProvider"]),
    ],
)
def test_provider_preference(available, requested, expected):
    assert choose_providers(available, requested) == expected


def test_bad_input_and_closed_engine(onnx_file):
    eng = OnnxEngine.from_file(onnx_file[1])
    with pytest.raises(EngineError, match="shape"):
        eng.infer(np.zeros((T, 10), np.float32))
    eng.close()
    with pytest.raises(EngineError, match="closed"):
        eng.infer(np.zeros((1, T, 10), np.float32))
