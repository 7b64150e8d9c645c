"""The whole protocol end to end (tiny models, tiny cohort): files, contents, resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from g2h_edge.schema import JM_COLS
from g2h_edge.train import report
from g2h_edge.train.split import holdout_split

MODELS = ("LSTM", "Transformer", "Mamba")


def _expected_files():
    names = [
        "JM60_split.json",
        "JM60_test_wilcoxon_holm.csv",
        "JM60_summary.md",
        "JM60_bars_by_cadence.png",
        "JM60_subject_boxplots.png",
        "JM60_outputs.json",
    ]
    for m in MODELS:
        names += [
            f"{m}_JM60_cv_2fold_baseline_metrics.csv",
            f"{m}_JM60_test_metrics_by_speed_mean.csv",
            f"{m}_JM60_test_metrics_by_subject.csv",
            f"{m}_JM60_test_r2_per_channel.csv",
            f"{m}_JM60.pt",
            f"{m}_JM60_run.json",
            f"{m}_JM60_waveforms.png",
        ]
    return names


def test_every_file_is_written(bench_dir):
    for name in _expected_files():
        path = bench_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_csv_columns_and_rows(bench_dir):
    for m in MODELS:
        cv = report.read_csv(bench_dir / f"{m}_JM60_cv_2fold_baseline_metrics.csv")
        assert tuple(cv[0]) == report.CV_COLUMNS and [r["fold"] for r in cv] == ["1", "2"]
        assert all(int(r["best_epoch"]) == 1 for r in cv)
        speed = report.read_csv(bench_dir / f"{m}_JM60_test_metrics_by_speed_mean.csv")
        assert tuple(speed[0]) == report.SPEED_COLUMNS
        assert [r["speed"] for r in speed] == ["overall", "fast", "med", "slow"]
        assert [int(r["n_subjects"]) for r in speed] == [2, 2, 2, 2]
    wil = report.read_csv(bench_dir / "JM60_test_wilcoxon_holm.csv")
    assert len(wil) == 4 * 4 * 3  # metrics x (overall + 3 cadences) x model pairs
    summary = (bench_dir / "JM60_summary.md").read_text()
    assert "SYNTHETIC" in summary and "| Mamba |" in summary


def test_bundles_flagged_and_standardised_on_the_pool(bench_dir, tiny_cohort):
    from g2h_edge.models import load_bundle

    split = holdout_split(tiny_cohort.subject_id)
    pool = tiny_cohort.X[split.pool_idx].reshape(-1, 10).astype(np.float64)
    for m in MODELS:
        b = load_bundle(bench_dir / f"{m}_JM60.pt")
        assert b.synthetic is True and b.task == "jm" and b.out_cols == JM_COLS
        assert b.provenance["test_subjects"] == list(split.test_subjects)
        np.testing.assert_allclose(b.mean, pool.mean(0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(b.std, pool.std(0) + 1e-8, rtol=1e-5)
        run = json.loads((bench_dir / f"{m}_JM60_run.json").read_text())
        assert run["final_epoch"] == max(1, int(np.median(run["best_epochs"])))


def test_test_metrics_are_those_of_the_saved_bundle(bench_dir, tiny_cohort):
    """The by-speed CSV is recomputed from the reloaded bundle's predictions."""
    import torch

    from g2h_edge.models import load_bundle
    from g2h_edge.train.metrics import speed_table

    split = holdout_split(tiny_cohort.subject_id)
    b = load_bundle(bench_dir / "Transformer_JM60.pt")
    with torch.no_grad():
        pred = b.module()(torch.as_tensor(tiny_cohort.X[split.test_idx])).numpy()
    y = tiny_cohort.Y[split.test_idx] / tiny_cohort.weight_kg[split.test_idx, None, None]
    rows = speed_table(
        y, pred, tiny_cohort.subject_id[split.test_idx], tiny_cohort.speed_label[split.test_idx]
    )
    written = report.read_csv(bench_dir / "Transformer_JM60_test_metrics_by_speed_mean.csv")
    for mine, theirs in zip(rows, written):
        assert float(theirs["subject_mean_RMSE"]) == pytest.approx(mine["subject_mean_RMSE"], abs=6e-5)
        assert float(theirs["subject_mean_R2"]) == pytest.approx(mine["subject_mean_R2"], abs=6e-5)


def test_rerun_resumes_finished_models(bench_dir, cohort_file, cli_run, tiny_hparams):
    bundle, summary = bench_dir / "LSTM_JM60.pt", bench_dir / "JM60_summary.md"
    before = bundle.stat().st_mtime_ns, bundle.read_bytes(), summary.stat().st_mtime_ns
    code, out = cli_run(
        [
            "benchmark",
            "--data",
            cohort_file,
            "--models",
            "lstm,transformer,mamba",
            "--out",
            bench_dir,
            "--max-epochs",
            "1",
            "--folds",
            "2",
            "--patience",
            "1",
            "--hparams",
            tiny_hparams,
            "--quiet",
        ]
    )
    assert code == 0, out
    assert out.count("reused") == 3
    assert (bundle.stat().st_mtime_ns, bundle.read_bytes(), summary.stat().st_mtime_ns) == before


def test_changed_config_retrains(cohort_file, cli_run, tiny_hparams, tmp_path, bench_dir):
    import shutil

    for name in (
        "LSTM_JM60.pt",
        "LSTM_JM60_run.json",
        "LSTM_JM60_cv_2fold_baseline_metrics.csv",
        "LSTM_JM60_test_metrics_by_speed_mean.csv",
    ):
        shutil.copy(bench_dir / name, tmp_path / name)
    code, out = cli_run(
        [
            "benchmark",
            "--data",
            cohort_file,
            "--models",
            "lstm",
            "--out",
            tmp_path,
            "--max-epochs",
            "1",
            "--folds",
            "2",
            "--patience",
            "2",
            "--hparams",
            tiny_hparams,
            "--quiet",
        ]
    )
    assert code == 0, out
    assert "reused" not in out and "trained, final epoch 1" in out
    assert json.loads((tmp_path / "LSTM_JM60_run.json").read_text())["config"]["patience_epochs"] == 2
