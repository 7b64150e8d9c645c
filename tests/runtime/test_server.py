"""The server over real loopback sockets: cycles, equivalence with offline inference,
bad input isolation, rejects, expiry."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq

from g2h_edge import wire
from g2h_edge.gait import resample_cycle
from g2h_edge.io.synth import make_stream
from g2h_edge.schema import IN_COLS, JM_COLS, mirror_sides
from g2h_edge.sources.replay import ReplayConfig, build_messages, open_publisher, replay, wait_for_subscriber


def _publisher(srv):
    ctx = zmq.Context.instance()
    sock = open_publisher(ctx, ReplayConfig(address=srv.endpoints["listen"], linger_s=5))
    wait_for_subscriber(sock, 10)
    return sock


def _expected(trial, t_last=None):
    """(side, t_start, t_end) of every cycle that the trial's events close."""
    t_last = trial.t[-1] if t_last is None else t_last
    return {
        (s, float(a), float(b))
        for s in "RL"
        for a, b in zip(trial.events[s][:-1], trial.events[s][1:])
        if b <= t_last
    }


def _offline(engine, trial, cycles):
    x = np.stack([resample_cycle(trial.t, trial.q, c["t_start"], c["t_end"]) for c in cycles])
    x = np.stack([xi if c["side"] == "R" else mirror_sides(xi) for xi, c in zip(x, cycles)])
    return engine.infer(x.astype(np.float32))


def test_external_ics_match_offline_inference(run_server, engine, jm_bundle_path, tmp_path):
    trial = make_stream(7.0, 100.0, seed=3, body_mass_kg=72.0)
    with run_server() as (srv, col):
        replay(
            trial,
            ReplayConfig(address=srv.endpoints["listen"], stream="ext", max_rate=True, with_events=True),
        )
        assert col.wait_ended("ext", 60)
    cycles = col.of_type("cycle", "ext")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(trial)
    y_off = _offline(engine, trial, cycles)
    for c, y in zip(cycles, y_off):
        np.testing.assert_allclose(c["y"], y, rtol=0, atol=1e-5)
        np.testing.assert_allclose(c["y_abs"], c["y"] * 72.0, rtol=1e-6)
        assert c["outputs"] == list(JM_COLS) and c["unit"] == "Nm/kg" and c["unit_abs"] == "Nm"
        assert c["quality"]["ic_source"] == "external" and c["latency_ms"] > 0
        assert c["sha256"] == engine.sha256 and c["synthetic"] is True
    assert not col.of_type("reject", "ext")
    # and `g2h-edge predict` (a separately loaded engine) on the same resampled cycles
    from click.testing import CliRunner

    from g2h_edge.io.cli import predict_cmd
    from g2h_edge.io.npz import Gait2HipData, write_gait2hip_npz

    x = np.stack([resample_cycle(trial.t, trial.q, c["t_start"], c["t_end"]) for c in cycles])
    x = np.stack([xi if c["side"] == "R" else mirror_sides(xi) for xi, c in zip(x, cycles)])
    n = len(cycles)
    write_gait2hip_npz(
        tmp_path / "cycles.npz",
        Gait2HipData(
            X=x,
            Y=None,
            subject_id=np.array(["s"] * n),
            height_m=np.full(n, 1.75),
            weight_kg=np.full(n, 72.0),
            speed_label=np.array(["med"] * n),
            synthetic=True,
        ),
    )
    res = CliRunner().invoke(
        predict_cmd,
        [
            "--model",
            str(jm_bundle_path),
            "--input",
            str(tmp_path / "cycles.npz"),
            "-o",
            str(tmp_path / "pred.npz"),
            "--allow-synthetic",
        ],
    )
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "pred.npz") as z:
        np.testing.assert_allclose(np.stack([c["y"] for c in cycles]), z["y"], rtol=0, atol=1e-5)


def test_detection_driven_cycles(run_server):
    trial = make_stream(9.0, 200.0, seed=5, noise_deg=0.2)
    with run_server() as (srv, col):
        replay(
            trial,
            ReplayConfig(address=srv.endpoints["listen"], stream="det", max_rate=True, frames_per_message=7),
        )
        assert col.wait_ended("det", 60)
    cycles = col.of_type("cycle", "det")
    for side in "RL":
        mine = [c for c in cycles if c["side"] == side]
        true = trial.events[side]
        assert len(mine) >= len(true) - 3, (side, len(mine), len(true))
        for c in mine:
            assert c["quality"]["ic_source"] == "detector"
            for t in (c["t_start"], c["t_end"]):
                assert np.min(np.abs(true - t)) < 0.05, (side, t)


def _raw(stream, body, topic=None):
    return [(topic or stream).encode(), msgpack.packb(body, use_bin_type=True)]


def _frames_body(stream, seq, t, q):
    return {
        "v": 1,
        "type": "frames",
        "stream": stream,
        "seq": seq,
        "t": list(map(float, t)),
        "q": np.asarray(q, "<f4").tobytes(),
    }


def test_bad_streams_are_rejected_and_counted_while_a_good_one_keeps_going(run_server):
    good = make_stream(6.0, 100.0, seed=7)
    good_msgs = [p for _, p in build_messages(good, ReplayConfig(stream="good", with_events=True))]
    t = np.arange(10) / 100.0
    q = good.q[:10]
    bad = [
        [b"junk", b"\xc1\xc1\xc1"],  # undecodable
        wire.encode_frames("nometa", 0, t, q),  # no_meta
        wire.encode_meta("bad", 100.0),
        wire.encode_frames("bad", 5, t, q),
        wire.encode_frames("bad", 5, t + 1, q),  # duplicate_seq
        wire.encode_frames("bad", 6, t, q),  # time backwards
        _raw("bad", _frames_body("bad", 7, t + 2, np.full((10, 10), np.nan))),  # non_finite
        _raw("bad", dict(_frames_body("bad", 8, t + 3, q), v=9)),  # unknown_version
        _raw("bad", _frames_body("bad", 9, t + 4, q), topic="other"),  # topic_mismatch
        [b"bad", b"\x80" * (wire.MAX_MESSAGE_BYTES + 1)],  # oversize
    ]
    # a stream in radians that declares degrees, and one in the gait2354 knee sign
    rad, knee = make_stream(3.0, 100.0, seed=8), make_stream(3.0, 100.0, seed=9)
    rad.q = np.deg2rad(rad.q).astype(np.float32)
    knee.q = knee.q.copy()
    knee.q[:, [IN_COLS.index("knee_angle_r"), IN_COLS.index("knee_angle_l")]] *= -1
    conv = [
        p
        for tr, name in ((rad, "rad"), (knee, "knee"))
        for _, p in build_messages(tr, ReplayConfig(stream=name))
    ]
    with run_server() as (srv, col):
        pub = _publisher(srv)
        others = bad + conv
        for i, parts in enumerate(good_msgs):
            pub.send_multipart(parts)
            if i < len(others):
                pub.send_multipart(others[i])
        for parts in others[len(good_msgs) :]:
            pub.send_multipart(parts)
        assert col.wait_ended("good", 60)
        pub.close()
    cycles = col.of_type("cycle", "good")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(good)
    assert not col.of_type("reject", "good")
    reasons = {(r["stream"], r["reason"]) for r in col.of_type("reject")}
    for item in [
        ("junk", "undecodable"),
        ("nometa", "no_meta"),
        ("bad", "duplicate_seq"),
        ("bad", "time_not_increasing"),
        ("bad", "non_finite"),
        ("bad", "unknown_version"),
        ("other", "topic_mismatch"),
        ("bad", "oversize"),
        ("rad", "radians_as_degrees"),
        ("knee", "knee_sign_gait2354"),
    ]:
        assert item in reasons, item
    status = col.of_type("status")[-1]
    counts = status["streams"]["bad"]["rejects"]
    for reason in ("duplicate_seq", "time_not_increasing", "non_finite", "unknown_version", "oversize"):
        assert counts[reason] == 1, (reason, counts)
    assert status["streams"]["bad"]["duplicate_seq"] == 1
    assert status["unattached_rejects"]["undecodable"] == 1
    assert status["rejects"]["no_meta"] == 1
    assert not [c for c in col.of_type("cycle") if c["stream"] in ("rad", "knee")]


def test_gaps_and_impossible_durations_reject_cycles(run_server):
    trial = make_stream(6.0, 100.0, seed=11)
    msgs = build_messages(trial, ReplayConfig(stream="gappy", with_events=True))
    # drop ~0.3 s of frames in the middle: the cycle spanning it has a gap, seq jumps
    drop = {i for i, (ts, _) in enumerate(msgs) if 2.6 < ts < 2.9}
    with run_server() as (srv, col):
        pub = _publisher(srv)
        for i, (_, parts) in enumerate(msgs):
            if i not in drop:
                pub.send_multipart(parts)
        # a second stream whose external ICs come 0.3 s apart: cycle_too_short
        short = make_stream(3.0, 100.0, seed=12)
        pub.send_multipart(wire.encode_meta("short", 100.0))
        for k in range(30):
            sl = slice(10 * k, 10 * k + 10)
            ic = [(float(short.t[10 * k]), "R")] if k % 3 == 0 else None
            pub.send_multipart(wire.encode_frames("short", k, short.t[sl], short.q[sl], ic=ic))
        pub.send_multipart(wire.encode_end("short"))
        assert col.wait_ended("gappy", 60) and col.wait_ended("short", 60)
        pub.close()
    gap = [r for r in col.of_type("reject", "gappy") if r["reason"] == "gap"]
    assert gap and all(r["t_start"] < 2.9 and r["t_end"] > 2.6 for r in gap)
    assert [r["reason"] for r in col.of_type("reject", "short")].count("cycle_too_short") >= 8
    ended = [s["retired"]["gappy"] for s in col.of_type("status") if "gappy" in s["retired"]]
    assert ended[-1]["dropped_seq"] == len(drop) - sum(
        1 for i in drop if wire.decode_input(msgs[i][1]).__class__ is wire.Meta
    )


def test_silent_stream_expires(run_server):
    trial = make_stream(1.0, 100.0, seed=13)
    with run_server(stream_timeout_s=0.3) as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("quiet", 100.0))
        pub.send_multipart(wire.encode_frames("quiet", 0, trial.t[:10], trial.q[:10]))
        assert col.wait_for(
            lambda ms: any(m["type"] == "reject" and m["reason"] == "stream_expired" for m in ms), 10
        )
        assert col.wait_for(
            lambda ms: any(
                m["type"] == "status" and m["retired"].get("quiet", {}).get("state") == "expired" for m in ms
            ),
            10,
        )
        last = col.of_type("status")[-1]
        assert "quiet" not in last["streams"] and last["totals"]["streams_expired"] == 1
        pub.close()


def test_source_status_is_republished(run_server):
    with run_server() as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("imu1", 100.0))
        pub.send_multipart(wire.encode_source_status("imu1", "bridge", {"crc_errors": 4}))
        assert col.wait_for(
            lambda ms: any(
                m["type"] == "status" and m["sources"].get("imu1", {}).get("bridge") == {"crc_errors": 4}
                for m in ms
            ),
            10,
        )
        pub.close()


@pytest.mark.parametrize("sides", [("R",), ("L",)])
def test_sides_option(run_server, sides):
    trial = make_stream(5.0, 100.0, seed=14)
    with run_server(sides=sides) as (srv, col):
        replay(
            trial,
            ReplayConfig(address=srv.endpoints["listen"], stream="one", max_rate=True, with_events=True),
        )
        assert col.wait_ended("one", 60)
    got = {c["side"] for c in col.of_type("cycle", "one")}
    assert got == set(sides)


def _mutations(rng, good_parts):
    """Malformed variants of valid messages: dropped/retyped fields, random bytes."""
    junk_values = [None, True, -1, 2**64 - 1, 1.5, "x", b"\x00" * 3, [], {}, [1, "R"], float("nan"), "é" * 70]
    out = []
    for _ in range(300):
        topic, body = good_parts[rng.integers(len(good_parts))]
        kind = rng.integers(4)
        if kind == 0:
            data = bytes(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8))
            out.append([topic, data])
            continue
        msg = msgpack.unpackb(body, raw=False)
        key = list(msg)[rng.integers(len(msg))]
        if kind == 1:
            del msg[key]
        else:
            msg[key] = junk_values[rng.integers(len(junk_values))]
        out.append([topic, msgpack.packb(msg, use_bin_type=True)])
    return out


def test_fuzzed_inputs_never_stop_the_server(run_server):
    rng = np.random.default_rng(0)
    good = make_stream(5.0, 100.0, seed=15)
    good_msgs = [p for _, p in build_messages(good, ReplayConfig(stream="good", with_events=True))]
    victim = make_stream(2.0, 100.0, seed=16)
    seeds = [p for _, p in build_messages(victim, ReplayConfig(stream="victim", with_events=True))]
    fuzz = _mutations(rng, seeds)
    with run_server() as (srv, col):
        pub = _publisher(srv)
        for i, parts in enumerate(good_msgs):
            pub.send_multipart(parts)
            for f in fuzz[i * 3 : (i + 1) * 3]:
                pub.send_multipart(f)
        assert col.wait_ended("good", 60)
        pub.close()
    cycles = col.of_type("cycle", "good")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(good)
    rejects = col.of_type("reject")
    assert len(rejects) >= 150
    assert not [r for r in rejects if r["reason"] == "internal_error"], rejects[:3]


def test_stream_limit(run_server):
    with run_server(max_streams=2) as (srv, col):
        pub = _publisher(srv)
        for name in ("a", "b", "c"):
            pub.send_multipart(wire.encode_meta(name, 100.0))
        assert col.wait_for(
            lambda ms: any(
                m["type"] == "reject" and m["stream"] == "c" and m["reason"] == "too_many_streams" for m in ms
            ),
            10,
        )
        pub.close()


def test_permuted_radian_channels_give_the_same_cycles(run_server, engine):
    trial = make_stream(5.0, 100.0, seed=17)
    order = list(reversed(IN_COLS))
    idx = [IN_COLS.index(c) for c in order]
    with run_server() as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("perm", 100.0, order, "rad"))
        ev = sorted((float(x), s) for s in "RL" for x in trial.events[s])
        for k in range(0, trial.t.shape[0], 10):
            tm = trial.t[k : k + 10]
            ic = [e for e in ev if tm[0] <= e[0] < tm[-1] + 0.01]
            q = np.deg2rad(trial.q[k : k + 10][:, idx].astype(np.float64))
            pub.send_multipart(wire.encode_frames("perm", k // 10, tm, q, ic=ic or None))
        pub.send_multipart(wire.encode_end("perm"))
        assert col.wait_ended("perm", 60)
        pub.close()
    cycles = col.of_type("cycle", "perm")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(trial)
    for c, y in zip(cycles, _offline(engine, trial, cycles)):
        np.testing.assert_allclose(c["y"], y, rtol=0, atol=1e-4)  # float32 rad round trip


def test_streams_without_meta_use_the_cli_default_rate(run_server):
    trial = make_stream(4.0, 100.0, seed=18)
    msgs = [p for _, p in build_messages(trial, ReplayConfig(stream="nometa", with_events=True))]
    frames_only = [p for p in msgs if not isinstance(wire.decode_input(p), wire.Meta)]
    with run_server(default_rate_hz=100.0) as (srv, col):
        pub = _publisher(srv)
        for parts in frames_only:
            pub.send_multipart(parts)
        assert col.wait_ended("nometa", 60)
        pub.close()
    cycles = col.of_type("cycle", "nometa")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(trial)


def test_server_connects_to_a_binding_publisher(run_server, tmp_path):
    import threading

    trial = make_stream(4.0, 100.0, seed=19)
    addr = f"ipc://{tmp_path}/pub"
    th = threading.Thread(
        target=replay,
        args=(trial, ReplayConfig(address=addr, bind=True, stream="rev", max_rate=True, with_events=True)),
    )
    with run_server(listen=None, connect=(addr,)) as (srv, col):
        assert "listen" not in srv.endpoints
        th.start()  # binds after the server connects: zmq reconnects to it
        assert col.wait_ended("rev", 60)
    th.join(30)
    cycles = col.of_type("cycle", "rev")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(trial)


def test_external_ic_backlog_is_bounded(run_server):
    trial = make_stream(1.0, 100.0, seed=20)
    with run_server() as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("flood", 100.0))
        for k in range(3):  # 192 events far beyond the data
            ic = [(100.0 + k + j / 100.0, "R") for j in range(64)]
            sl = slice(10 * k, 10 * k + 10)
            pub.send_multipart(wire.encode_frames("flood", k, trial.t[sl], trial.q[sl], ic=ic))
        assert col.wait_for(
            lambda ms: any(
                m["type"] == "reject" and m["stream"] == "flood" and m["reason"] == "ic_backlog" for m in ms
            ),
            10,
        )
        pub.close()


@pytest.mark.parametrize("cpu_timing", [False, True])
def test_cpu_timing_adds_cpu_ms_only_when_asked(run_server, cpu_timing):
    trial = make_stream(5.0, 200.0, seed=6, noise_deg=0.2)
    with run_server(cpu_timing=cpu_timing) as (srv, col):
        replay(trial, ReplayConfig(address=srv.endpoints["listen"], stream="cpu", max_rate=True))
        assert col.wait_ended("cpu", 60)
    cycles = col.of_type("cycle", "cpu")
    assert len(cycles) >= 4
    for c in cycles:
        if cpu_timing:  # the thread's CPU time from the drain's start to the batch's inference
            assert 0.0 <= c["cpu_ms"] < 10_000.0 and np.isfinite(c["cpu_ms"])
        else:
            assert "cpu_ms" not in c
