"""Zero-shot evaluation of a bundle and fixed-epoch training, through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.errors import DataError
from g2h_edge.train import report


@pytest.fixture(scope="module")
def external_file(tmp_path_factory):
    """Another synthetic cohort (other subjects, other seed) as the 'external' set."""
    from g2h_edge.io import write_gait2hip_npz
    from g2h_edge.io.synth import make_cohort

    path = tmp_path_factory.mktemp("ext") / "external_JM.npz"
    write_gait2hip_npz(path, make_cohort("jm", 3, seed=99, trials_per_condition=1))
    return path


def test_evaluate_uses_the_bundle_standardisation(bench_dir, external_file, cli_run, tmp_path):
    from g2h_edge.io import read_gait2hip_npz
    from g2h_edge.models import load_bundle
    from g2h_edge.train.metrics import speed_table

    code, out = cli_run(
        ["evaluate", "--model", bench_dir / "LSTM_JM60.pt", "--data", external_file, "--out", tmp_path]
    )
    assert code == 0, out
    assert "zero-shot" in out and "synthetic" in out
    for name in (
        "LSTM_JM60_external_metrics_by_speed_mean.csv",
        "LSTM_JM60_external_metrics_by_subject.csv",
        "LSTM_JM60_external_r2_per_channel.csv",
        "LSTM_JM60_waveforms.png",
        "LSTM_JM60_external_bars_by_cadence.png",
        "LSTM_JM60_external_subject_boxplots.png",
        "LSTM_JM60_external_summary.md",
        "LSTM_JM60_external_run.json",
    ):
        assert (tmp_path / name).is_file(), name
    d = read_gait2hip_npz(external_file)
    b = load_bundle(bench_dir / "LSTM_JM60.pt")
    with torch.no_grad():  # the bundle's own mean/std, fitted on its pool
        pred = b.module()(torch.as_tensor(d.X)).numpy()
    rows = speed_table(d.Y / d.weight_kg[:, None, None], pred, d.subject_id, d.speed_label)
    written = report.read_csv(tmp_path / "LSTM_JM60_external_metrics_by_speed_mean.csv")
    assert [r["speed"] for r in written] == [r["speed"] for r in rows]
    for mine, theirs in zip(rows, written):
        assert float(theirs["subject_mean_R2"]) == pytest.approx(mine["subject_mean_R2"], abs=6e-5)


def test_evaluate_refuses_other_task(bench_dir, tmp_path):
    from g2h_edge.io.synth import make_cohort
    from g2h_edge.models import load_bundle
    from g2h_edge.train.evaluate import evaluate_bundle

    mf = make_cohort("mf", 2, seed=1, trials_per_condition=1)
    with pytest.raises(DataError, match="predicts jm outputs"):
        evaluate_bundle(load_bundle(bench_dir / "LSTM_JM60.pt"), mf, tmp_path)


def test_train_command_fixed_epochs_with_holdout(cohort_file, cli_run, tiny_hparams, tmp_path):
    from g2h_edge.models import load_bundle

    out = tmp_path / "model.pt"
    code, text = cli_run(
        [
            "train",
            "--data",
            cohort_file,
            "--model",
            "transformer",
            "-o",
            out,
            "--epochs",
            "1",
            "--holdout",
            "--hparams",
            tiny_hparams,
            "--quiet",
        ]
    )
    assert code == 0, text
    assert "hold-out test subjects" in text and "SYNTHETIC" in text
    b = load_bundle(out)
    assert b.synthetic and b.hparams["d_model"] == 8 and b.provenance["epochs"] == 1
    assert np.all(np.isfinite(b.mean))


def test_demo_script_small(tmp_path):
    from g2h_edge.models import load_bundle
    from g2h_edge.train.make_demo_models import main

    assert (
        main(
            [
                "--out-dir",
                str(tmp_path),
                "--tasks",
                "jm",
                "--epochs",
                "1",
                "--n-subjects",
                "5",
                "--trials-per-condition",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    b = load_bundle(tmp_path / "demo_transformer_jm.pt")
    assert b.synthetic and b.name == "demo_transformer_jm"
    assert "make_demo_models" in b.provenance["notes"] and "test_metrics_by_speed" in b.provenance


def test_evaluate_an_imported_published_checkpoint(reference_dir, tiny_cohort, tmp_path):
    """Zero-shot evaluation works on a bundle imported from the published checkpoints (kept in tmp)."""
    from g2h_edge.models import import_checkpoint
    from g2h_edge.train.evaluate import evaluate_bundle

    bundle = import_checkpoint(reference_dir / "LSTM_JM60.pt")
    res = evaluate_bundle(bundle, tiny_cohort, tmp_path)
    assert [r["speed"] for r in res.speed_rows] == ["overall", "fast", "med", "slow"]
    assert np.isfinite(res.overall["RMSE"]) and res.overall["RMSE"] > 0
    assert "SYNTHETIC" in (tmp_path / f"{res.name}_external_summary.md").read_text()
