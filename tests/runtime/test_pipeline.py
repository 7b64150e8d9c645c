"""The socket-free pipeline: decoded messages in, ready cycles and counted rejects out."""

from __future__ import annotations

import types

import numpy as np
import pytest

from g2h_edge import wire
from g2h_edge.errors import ConfigError, WireError
from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.pipeline import Pipeline, RejectLog
from g2h_edge.runtime.stream import Reject
from g2h_edge.schema import IN_COLS
from g2h_edge.sources.replay import ReplayConfig, build_messages


def _pipeline(**overrides) -> Pipeline:
    return Pipeline(ServerConfig(engines=("unused.onnx",), **overrides))


def _msgs(trial, stream, **kw):
    """The decoded messages `g2h-edge replay` would send for ``trial``."""
    rc = ReplayConfig(stream=stream, **kw)
    return [wire.decode_input(parts) for _, parts in build_messages(trial, rc)]


def _run(pipe, msgs, t0=0.0):
    ready, rejects = [], []
    for i, m in enumerate(msgs):
        r, j = pipe.handle(m, t0 + i * 1e-3)
        ready += r
        rejects += j
    return ready, rejects


def _expected(trial):
    return {(s, float(a), float(b)) for s in "RL" for a, b in zip(trial.events[s][:-1], trial.events[s][1:])}


def test_external_ics_make_every_cycle_and_end_retires_the_stream():
    trial = make_stream(6.0, 100.0, seed=3, body_mass_kg=70.0)
    pipe = _pipeline()
    ready, rejects = _run(pipe, _msgs(trial, "s1", with_events=True))
    assert not rejects
    assert {(r.side, r.t_start, r.t_end) for r in ready} == _expected(trial)
    for r in ready:
        assert r.x.shape == (180, 10) and r.x.dtype == np.float32
        assert r.body_mass_kg == 70.0 and r.quality["ic_source"] == "external"
    st = pipe.status(1.0)
    assert st["streams"] == {} and st["retired"]["s1"]["state"] == "ended"
    assert st["retired"]["s1"]["cycles"] == len(ready)
    assert st["totals"]["streams_ended"] == 1 and st["totals"]["cycles"] == len(ready)
    pipe.status_sent()
    assert pipe.status(2.0)["retired"] == {}


def test_detected_ics_make_cycles():
    trial = make_stream(8.0, 200.0, seed=5, noise_deg=0.2)
    ready, rejects = _run(_pipeline(), _msgs(trial, "det", frames_per_message=7))
    assert len(ready) >= len(_expected(trial)) - 4
    assert all(r.quality["ic_source"] == "detector" for r in ready)


def test_stream_rejects_are_counted_once_in_the_log_and_status():
    trial = make_stream(2.0, 100.0, seed=7)
    t, q = trial.t[:10], trial.q[:10]
    pipe = _pipeline()
    msgs = [
        wire.Meta("a", 100.0),
        wire.Frames("a", 5, t, q),
        wire.Frames("a", 5, t + 1, q),  # duplicate_seq
        wire.Frames("a", 6, t, q),  # time backwards
        wire.Frames("nometa", 0, t, q),
    ]  # no_meta (no live stream)
    _, rejects = _run(pipe, msgs)
    assert [(r.stream, r.reason) for r in rejects] == [
        ("a", "duplicate_seq"),
        ("a", "time_not_increasing"),
        ("nometa", "no_meta"),
    ]
    assert rejects[0].context() == {"seq": 5} and rejects[1].context() == {"seq": 6}
    st = pipe.status(1.0)
    assert st["streams"]["a"]["rejects"] == {"duplicate_seq": 1, "time_not_increasing": 1}
    assert st["streams"]["a"]["duplicate_seq"] == 1 and st["streams"]["a"]["messages"] == 1
    assert st["unattached_rejects"] == {"no_meta": 1}
    assert st["rejects"] == {"duplicate_seq": 1, "time_not_increasing": 1, "no_meta": 1}


def test_undecodable_input_is_counted_against_its_live_stream():
    pipe = _pipeline()
    pipe.handle(wire.Meta("a", 100.0), 0.0)
    for parts in ([b"a", b"\xc1"], [b"zz", b"\xc1"], [b"\xff", b""]):
        try:
            wire.decode_input(parts)
        except WireError as exc:
            (rej,) = pipe.refuse(parts, exc)
            assert rej.reason == "undecodable"
    st = pipe.status(0.0)
    assert st["streams"]["a"]["rejects"] == {"undecodable": 1}
    assert st["unattached_rejects"] == {"undecodable": 2}


def test_silent_streams_expire_and_are_retired():
    trial = make_stream(1.0, 100.0, seed=13)
    pipe = _pipeline(stream_timeout_s=0.5)
    _run(pipe, [wire.Meta("q", 100.0), wire.Frames("q", 0, trial.t[:10], trial.q[:10])])
    assert pipe.expire(0.2) == ([], [])
    ready, rejects = pipe.expire(5.0)
    assert [r.reason for r in rejects] == ["stream_expired"]
    st = pipe.status(5.0)
    assert st["retired"]["q"]["state"] == "expired"
    assert st["retired"]["q"]["rejects"] == {"stream_expired": 1}
    assert st["totals"]["streams_expired"] == 1 and st["totals"]["live_streams"] == 0


def test_stream_limit_refuses_new_streams():
    pipe = _pipeline(max_streams=2)
    rejects = [j for s in "abc" for j in pipe.handle(wire.Meta(s, 100.0), 0.0)[1]]
    assert [(r.stream, r.reason) for r in rejects] == [("c", "too_many_streams")]
    assert set(pipe.status(0.0)["streams"]) == {"a", "b"}


def test_convention_gate_blocks_a_radian_stream():
    trial = make_stream(4.0, 100.0, seed=8)
    trial.q = np.deg2rad(trial.q).astype(np.float32)
    pipe = _pipeline()
    ready, rejects = _run(pipe, _msgs(trial, "rad", with_events=True))
    assert not ready
    assert {r.reason for r in rejects} == {"radians_as_degrees"}
    cyc = [r for r in rejects if r.cycle is not None]
    assert cyc and all(r.side in "RL" and r.t_end > r.t_start for r in cyc)
    assert pipe.status(9.0)["retired"]["rad"]["convention"] == "blocked:radians_as_degrees"


def test_permuted_radian_channels_are_reordered():
    trial = make_stream(5.0, 100.0, seed=17)
    order = list(reversed(IN_COLS))
    idx = [IN_COLS.index(c) for c in order]
    pipe = _pipeline()
    pipe.handle(wire.Meta("p", 100.0, tuple(order), "rad"), 0.0)
    ev = sorted((float(x), s) for s in "RL" for x in trial.events[s])
    ready = []
    for k in range(0, trial.t.shape[0], 10):
        tm = trial.t[k : k + 10]
        ic = [e for e in ev if tm[0] <= e[0] < tm[-1] + 0.01]
        qk = np.deg2rad(trial.q[k : k + 10][:, idx].astype(np.float64)).astype(np.float32)
        r, j = pipe.handle(wire.Frames("p", k // 10, tm, qk, ic), 0.0)
        assert not j
        ready += r
    assert {(r.side, r.t_start, r.t_end) for r in ready} == {
        e for e in _expected(trial) if e[2] <= trial.t[-1]
    }


def test_engine_failures_are_counted_via_reject_cycle():
    trial = make_stream(4.0, 100.0, seed=3)
    pipe = _pipeline()
    ready, _ = _run(pipe, _msgs(trial, "e", with_events=True)[:-1])  # no end yet
    rej = pipe.reject_cycle(ready[0], "engine_error", "boom")
    assert (rej.stream, rej.reason, rej.cycle, rej.side) == (
        "e",
        "engine_error",
        ready[0].index,
        ready[0].side,
    )
    pipe.handle(wire.End("e"), 1.0)
    pipe.reject_cycle(ready[1], "engine_error", "boom")  # in flight when it ended
    st = pipe.status(1.0)
    assert st["retired"]["e"]["rejects"] == {"engine_error": 2}
    assert st["rejects"] == {"engine_error": 2} and st["unattached_rejects"] == {}


def test_a_bug_is_an_internal_error_reject_not_a_crash():
    pipe = _pipeline()
    ready, rejects = pipe.handle(types.SimpleNamespace(stream="x"), 0.0)
    assert ready == [] and [r.reason for r in rejects] == ["internal_error"]
    assert pipe.status(0.0)["unattached_rejects"] == {"internal_error": 1}


def test_reject_log_is_the_one_counter():
    log = RejectLog()
    log.add(Reject("a", "gap", "x", side="R", cycle=2, t_start=1.0, t_end=2.0))
    log.add(Reject(None, "undecodable", "y"), attached=False)
    log.count("a", "engine_error")
    assert [r.reason for r in log.take()] == ["gap", "undecodable"] and log.take() == []
    assert log.of_stream("a") == {"gap": 1, "engine_error": 1}
    assert log.unattached == {"undecodable": 1}
    assert log.forget("a") == {"gap": 1, "engine_error": 1} and log.of_stream("a") == {}
    assert sum(log.by_reason.values()) == 3


def test_pipeline_needs_a_server_config():
    with pytest.raises(ConfigError, match="Pipeline needs a ServerConfig"):
        Pipeline({"engines": ["x"]})


def _frames(trial, stream, k, seq=None, ic=None):
    sl = slice(10 * k, 10 * k + 10)
    return wire.Frames(stream, k if seq is None else seq, trial.t[sl], trial.q[sl], ic or [])


@pytest.mark.parametrize("bad_seq", [2**64 - 1, 5])
def test_a_refused_message_changes_no_stream_state(bad_seq):
    trial = make_stream(1.0, 100.0, seed=2)
    pipe = _pipeline()
    _run(pipe, [wire.Meta("s", 100.0), _frames(trial, "s", 0)])
    _, rej = pipe.handle(_frames(trial, "s", 0, seq=bad_seq), 0.0)  # time goes back
    assert [r.reason for r in rej] == ["time_not_increasing"]
    _, rej = _run(pipe, [_frames(trial, "s", k) for k in (1, 2)])
    assert rej == []
    s = pipe.status(0.0)["streams"]["s"]
    assert (s["messages"], s["duplicate_seq"], s["dropped_seq"]) == (3, 0, 0)


def test_seq_reset_after_a_meta_is_a_new_session_and_without_one_a_duplicate():
    trial = make_stream(1.0, 100.0, seed=2)
    pipe = _pipeline()
    _run(pipe, [wire.Meta("s", 100.0), _frames(trial, "s", 0), _frames(trial, "s", 1)])
    _, rej = pipe.handle(_frames(trial, "s", 0), 0.0)  # no meta in between
    assert [r.reason for r in rej] == ["duplicate_seq"]
    _, rej = _run(pipe, [wire.Meta("s", 100.0), _frames(trial, "s", 0)])
    assert rej == []
    st = pipe.status(0.0)
    assert st["retired"]["s"]["state"] == "restarted" and st["retired"]["s"]["messages"] == 2
    assert st["streams"]["s"]["messages"] == 1 and st["totals"]["streams_restarted"] == 1
    assert st["totals"]["messages"] == 3


@pytest.mark.parametrize(
    "meta, field",
    [
        (wire.Meta("m", 100.0, body_mass_kg=90.0), "body_mass_kg"),
        (wire.Meta("m", 100.0, units="rad", body_mass_kg=70.0), "units"),
        (wire.Meta("m", 100.0, tuple(reversed(IN_COLS)), body_mass_kg=70.0), "channels"),
    ],
)
def test_meta_changes_are_refused_and_only_a_new_session_takes_them(meta, field):
    trial = make_stream(1.0, 100.0, seed=2)
    pipe = _pipeline()
    _run(pipe, [wire.Meta("m", 100.0, body_mass_kg=70.0), _frames(trial, "m", 0)])
    _, rej = pipe.handle(meta, 0.0)
    assert [r.reason for r in rej] == ["meta_changed"] and field in rej[0].detail
    assert pipe.streams_["m"].meta_.body_mass_kg == 70.0 and pipe.streams_["m"].meta_ != meta
    _, rej = pipe.handle(wire.Meta("m", 200.0, body_mass_kg=70.0), 0.0)  # rate: applied
    assert rej == [] and pipe.streams_["m"].rate_hz_ == 200.0
    pipe.handle(meta, 0.0)
    _, rej = pipe.handle(_frames(trial, "m", 0), 0.0)  # restart: new meta
    assert rej == [] and pipe.streams_["m"].meta_ == meta


def test_a_full_table_evicts_the_stream_idle_longest_or_refuses():
    pipe = _pipeline(max_streams=2, evict_idle_s=1.0)
    pipe.handle(wire.Meta("a", 100.0), 0.0)
    pipe.handle(wire.Meta("b", 100.0), 0.5)
    _, rej = pipe.handle(wire.Meta("c", 100.0), 1.2)  # a idle 1.2 s >= 1 s
    assert [(r.stream, r.reason) for r in rej] == [("a", "stream_evicted")]
    _, rej = pipe.handle(wire.Meta("d", 100.0), 1.3)  # b idle 0.8 s: refuse d
    assert [(r.stream, r.reason) for r in rej] == [("d", "too_many_streams")]
    st = pipe.status(1.3)
    assert set(st["streams"]) == {"b", "c"} and st["retired"]["a"]["state"] == "evicted"
    assert st["totals"]["streams_evicted"] == 1 and st["unattached_rejects"] == {"too_many_streams": 1}


def test_sources_per_stream_are_capped():
    pipe = _pipeline()
    pipe.handle(wire.Meta("s", 100.0), 0.0)
    rejects = []
    for i in range(wire.MAX_SOURCES_PER_STREAM + 2):
        rejects += pipe.handle(wire.SourceStatus("s", f"src{i}", {"n": i}), 0.0)[1]
    rejects += pipe.handle(wire.SourceStatus("s", "src0", {"n": 7}), 0.0)[1]  # known: ok
    assert [r.reason for r in rejects] == ["too_many_sources"] * 2
    st = pipe.status(0.0)
    assert len(st["sources"]["s"]) == wire.MAX_SOURCES_PER_STREAM
    assert st["streams"]["s"]["sources"]["src0"] == {"n": 7}


def test_far_future_ics_make_one_reject_each_kind_per_stream():
    trial = make_stream(1.0, 100.0, seed=20)
    pipe = _pipeline()
    msgs = (
        [wire.Meta("f", 100.0)]
        + [_frames(trial, "f", k, ic=[(100.0 + k + j / 100.0, "R") for j in range(64)]) for k in range(5)]
        + [wire.End("f")]
    )
    _, rejects = _run(pipe, msgs)
    assert [(r.reason, r.count) for r in rejects] == [("ic_backlog", 64), ("ic_after_data", 128)]
    assert pipe.status(0.0)["retired"]["f"]["ic_dropped"] == 192
