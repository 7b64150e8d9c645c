"""g2h_edge.bench.detector: event matching, pooling and the script entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from g2h_edge.bench.detector import (
    SYNTH_MARGINS_S,
    TrialResult,
    benchmark_detector,
    evaluate_trial,
    main,
    match_events,
    pool,
    synthetic_walk,
)


@pytest.mark.parametrize(
    "true, det, tol, pairs, missed, false",
    [
        ([1.0, 2.0], [1.01, 2.05], 0.06, [(0, 0), (1, 1)], [], []),
        ([1.0, 2.0], [1.01], 0.06, [(0, 0)], [1], []),
        ([1.0], [0.9, 1.02], 0.06, [(0, 1)], [], [0]),
        ([1.0, 1.05], [1.04], 0.06, [(1, 0)], [0], []),  # closest pair wins
        ([1.0], [1.07], 0.06, [], [0], [0]),
        ([], [0.5], 0.06, [], [], [0]),
    ],
)
def test_match_events(true, det, tol, pairs, missed, false):
    assert match_events(true, det, tol) == (pairs, missed, false)


def test_pool_counts_and_percentiles():
    a = TrialResult(
        "a",
        100.0,
        n_true=2,
        n_detected=3,
        n_matched=2,
        n_false=1,
        errors_s=[0.01, -0.02],
        delays_s=[0.03, 0.04],
        matched_true_s=[0.05, 1.0],
    )
    b = TrialResult(
        "b",
        100.0,
        n_true=2,
        n_detected=1,
        n_matched=1,
        errors_s=[0.004],
        delays_s=[0.02],
        matched_true_s=[0.6],
    )
    p = pool([a, b])
    assert (p["n_true"], p["n_matched"], p["n_false"]) == (4, 3, 1)
    assert p["detection_rate"] == pytest.approx(0.75)
    assert p["median_abs_err_ms"] == pytest.approx(10.0)
    assert p["bias_ms"] == pytest.approx(4.0)
    assert p["max_delay_ms"] == pytest.approx(40.0)
    late = pool([a, b], after_start_s=0.1)  # drops a's event at 0.05 s
    assert late["n_timed"] == 2 and late["median_abs_err_ms"] == pytest.approx(12.0)


def test_out_of_range_events_are_matched_not_counted():
    t, q, ev = synthetic_walk(3.0, 100.0, 1, start_phase=0.05)
    r = evaluate_trial("w", t, q, ev, margins_s=SYNTH_MARGINS_S)
    inside = sum(int(((e >= t[0] + 0.05) & (e <= t[-1] - 0.03)).sum()) for e in ev.values())
    assert r.n_true == inside < sum(len(e) for e in ev.values())
    assert r.n_matched == r.n_true and r.n_false == 0


def test_script_on_real_data(data_dir, tmp_path, capsys):
    out = tmp_path / "ev.json"
    assert main([str(data_dir), "--no-synth", "--chunk", "5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pooled schreiber2019 (100 Hz)" in text and "2014001_C4_05" in text
    rep = json.loads(out.read_text())
    pooled = {p["name"]: p for p in rep["pooled"]}
    p = pooled["pooled schreiber2019 (100 Hz)"]
    assert p["n_true"] == 48 and p["n_false"] == 0 and p["n_matched"] >= 47
    assert len(rep["trials"]) == 13


def test_benchmark_reports_rates():
    b = benchmark_detector(n_streams=3, duration_s=2.0, chunk=10)
    assert b["calls"] == 3 * 40
    assert b["calls_per_s"] > 0 and b["us_per_call"] > 0 and b["baseline_us_per_call"] > 0
    assert np.isfinite(b["ratio_vs_baseline"])
