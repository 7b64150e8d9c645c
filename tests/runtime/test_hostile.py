"""Regression tests of the hostile-input probe's server/stream findings (issue 16), each
over real loopback sockets against a running server."""

from __future__ import annotations

import numpy as np
import zmq

from g2h_edge import wire
from g2h_edge.io.synth import make_stream
from g2h_edge.sources.replay import ReplayConfig, build_messages, open_publisher, wait_for_subscriber

BIG = 2**64 - 1


def _publisher(srv):
    ctx = zmq.Context.instance()
    sock = open_publisher(ctx, ReplayConfig(address=srv.endpoints["listen"], linger_s=5))
    wait_for_subscriber(sock, 10)
    return sock


def _status_with(col, pred, timeout=10):
    """Wait for a status message for which ``pred(status)`` holds; return it (or None)."""
    found = []

    def check(msgs):
        found[:] = [m for m in msgs if m["type"] == "status" and pred(m)]
        return bool(found)

    return found[-1] if col.wait_for(check, timeout) else None


def _expected(trial):
    return {(s, float(a), float(b)) for s in "RL" for a, b in zip(trial.events[s][:-1], trial.events[s][1:])}


def test_huge_seq_jumps_never_stop_the_status(run_server):
    """#1: seq jumping to 2**64-1 on two streams overflows the summed dropped_seq."""
    trial = make_stream(1.0, 100.0, seed=1)
    with run_server() as (srv, col):
        pub = _publisher(srv)
        for name in ("j1", "j2"):
            pub.send_multipart(wire.encode_meta(name, 100.0))
            pub.send_multipart(wire.encode_frames(name, 0, trial.t[:10], trial.q[:10]))
            pub.send_multipart(wire.encode_frames(name, BIG, trial.t[10:20], trial.q[10:20]))
        st = _status_with(col, lambda m: {"j1", "j2"} <= set(m["streams"]))
        assert st is not None, "no status after the seq jumps"
        assert st["streams"]["j1"]["dropped_seq"] == BIG - 1
        assert st["totals"]["dropped_seq"] == BIG  # saturated, not an error
        pub.send_multipart(wire.encode_end("j1"))
        assert _status_with(col, lambda m: "j1" in m["retired"]) is not None
        assert (
            _status_with(col, lambda m: "j1" not in m["retired"] and "j1" not in m["streams"]) is not None
        )  # retired are cleared
        pub.close()


def test_a_rejected_message_changes_no_stream_state(run_server):
    """#2: a message refused for its time must not move the stream's last seq."""
    trial = make_stream(1.0, 100.0, seed=2)
    with run_server() as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("s", 100.0))
        pub.send_multipart(wire.encode_frames("s", 0, trial.t[:10], trial.q[:10]))
        pub.send_multipart(wire.encode_frames("s", BIG, trial.t[:10], trial.q[:10]))
        for k in range(1, 4):
            sl = slice(10 * k, 10 * k + 10)
            pub.send_multipart(wire.encode_frames("s", k, trial.t[sl], trial.q[sl]))
        st = _status_with(
            col,
            lambda m: (
                m["streams"].get("s", {}).get("frames", 0)
                + sum(m["streams"].get("s", {}).get("rejects", {}).values())
                >= 40
            ),
        )
        pub.close()
    assert st is not None
    s = st["streams"]["s"]
    assert s["rejects"] == {"time_not_increasing": 1}, s
    assert (s["messages"], s["frames"], s["duplicate_seq"], s["dropped_seq"]) == (4, 40, 0, 0)


def test_a_restarted_publisher_starts_a_new_session(run_server):
    """#3: the same stream id sent again from seq 0 after a meta (a restarted publisher)
    is a new session, not duplicates."""
    trial = make_stream(5.0, 100.0, seed=3)
    msgs = [p for _, p in build_messages(trial, ReplayConfig(stream="r", with_events=True))]
    first = msgs[:-1]  # killed: no end
    with run_server() as (srv, col):
        pub = _publisher(srv)
        for parts in first + msgs:
            pub.send_multipart(parts)
        assert col.wait_ended("r", 60)
        pub.close()
    cycles = col.of_type("cycle", "r")
    assert len(cycles) == 2 * len(_expected(trial))
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(trial)
    assert not [r for r in col.of_type("reject", "r") if r["reason"] == "duplicate_seq"]
    st = _status_with(col, lambda m: m["totals"].get("streams_ended", 0) >= 1)
    assert st["totals"]["streams_restarted"] == 1


def test_source_names_per_stream_are_capped_and_counted(run_server):
    """#4: unbounded source names per stream made the status grow without bound."""
    n = wire.MAX_SOURCES_PER_STREAM + 5
    with run_server() as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("src", 100.0))
        for i in range(n):
            pub.send_multipart(wire.encode_source_status("src", f"s{i}", {"n": i}))
        st = _status_with(
            col,
            lambda m: (
                "s0" in m["sources"].get("src", {})
                and m["streams"]["src"]["rejects"].get("too_many_sources", 0) == 5
            ),
        )
        pub.close()
    assert st is not None
    assert len(st["sources"]["src"]) == wire.MAX_SOURCES_PER_STREAM
    assert len(st["streams"]["src"]["sources"]) == wire.MAX_SOURCES_PER_STREAM


def test_an_input_part_beyond_the_transport_cap_drops_the_connection(run_server):
    """#5: a huge message was read whole (GBs of RSS) before its oversize reject; now the
    input socket's ZMQ_MAXMSGSIZE closes that sender's connection unread, while a body
    just over the protocol limit still gets its oversize reject."""
    with run_server() as (srv, col):
        pub = _publisher(srv)
        mon = pub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        pub.send_multipart([b"big", b"\x80" * (wire.MAX_MESSAGE_BYTES + 1)])
        assert col.wait_for(
            lambda ms: any(m["type"] == "reject" and m["reason"] == "oversize" for m in ms), 10
        )
        assert not mon.poll(500), "a body just over the limit must not cost the connection"
        pub.send_multipart([b"big", b"\x80" * (wire.MAX_INPUT_PART_BYTES + 1)])
        assert mon.poll(10_000), "the server kept a connection sending oversized parts"
        pub.disable_monitor()
        mon.close()
        pub.close()


def test_defaults_fit_the_stated_memory_budget():
    """#6: per-stream caps x max streams, and both queues, fit MEMORY_BUDGET_BYTES."""
    from g2h_edge.runtime.config import (
        MEMORY_BUDGET_BYTES,
        OUTPUT_MESSAGE_BYTES_MAX,
        STREAM_BYTES_MAX,
        ServerConfig,
    )

    cfg = ServerConfig(engines=("x",))
    total = (
        cfg.max_streams * STREAM_BYTES_MAX
        + cfg.rcv_hwm * wire.MAX_INPUT_PART_BYTES
        + cfg.snd_hwm * OUTPUT_MESSAGE_BYTES_MAX
    )
    assert total <= MEMORY_BUDGET_BYTES == 2**30


def test_a_full_table_evicts_the_longest_idle_stream_and_tells_it(run_server):
    """#7: holding max_streams denied every new stream and nobody learned why."""
    import time

    with run_server(max_streams=2, evict_idle_s=0.3) as (srv, col):
        pub = _publisher(srv)
        pub.send_multipart(wire.encode_meta("old", 100.0))
        pub.send_multipart(wire.encode_meta("busy", 100.0))
        time.sleep(0.6)
        pub.send_multipart(wire.encode_meta("busy", 100.0))  # busy stays active
        pub.send_multipart(wire.encode_meta("new", 100.0))  # evicts "old"
        pub.send_multipart(wire.encode_meta("late", 100.0))  # both active: refused
        st = _status_with(col, lambda m: set(m["streams"]) == {"busy", "new"})
        assert st is not None
        assert (
            st["retired"].get("old", {}).get("state") == "evicted"
            or _status_with(col, lambda m: "old" in m["retired"]) is not None
        )
        pub.close()
    reasons = {(r["stream"], r["reason"]) for r in col.of_type("reject")}
    assert ("old", "stream_evicted") in reasons and ("late", "too_many_streams") in reasons


def test_a_meta_change_mid_stream_is_rejected_not_silent(run_server):
    """#12: a meta changing body mass / units / channel order mid-stream was applied
    silently (wrong mass, swapped sides, radians)."""
    trial = make_stream(5.0, 100.0, seed=4, body_mass_kg=70.0)
    msgs = [p for _, p in build_messages(trial, ReplayConfig(stream="m", with_events=True))]
    forged = [
        wire.encode_meta("m", 100.0, body_mass_kg=95.0),
        wire.encode_meta("m", 100.0, units="rad", body_mass_kg=70.0),
        wire.encode_meta("m", 100.0, tuple(reversed(wire.IN_COLS)), body_mass_kg=70.0),
    ]
    with run_server() as (srv, col):
        pub = _publisher(srv)
        half = len(msgs) // 2
        for parts in msgs[:half] + forged + msgs[half:]:
            pub.send_multipart(parts)
        assert col.wait_ended("m", 60)
        pub.close()
    changed = [r for r in col.of_type("reject", "m") if r["reason"] == "meta_changed"]
    assert len(changed) == 3
    assert "body_mass_kg" in changed[0]["detail"] and "units" in changed[1]["detail"]
    assert "channels" in changed[2]["detail"]
    cycles = col.of_type("cycle", "m")
    assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == _expected(trial)
    assert {c["body_mass_kg"] for c in cycles} == {70.0}


def test_far_future_external_ics_are_rejected_once_per_stream(run_server):
    """#13: every IC beyond the data produced its own reject at the end (128 per stream)."""
    trial = make_stream(1.0, 100.0, seed=20)
    with run_server() as (srv, col):
        pub = _publisher(srv)
        for name in ("f1", "f2"):
            pub.send_multipart(wire.encode_meta(name, 100.0))
            for k in range(4):  # 256 events far beyond the data
                ic = [(100.0 + k + j / 100.0, "R") for j in range(64)]
                sl = slice(10 * k, 10 * k + 10)
                pub.send_multipart(wire.encode_frames(name, k, trial.t[sl], trial.q[sl], ic=ic))
            pub.send_multipart(wire.encode_end(name))
        assert col.wait_ended("f1", 20) and col.wait_ended("f2", 20)
        st = _status_with(col, lambda m: "f2" in m["retired"])
        pub.close()
    for name in ("f1", "f2"):
        rej = col.of_type("reject", name)
        assert [r["reason"] for r in rej] == ["ic_backlog", "ic_after_data"], rej
        assert rej[0]["count"] == 64 and rej[1]["count"] == 128  # first overflow; all left
    assert st["retired"]["f2"]["ic_dropped"] == 128
    assert np.all([r["reason"] in wire.REJECT_REASONS for r in col.of_type("reject")])
