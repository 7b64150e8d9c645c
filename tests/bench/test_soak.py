"""The soak bench, short: paced streams into a real `g2h-edge serve` process."""

from __future__ import annotations

import math

import pytest

from g2h_edge.bench.soak import SoakConfig, is_flat, run_soak


@pytest.mark.parametrize(
    "rss, flat",
    [
        ([100.0] * 9, True),
        ([100, 120, 130, 131, 131, 131, 131.5, 131, 132], True),  # warm-up, then flat
        ([100, 110, 120, 130, 140, 150, 160, 170, 180], False),  # steady growth
        ([500, 500, 500, 500, 500, 500, 520, 530, 540], False),  # late growth > 10 MiB
    ],
)
def test_is_flat(rss, flat):
    ok, growth = is_flat(list(enumerate(rss)))
    assert ok is flat and math.isfinite(growth)


def test_is_flat_needs_samples():
    assert is_flat([(0, 1.0)])[0] is False


@pytest.mark.slow
def test_soak_short(jm_bundle_path):
    res = run_soak(
        SoakConfig(streams=3, minutes=0.2, sample_s=1.0, engine=str(jm_bundle_path)), echo=lambda *_: None
    )
    assert res["frames_counted"] == res["frames_sent"] > 0
    assert res["seq_gaps"] == 0 and res["duplicate_seq"] == 0 and res["loop_errors"] == 0
    assert res["streams_ended"] == 3 and res["cycles_expected"] > 10
    assert res["cycles_out"] + sum(res["rejects"].values()) == res["cycles_expected"]
    assert len(res["rss_mb"]) >= 5 and all(r > 10 for _, r in res["rss_mb"])
    assert res["server_exit"] == 0
