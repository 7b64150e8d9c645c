"""`g2h-edge export onnx|trt` through the real CLI entry point."""

from __future__ import annotations

import importlib.util

import pytest

from g2h_edge.cli import main
from g2h_edge.engines.onnx_engine import OnnxEngine

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_export_onnx_writes_a_verified_file(tiny_bundle_paths, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, text = _run(
        ["export", "onnx", "--model", str(tiny_bundle_paths["lstm"]), "-o", str(out), "--batch", "2"], capsys
    )
    assert code in (0, None), text
    assert "max |onnxruntime - torch|" in text and "TensorRT op check: 10.3: ok" in text
    with OnnxEngine.from_file(out) as eng:
        assert eng.fixed_batch == 2 and eng.metadata["batch"] == 2


@pytest.mark.parametrize(
    "args,match",
    [
        (["--batch", "zero"], "not 'dynamic' or a positive int"),
        (["--precision", "fp8"], "fp8"),
        (["--opset", "12"], "opset 12 is not supported"),
    ],
)
def test_export_onnx_bad_options(tiny_bundle_paths, tmp_path, capsys, args, match):
    code, text = _run(
        ["export", "onnx", "--model", str(tiny_bundle_paths["lstm"]), "-o", str(tmp_path / "m.onnx"), *args],
        capsys,
    )
    assert code == 2 and match in text and "Traceback" not in text


def test_export_onnx_missing_bundle(tmp_path, capsys):
    code, text = _run(
        ["export", "onnx", "--model", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.onnx")], capsys
    )
    assert code == 2 and "does not exist" in text


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed")
def test_export_trt_without_tensorrt_names_the_gpu_extra(tiny_exports, tmp_path, capsys):
    code, text = _run(
        ["export", "trt", "--onnx", str(tiny_exports["lstm"][1]), "-o", str(tmp_path / "m.plan"), "--fp16"],
        capsys,
    )
    assert code == 2 and "g2h-edge[gpu]" in text and "Traceback" not in text
    assert not (tmp_path / "m.plan").exists()


@pytest.mark.parametrize(
    "args,match",
    [
        (["--min-batch", "8", "--opt-batch", "4"], "min <= opt <= max"),
        (["--workspace-mb", "0"], "workspace_mb must be a positive int"),
    ],
)
def test_export_trt_bad_profile(tiny_exports, tmp_path, capsys, args, match):
    code, text = _run(
        ["export", "trt", "--onnx", str(tiny_exports["lstm"][1]), "-o", str(tmp_path / "m.plan"), *args],
        capsys,
    )
    assert code == 2 and match in text
