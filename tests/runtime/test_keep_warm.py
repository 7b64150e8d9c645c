"""keep_warm_ms: an idle server keeps its engine warm with dummy B=1 inferences, at most
that often, without changing what it publishes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from g2h_edge.errors import ConfigError
from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.sources.replay import ReplayConfig, replay


@pytest.mark.parametrize("value", [0.0, -1.0, "x", True, 1e9])
def test_bad_keep_warm_values(value):
    with pytest.raises(ConfigError, match="keep_warm_ms"):
        ServerConfig(engines=("m.onnx",), keep_warm_ms=value)


def _cycles(run_server, **overrides):
    trial = make_stream(4.0, 100.0, seed=7, body_mass_kg=70.0)
    with run_server(**overrides) as (srv, col):
        time.sleep(0.4)  # idle: only keep-warm calls can happen
        idle_calls = srv.server.warm_calls_
        replay(
            trial, ReplayConfig(address=srv.endpoints["listen"], stream="w", max_rate=True, with_events=True)
        )
        assert col.wait_ended("w", 60)
        cycles = col.of_type("cycle", "w")
    return idle_calls, cycles


def test_keep_warm_runs_only_when_asked_and_changes_no_output(run_server):
    calls_off, cycles_off = _cycles(run_server)
    calls_on, cycles_on = _cycles(run_server, keep_warm_ms=20.0)
    assert calls_off == 0
    # 0.4 s idle at one call per >= 20 ms: some calls, never more than the interval allows
    assert 3 <= calls_on <= 0.4 / 0.020 + 5
    assert len(cycles_on) == len(cycles_off) > 0
    for a, b in zip(cycles_off, cycles_on):
        assert (a["side"], a["cycle"]) == (b["side"], b["cycle"])
        np.testing.assert_array_equal(a["y"], b["y"])


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bad_busy_poll_values(value):
    with pytest.raises(ConfigError, match="busy_poll"):
        ServerConfig(engines=("m.onnx",), busy_poll=value)


def test_busy_poll_serves_the_same_cycles_and_stops(run_server):
    t0 = time.process_time()
    _, cycles_off = _cycles(run_server)
    spent_off = time.process_time() - t0
    t0 = time.process_time()
    _, cycles_on = _cycles(run_server, busy_poll=True)
    spent_on = time.process_time() - t0
    print(f"CPU s: sleeping poll {spent_off:.2f}, busy poll {spent_on:.2f}")
    # the loop spun instead of sleeping through the 0.4 s idle wait: CPU time shows it
    assert spent_on > spent_off + 0.25
    assert len(cycles_on) == len(cycles_off) > 0
    for a, b in zip(cycles_off, cycles_on):
        assert (a["side"], a["cycle"]) == (b["side"], b["cycle"])
        np.testing.assert_array_equal(a["y"], b["y"])
