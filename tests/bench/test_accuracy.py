"""``g2h-edge bench accuracy`` on the shared real trials (skipped when they are absent)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.shared


def test_metrics_row_matches_the_export_report():
    from g2h_edge.bench.accuracy import metrics_row
    from g2h_edge.bench.precision_report import r2
    from g2h_edge.schema import JM_COLS

    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, (4, 180, 3))
    p = y + rng.normal(0, 0.3, y.shape)
    row = metrics_row("m", y, p, JM_COLS)
    assert row["R2_channel_mean"] == pytest.approx(r2(p, y), abs=1e-12)
    assert row["RMSE"] == pytest.approx(float(np.sqrt(((p - y) ** 2).mean())))
    assert set(row) >= {"R2_flexion", "RMSE_adduction", "R2_rotation", "R2_pooled"}


@pytest.mark.slow
def test_bench_accuracy_smoke(data_dir, reference_dir, tmp_path):
    """Two subjects, one fold pair, one fine-tuning epoch of the LSTM: every row and score
    is there and finite, and the table prints."""
    from click.testing import CliRunner

    from g2h_edge.bench.accuracy import bench_accuracy_cmd

    out = tmp_path / "acc.json"
    res = CliRunner().invoke(
        bench_accuracy_cmd,
        [
            "--data",
            str(data_dir),
            "--reference",
            str(reference_dir),
            "--subjects",
            "2014001,2014004",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--adapt",
            "LSTM",
            "--json",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    import json

    rep = json.loads(out.read_text())
    names = [r["model"] for r in rep["rows"]]
    assert {
        "LSTM_JM60",
        "Mamba_JM60",
        "Transformer_JM60",
        "LSTM_JM60+Mamba_JM60",
        "LSTM_JM60 adapted",
    } <= set(names)
    assert rep["n_cycles"] == 8 and rep["n_subjects"] == 2
    for r in rep["rows"]:
        assert all(np.isfinite(v) for k, v in r.items() if k != "model"), r
    assert set(rep["spearman"]) == {"ensemble_sd", "ood_z", "ood_phase_z (LOSO)", "n_flags"}
    assert rep["faults"]["flag_recall"] == 1.0
    assert "| LSTM_JM60 adapted |" in res.output and "Spearman" in res.output
