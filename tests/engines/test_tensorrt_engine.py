"""TensorRT: sidecar checks (everywhere), missing-extra errors (without tensorrt), and a
real plan build + load + parity (GPU machines only)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from g2h_edge.engines.tensorrt_engine import (
    PLAN_FORMAT_TAG,
    TensorRTEngine,
    check_plan_compat,
    read_sidecar,
    sidecar_path,
)
from g2h_edge.errors import EngineError, MissingExtraError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
META = {
    "format": PLAN_FORMAT_TAG,
    "tensorrt_version": "10.3.0",
    "gpu_name": "Orin",
    "compute_capability": "8.7",
    "precision": "fp16",
    "min_batch": 1,
    "opt_batch": 1,
    "max_batch": 64,
    "plan_sha256": "ab" * 32,
    "built_utc": "2026-01-01T00:00:00+00:00",
}


def test_sidecar_path():
    assert sidecar_path("/x/model.plan").name == "model.plan.json"


@pytest.mark.parametrize(
    "change,match",
    [
        ({"tensorrt_version": "10.3.0"}, None),
        ({"tensorrt_version": "10.7.0"}, "built with TensorRT 10.3.0, this is 10.7.0.*rebuild it"),
        ({"gpu_name": "NVIDIA H100"}, "built for Orin.*rebuild it on the\\s+target"),
        ({"compute_capability": "9.0"}, "sm 8.7.*sm 9.0"),
        ({"plan_sha256": "cd" * 32}, "does not match its sidecar"),
    ],
)
def test_plan_compat(change, match):
    here = {
        "tensorrt_version": "10.3.0",
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "plan_sha256": "ab" * 32,
    }
    here.update(change)
    if match is None:
        check_plan_compat(META, **here)
    else:
        with pytest.raises(EngineError, match=match):
            check_plan_compat(META, **here)


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "has no sidecar"),
        ("{not json", "not readable JSON"),
        (json.dumps({"format": "other"}), "not a g2h-edge TensorRT plan sidecar"),
        (json.dumps({k: v for k, v in META.items() if k != "gpu_name"}), "missing \\['gpu_name'\\]"),
    ],
)
def test_bad_sidecars(tmp_path, content, match):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    if content is not None:
        sidecar_path(plan).write_text(content)
    with pytest.raises(EngineError, match=match):
        read_sidecar(plan)


def test_good_sidecar_reads(tmp_path):
    plan = tmp_path / "m.plan"
    sidecar_path(plan).write_text(json.dumps(META))
    assert read_sidecar(plan)["compute_capability"] == "8.7"


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed")
def test_missing_tensorrt_names_the_gpu_extra(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(MissingExtraError, match=r"g2h-edge\[gpu\]"):
        TensorRTEngine.from_file(plan)


@pytest.mark.gpu
def test_build_load_and_parity_on_gpu(tmp_path):
    """Builds a plan from a tiny fp32 export, loads it and compares with ONNX Runtime."""
    import torch

    from g2h_edge.engines.onnx_engine import OnnxEngine
    from g2h_edge.export.onnx import export_onnx
    from g2h_edge.export.tensorrt import build_plan
    from g2h_edge.models import Bundle, build_model, save_bundle
    from g2h_edge.schema import IN_COLS, JM_COLS, T

    hp = {
        "d_model": 16,
        "nhead": 2,
        "num_layers": 1,
        "dim_feedforward": 32,
        "dropout": 0.0,
        "d_in": 10,
        "T": T,
        "max_len": 200,
        "d_out": 3,
    }
    torch.manual_seed(0)
    b = Bundle(
        name="tiny",
        arch="transformer",
        hparams=hp,
        state_dict=build_model("transformer", hp).state_dict(),
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
    onnx_path = export_onnx(save_bundle(b, tmp_path / "t.pt"), tmp_path / "t.onnx").path
    rep = build_plan(onnx_path, tmp_path / "t.plan", min_batch=1, opt_batch=4, max_batch=16)
    assert json.loads(rep.sidecar.read_text())["plan_sha256"] == rep.sha256
    x = np.random.default_rng(0).normal(0, 20, (20, T, 10)).astype(np.float32)
    with TensorRTEngine.from_file(rep.plan) as trt_eng, OnnxEngine.from_file(onnx_path) as ort_eng:
        assert trt_eng.backend == "tensorrt"
        assert np.max(np.abs(trt_eng.infer(x) - ort_eng.infer(x))) <= 1e-3
    meta = json.loads(rep.sidecar.read_text())
    meta["tensorrt_version"] = "0.0.0"
    rep.sidecar.write_text(json.dumps(meta))
    with pytest.raises(EngineError, match="rebuild it"):
        TensorRTEngine.from_file(rep.plan)
