"""LSL adapter: channel mapping, units, config checks, and real LSL streams on this machine
(an outlet and the adapter's inlet in one process) published to a plain ZeroMQ subscriber."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
import zmq

from g2h_edge import wire
from g2h_edge.errors import ConfigError
from g2h_edge.schema import IN_COLS
from g2h_edge.sources.lsl import LslAdapter, LslConfig, map_channels, open_inlet, units_from_lsl

EXTRA = ("pelvis_tx", "lumbar_extension", "subtalar_angle_r", "mtp_angle_l")


def test_map_channels_by_label_any_order_extra_channels_ignored():
    labels = list(EXTRA[:2]) + list(reversed(IN_COLS)) + list(EXTRA[2:])
    idx = map_channels([lab.upper() for lab in labels])  # case-insensitive
    assert [labels[i] for i in idx] == list(IN_COLS)


def test_map_channels_with_a_mapping():
    labels = ["RHipX" if c == "hip_flexion_r" else c for c in IN_COLS]
    idx = map_channels(labels, {"hip_flexion_r": "RHipX"})
    assert idx == list(range(10))


@pytest.mark.parametrize(
    "labels,mapping,match",
    [
        (list(IN_COLS[:9]) + ["other"], None, r"missing required column\(s\) \[.ankle_angle_l.\]"),
        (list(IN_COLS) + ["ANKLE_angle_l"], None, "matches 2 columns"),
        ([""] * 10, None, "has no channel labels"),
        (list(IN_COLS), {"hip_flexion_r": "nope"}, "hip_flexion_r \\(label 'nope'\\)"),
    ],
)
def test_map_channels_errors(labels, mapping, match):
    with pytest.raises(ConfigError, match=match):
        map_channels(labels, mapping)


@pytest.mark.parametrize(
    "units,override,want",
    [
        (["degrees"] * 10, None, "deg"),
        (["deg", "Degree"] * 5, None, "deg"),
        (["radians"] * 10, None, "rad"),
        ([""] * 10, "rad", "rad"),
        (["rad"] * 10, "deg", "deg"),
    ],
)
def test_units_from_lsl(units, override, want):
    assert units_from_lsl(units, override) == want


@pytest.mark.parametrize(
    "units,match",
    [
        ([""] * 10, "does not say"),
        (["deg"] * 9 + ["rad"], "mixed or unknown"),
        (["mm"] * 10, "mixed or unknown"),
    ],
)
def test_units_from_lsl_errors(units, match):
    with pytest.raises(ConfigError, match=match):
        units_from_lsl(units)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "name, a type or a source_id"),
        ({"name": "x", "units": "grad"}, "units"),
        ({"name": "x", "mapping": {"hip_r": "a"}}, "not input channels"),
        ({"name": "x", "rate_hz": 0.1}, "rate_hz"),
        ({"name": "x", "frames_per_message": 0}, "frames_per_message"),
        ({"name": "x", "stream": "bad id!"}, "stream"),
        ({"name": "it's"}, "without single quotes"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LslConfig(**kwargs)


# ------------------------------------------------------------------ real LSL streams
# (the `pylsl` fixture, tests/conftest.py, skips when LSL cannot work on this machine)
def make_outlet(pylsl, labels, unit, rate=100.0, fmt=None, describe=True):
    name = f"g2h_test_{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(
        name, "JointAngles", len(labels), rate, fmt if fmt is not None else pylsl.cf_float32, name
    )
    if describe:
        chans = info.desc().append_child("channels")
        for lab in labels:
            ch = chans.append_child("channel")
            ch.append_child_value("label", lab)
            ch.append_child_value("unit", unit)
    return name, pylsl.StreamOutlet(info, chunk_size=1)


def _walk(n, rate):
    from g2h_edge.io.synth import make_stream

    trial = make_stream(n / rate + 0.05, rate, seed=5)
    return trial.q[:n].astype(np.float64)  # (n, 10) deg, IN_COLS order


@pytest.fixture
def sub():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sock.close(0)
    ctx.term()


def _drain(sock, until_end: float):
    msgs, deadline = [], time.monotonic() + until_end
    while time.monotonic() < deadline:
        if sock.poll(100):
            msg = wire.decode_input(sock.recv_multipart())
            msgs.append(msg)
            if isinstance(msg, wire.End):
                break
    return msgs


def test_lsl_stream_to_protocol_frames(pylsl, sub):
    """Shuffled labels + extra channels + radians + NaN samples: the published frames are the
    10 input channels in IN_COLS order, the units say rad, bad samples are counted."""
    sock, addr = sub
    labels = [IN_COLS[i] for i in (3, 0, 9, 1, 8, 2, 7, 4, 6, 5)] + list(EXTRA)
    perm = [labels.index(c) for c in IN_COLS]
    name, outlet = make_outlet(pylsl, labels, "radians")
    cfg = LslConfig(
        name=name,
        address=addr,
        stream="lsl1",
        resolve_timeout_s=10,
        wait_subscriber_s=10,
        frames_per_message=7,
        status_interval_s=0.2,
    )
    inlet, info = open_inlet(cfg)
    adapter = LslAdapter(cfg, inlet, info)
    assert adapter.units == "rad" and adapter.rate_hz == 100.0 and adapter.stream == "lsl1"
    inlet.open_stream(timeout=10)

    def main():
        adapter.open()  # waits for the subscription (needs the SUB side polled)
        adapter.run()

    th = threading.Thread(target=main, daemon=True)
    th.start()
    msgs = []
    deadline = time.monotonic() + 15
    while not msgs and time.monotonic() < deadline:
        msgs += _drain(sock, 0.2)  # the SUB socket processes the connection while polled
    assert msgs and isinstance(msgs[0], wire.Meta)
    n = 300
    q_deg = _walk(n, 100.0)
    data = np.zeros((n, len(labels)))
    data[:, perm] = np.deg2rad(q_deg)
    data[:, 10:] = 1.0
    data[50, perm[3]] = np.nan  # one bad sample
    t0 = pylsl.local_clock()
    for i in range(0, n, 20):  # chunks of 20 samples, 0.2 s of data
        outlet.push_chunk(
            data[i : i + 20].astype(np.float32).tolist(), [t0 + (i + j) / 100.0 for j in range(20)]
        )
        time.sleep(0.01)
    deadline = time.monotonic() + 20
    while adapter.stats.samples < n and time.monotonic() < deadline:
        msgs += _drain(sock, 0.05)
    adapter.stop()
    th.join(10)
    adapter.close()
    msgs += _drain(sock, 10)
    metas = [m for m in msgs if isinstance(m, wire.Meta)]
    frames = [m for m in msgs if isinstance(m, wire.Frames)]
    status = [m for m in msgs if isinstance(m, wire.SourceStatus)]
    assert isinstance(msgs[-1], wire.End)
    assert metas and metas[0].units == "rad" and metas[0].channels == IN_COLS
    assert metas[0].rate_hz == 100.0
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert max(f.t.shape[0] for f in frames) <= 7
    t = np.concatenate([f.t for f in frames])
    q = np.concatenate([f.q for f in frames])
    assert adapter.stats.samples == n and adapter.stats.dropped_nonfinite == 1
    assert q.shape == (n - 1, 10) and np.all(np.diff(t) > 0)
    keep = np.r_[0:50, 51:n]
    np.testing.assert_allclose(np.rad2deg(q), q_deg[keep], atol=2e-4)
    # the sender's sample times (dejittered, same machine's LSL clock), the bad one left out
    np.testing.assert_allclose(t - t[0], (keep - keep[0]) / 100.0, atol=2e-3)
    assert abs(t[0] - t0) < 0.05
    assert status[-1].source == "lsl" and status[-1].counters["dropped_nonfinite"] == 1
    assert status[-1].counters["frames"] == n - 1


def test_stream_without_labels_needs_labels(pylsl):
    name, outlet = make_outlet(pylsl, list(IN_COLS), "deg", describe=False)
    cfg = LslConfig(name=name, resolve_timeout_s=10)
    inlet, info = open_inlet(cfg)
    with pytest.raises(ConfigError, match="no channel labels"):
        LslAdapter(cfg, inlet, info)
    cfg = LslConfig(name=name, resolve_timeout_s=10, labels=tuple(IN_COLS), units="deg")
    adapter = LslAdapter(cfg, inlet, info)
    assert adapter.cols_ == list(range(10)) and adapter.units == "deg"
    with pytest.raises(ConfigError, match="lists 3 names"):
        LslAdapter(LslConfig(name=name, labels=("a", "b", "c")), inlet, info)
    del outlet


def test_irregular_stream_needs_a_rate(pylsl):
    name, outlet = make_outlet(pylsl, list(IN_COLS), "deg", rate=pylsl.IRREGULAR_RATE)
    cfg = LslConfig(name=name, resolve_timeout_s=10)
    inlet, info = open_inlet(cfg)
    with pytest.raises(ConfigError, match="irregular rate"):
        LslAdapter(cfg, inlet, info)
    assert LslAdapter(LslConfig(name=name, rate_hz=120.0), inlet, info).rate_hz == 120.0
    del outlet


def test_no_such_stream_is_a_clear_error(pylsl):
    from g2h_edge.errors import DataError

    with pytest.raises(DataError, match="no LSL stream with name='g2h_absent"):
        open_inlet(LslConfig(name=f"g2h_absent_{uuid.uuid4().hex[:6]}", resolve_timeout_s=0.5))


# ------------------------------------------------------------------ command line
def _run_cli(args, capsys):
    from g2h_edge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["lsl", *args])
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args,match",
    [
        ([], "name, a type or a source_id"),
        (["--name", "x", "--map", "hip_flexion_r"], "is not NAME=LABEL"),
        (["--name", "x", "--connect", "tcp://a:1", "--bind", "tcp://b:2"], "not both"),
        (["--name", "x", "--map", "hip=RHip"], "not input channels"),
    ],
)
def test_cli_usage_errors(args, match, capsys):
    code, err = _run_cli(args, capsys)
    assert code == 2 and match in err


def test_cli_absent_stream_is_a_one_line_error(pylsl, capsys):
    code, err = _run_cli(["--name", f"g2h_absent_{uuid.uuid4().hex[:6]}", "--resolve-timeout", "0.3"], capsys)
    assert code == 2 and err.startswith("error: no LSL stream with name=")
    assert "Traceback" not in err
