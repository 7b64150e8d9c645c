"""`bench e2e` machinery on a tiny load (numbers are not asserted: no timing tests)."""

from __future__ import annotations

import pytest

from g2h_edge.bench.e2e import E2EConfig, run_e2e


@pytest.fixture(scope="module")
def jm_bundle_path(random_bundle):
    """A joint-moment Transformer bundle with random weights (flagged synthetic)."""
    return random_bundle("transformer", "jm", seed=0, name="test-jm")


def test_bench_e2e_small_run_loses_nothing(jm_bundle_path):
    lines: list[str] = []
    out = run_e2e(
        E2EConfig(engines=(str(jm_bundle_path),), streams=3, rate_hz=100.0, seconds=2.0, ics="external"),
        echo=lines.append,
    )
    assert out["frames_sent"] == 3 * 200 and out["frame_loss"] == 0
    assert out["cycles"] > 0 and out["rejects"] == {}
    text = "\n".join(lines)
    for key in (
        "frames/s ingested",
        "latency closing-frame arrival -> publish",
        "baseline engine-only infer",
        "ratio e2e p50 / engine B=1",
    ):
        assert key in text
