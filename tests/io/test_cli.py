"""`g2h-edge synth` and `g2h-edge predict` end to end (real files, real engines)."""

from __future__ import annotations

import csv
import importlib.util
import re

import numpy as np
import pytest

from g2h_edge.cli import main
from g2h_edge.io.npz import read_gait2hip_npz, write_gait2hip_npz
from g2h_edge.io.synth import make_cohort
from g2h_edge.io.trial import read_trial
from g2h_edge.schema import IN_COLS, JM_COLS, MF_COLS


class _Result:
    def __init__(self, exit_code, output):
        self.exit_code, self.output = exit_code, output


def _invoke(capsys, args) -> _Result:
    """Run the real entry point (G2HError -> exit 2) and capture what a user sees."""
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return _Result(code, out.out + out.err)


def test_synth_cohort(tmp_path, capsys):
    out = tmp_path / "mf.npz"
    res = _invoke(
        capsys, ["synth", "-o", str(out), "--task", "mf", "--subjects", "3", "--seed", "4", "--trials", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "NOT physiology" in res.output
    d = read_gait2hip_npz(out)
    assert d.n == 18 and d.out_cols == MF_COLS and d.synthetic
    np.testing.assert_array_equal(d.X, make_cohort("mf", 3, 4, 2).X)


def test_synth_stream(tmp_path, capsys):
    out = tmp_path / "walk_angles.csv"
    res = _invoke(
        capsys,
        [
            "synth",
            "-o",
            str(out),
            "--stream",
            "6",
            "--rate",
            "250",
            "--seed",
            "2",
            "--cadence",
            "100",
            "--noise-deg",
            "0.2",
        ],
    )
    assert res.exit_code == 0, res.output
    tr = read_trial(out)
    assert tr.rate_hz == pytest.approx(250.0) and tr.n == 1500
    assert (tmp_path / "walk_events.json").is_file()
    assert len(tr.events["R"]) >= 4 and len(tr.events["L"]) >= 4
    assert np.diff(tr.events["R"]).mean() == pytest.approx(1.2, rel=0.1)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--stream", "5", "-o", "x.npz"], "name the output \\*.csv"),
        (["-o", "x.csv"], "name the output \\*.npz"),
        (["-o", "x.npz", "--task", "xx"], "Invalid value for '--task'"),
        (["-o", "x.npz", "--stream", "5", "--rate", "5000"], "Invalid value for '--rate'"),
    ],
)
def test_synth_bad_options(tmp_path, capsys, args, match):
    res = _invoke(capsys, ["synth"] + [a.replace("x.", str(tmp_path / "x.")) for a in args])
    assert res.exit_code == 2
    assert re.search(match, res.output), res.output


# ----------------------------------------------------------------------------- predict
def _need_engines():
    if importlib.util.find_spec("g2h_edge.engines.torch_engine") is None:
        pytest.skip("g2h_edge.engines.torch_engine (MODELS) is not in this checkout yet")


@pytest.fixture(scope="module")
def bundle_path(random_bundle):
    _need_engines()
    return random_bundle("lstm", "jm", seed=0, name="tiny-lstm-jm")


@pytest.fixture(scope="module")
def cycles(tmp_path_factory):
    d = make_cohort("jm", 2, seed=1, trials_per_condition=1)
    path = tmp_path_factory.mktemp("d") / "in.npz"
    write_gait2hip_npz(path, d)
    return path, d


def _reference(bundle_path, X):
    import torch

    from g2h_edge.models import load_bundle

    with torch.no_grad():
        return load_bundle(bundle_path).module()(torch.from_numpy(X)).numpy()


def test_predict_npz_raw_unit(tmp_path, capsys, bundle_path, cycles):
    path, d = cycles
    out = tmp_path / "p.npz"
    res = _invoke(
        capsys,
        [
            "predict",
            "--model",
            str(bundle_path),
            "--input",
            str(path),
            "-o",
            str(out),
            "--raw-unit",
            "--allow-synthetic",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "SYNTHETIC" in res.output and "not physiology" in res.output
    with np.load(out, allow_pickle=False) as z:
        y, y_raw = z["y"], z["y_raw"]
        assert z["out_cols"].tolist() == list(JM_COLS) and str(z["unit"]) == "Nm/kg"
        assert str(z["raw_unit"]) == "Nm" and str(z["model"]) == "tiny-lstm-jm"
        assert len(str(z["model_sha256"])) == 64 and bool(z["synthetic"])
        assert z["subject_id"].tolist() == d.subject_id.tolist()
    assert y.shape == (d.n, 180, 3)
    np.testing.assert_allclose(y, _reference(bundle_path, d.X), atol=1e-5)
    np.testing.assert_allclose(y_raw, y * d.weight_kg[:, None, None], rtol=1e-6)


def test_predict_csv_long_format(tmp_path, capsys, bundle_path, cycles):
    path, d = cycles
    out = tmp_path / "p.csv"
    res = _invoke(
        capsys,
        [
            "predict",
            "--model",
            str(bundle_path),
            "--input",
            str(path),
            "-o",
            str(out),
            "--allow-synthetic",
            "--batch-size",
            "5",
        ],
    )
    assert res.exit_code == 0, res.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == d.n * 180
    assert list(rows[0])[:5] == ["trial", "frame", "cycle_pct", "subject_id", "speed_label"]
    assert float(rows[0]["cycle_pct"]) == 0 and float(rows[179]["cycle_pct"]) == 100
    assert rows[180]["trial"] == "1" and rows[180]["frame"] == "0"
    ref = _reference(bundle_path, d.X)
    got = np.array([[float(r[c]) for c in JM_COLS] for r in rows]).reshape(d.n, 180, 3)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_predict_refusals(tmp_path, capsys, bundle_path, cycles):
    path, d = cycles
    base = ["predict", "--model", str(bundle_path), "--input", str(path)]
    res = _invoke(capsys, base + ["-o", str(tmp_path / "a.npz")])
    assert res.exit_code == 2 and "--allow-synthetic" in res.output
    assert not (tmp_path / "a.npz").exists()
    res = _invoke(capsys, base + ["-o", str(tmp_path / "a.json"), "--allow-synthetic"])
    assert res.exit_code == 2 and ".npz or .csv" in res.output
    # inputs-only file without weight_kg: --raw-unit is refused, plain prediction works
    xonly = tmp_path / "x.npz"
    np.savez(xonly, X=d.X, in_cols=np.array(IN_COLS))
    base = ["predict", "--model", str(bundle_path), "--input", str(xonly), "--allow-synthetic"]
    res = _invoke(capsys, base + ["-o", str(tmp_path / "b.npz"), "--raw-unit"])
    assert res.exit_code == 2 and "needs weight_kg" in res.output
    assert _invoke(capsys, base + ["-o", str(tmp_path / "b.npz")]).exit_code == 0
    # radians and gait2354 inputs are refused; gait2354 converts on request
    rad, old = tmp_path / "rad.npz", tmp_path / "old.npz"
    np.savez(rad, X=np.deg2rad(d.X), in_cols=np.array(IN_COLS))
    flipped = d.X.copy()
    flipped[..., [6, 8]] *= -1
    np.savez(old, X=flipped, in_cols=np.array(IN_COLS))
    base = ["predict", "--model", str(bundle_path), "--allow-synthetic", "-o", str(tmp_path / "c.npz")]
    res = _invoke(capsys, base + ["--input", str(rad)])
    assert res.exit_code == 2 and "radians" in res.output
    res = _invoke(capsys, base + ["--input", str(old)])
    assert res.exit_code == 2 and "--convert-gait2354" in res.output
    res = _invoke(capsys, base + ["--input", str(old), "--convert-gait2354"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_allclose(z["y"], _reference(bundle_path, d.X), atol=1e-5)


@pytest.mark.parametrize("name", ["LSTM_JM60", "Transformer_MF60"])
def test_predict_published_checkpoint_reproduces_parity(tmp_path, capsys, reference_dir, name):
    """Real model: an imported published checkpoint, predicted through the CLI on the
    reference parity cycles, equals the original code's outputs."""
    _need_engines()
    from g2h_edge.models import import_checkpoint, save_bundle

    bundle = tmp_path / f"{name}.pt"
    save_bundle(import_checkpoint(reference_dir / f"{name}.pt"), bundle)
    with np.load(reference_dir / "parity.npz") as z:
        X, ref = z["X"], z[f"Y_{name}"]
    inp = tmp_path / "parity_x.npz"
    np.savez(inp, X=X, in_cols=np.array(IN_COLS))
    out = tmp_path / "y.npz"
    res = _invoke(capsys, ["predict", "--model", str(bundle), "--input", str(inp), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "SYNTHETIC" not in res.output
    with np.load(out) as z:
        assert not bool(z["synthetic"])
        np.testing.assert_allclose(z["y"], ref, atol=1e-4)


def test_predict_onnx_matches_torch_bundle(tmp_path, capsys, bundle_path, cycles):
    """The same model exported to ONNX and served by ONNX Runtime predicts the same."""
    if importlib.util.find_spec("g2h_edge.export.onnx") is None:
        pytest.skip("g2h_edge.export.onnx (EXPORT) is not in this checkout yet")
    from g2h_edge.export.onnx import export_onnx

    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(bundle_path, onnx_path)
    path, d = cycles
    outs = {}
    for model in (bundle_path, onnx_path):
        out = tmp_path / f"{model.suffix[1:]}.npz"
        res = _invoke(
            capsys,
            [
                "predict",
                "--model",
                str(model),
                "--input",
                str(path),
                "-o",
                str(out),
                "--allow-synthetic",
                "--threads",
                "1",
            ],
        )
        assert res.exit_code == 0, res.output
        assert "SYNTHETIC" in res.output  # the flag survives the export
        with np.load(out) as z:
            outs[model.suffix] = (z["y"], str(z["backend"]), str(z["model_sha256"]))
    (y_pt, be_pt, sha_pt), (y_onnx, be_onnx, sha_onnx) = outs[".pt"], outs[".onnx"]
    assert be_pt == "torch" and be_onnx == "onnxruntime" and sha_pt != sha_onnx
    np.testing.assert_allclose(y_onnx, y_pt, atol=1e-4)
