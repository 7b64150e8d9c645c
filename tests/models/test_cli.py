"""`g2h-edge models import/info` through click's runner and the real entry point."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from g2h_edge.errors import ModelError
from g2h_edge.models import load_bundle
from g2h_edge.models.cli import models_cmd


def test_import_then_info(tmp_path, ckpt_factory):
    torch.save(ckpt_factory("transformer", "mf"), tmp_path / "T.pt")
    runner = CliRunner()
    res = runner.invoke(
        models_cmd, ["import", str(tmp_path / "T.pt"), "-o", str(tmp_path / "b.pt"), "--name", "tiny"]
    )
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "N/kg" in res.output
    assert load_bundle(tmp_path / "b.pt").name == "tiny"
    res = runner.invoke(models_cmd, ["info", str(tmp_path / "b.pt"), "--json"])
    info = json.loads(res.output)
    assert info["kind"] == "g2h-edge bundle" and info["arch"] == "transformer"
    assert info["T"] == 180 and info["synthetic"] is False and len(info["sha256"]) == 64
    assert info["params"] == load_bundle(tmp_path / "b.pt").n_params()
    res = runner.invoke(models_cmd, ["info", str(tmp_path / "T.pt")])
    assert res.exit_code == 0 and "published checkpoint" in res.output
    assert "test_metrics_subject_mean" in res.output


def test_info_flags_synthetic(tmp_path, bundle):
    from g2h_edge.models import save_bundle

    save_bundle(bundle, tmp_path / "s.pt")
    res = CliRunner().invoke(models_cmd, ["info", str(tmp_path / "s.pt")])
    assert "SYNTHETIC" in res.output and "True" in res.output


def test_errors(tmp_path):
    (tmp_path / "junk.pt").write_text("junk")
    res = CliRunner().invoke(models_cmd, ["info", str(tmp_path / "junk.pt")])
    assert isinstance(res.exception, ModelError)
    assert "neither a g2h-edge bundle nor a published checkpoint" in str(res.exception)
    res = CliRunner().invoke(models_cmd, ["import", str(tmp_path / "junk.pt"), "-o", "x.onnx"])
    assert res.exit_code == 2 and "bundles are .pt files" in res.output


def test_entry_point_reports_errors(tmp_path, capsys):
    from g2h_edge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["models", "import", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "b.pt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: checkpoint" in err and "does not exist" in err
