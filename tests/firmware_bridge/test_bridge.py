"""The bridge end to end: pseudo-terminals and UDP on loopback <-> real ZeroMQ sockets."""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest

from g2h_edge import wire
from g2h_edge.errors import ConfigError
from g2h_edge.firmware_bridge import BridgeConfig, bridge_config, link
from g2h_edge.firmware_bridge.deframer import LinkDecoder
from g2h_edge.schema import JM_COLS

pytest.importorskip("serial")

FAST = dict(status_interval_s=0.1, meta_interval_s=0.1, reconnect_min_s=0.02, reconnect_max_s=0.1)


def ser(raw):
    return link.serial_frame(raw)


def meta_frame(stream=0, t_us=0):
    return link.pack_meta(100.0, 72.0, stream=stream, seq=0, t_us=t_us)


def angle_frames(first, n, stream=0, t0_us=0):
    return [
        link.pack_angles(
            np.full(10, k, np.float32), stream=stream, seq=k & 0xFFFF, t_us=(t0_us + k * 10_000) & 0xFFFFFFFF
        )
        for k in range(first, first + n)
    ]


def connect(dev, bus, stream=0, t_us=0):
    """Wait for the bridge to open the port, then send META until the runtime side has it
    (the PUB -> SUB connection is up: nothing sent afterwards is lost)."""
    assert dev.wait_frames(lambda fr: any(f.type == link.STATUS for f in fr)), "no STATUS"
    dev.write(b"\x00" + ser(meta_frame(stream, t_us)))
    assert bus.wait(lambda ms: any(isinstance(m, wire.Meta) for m in ms)), "no meta"


def cycle_msg(stream="mcu0", side="L", cycle=70_000, t_end=12.3456):
    t = np.linspace(0, 1, 180)[:, None]
    y = np.sin(2 * np.pi * t) * np.array([0.5, -0.2, 40.0])  # last channel saturates
    return wire.encode_cycle(
        stream=stream,
        side=side,
        cycle=cycle,
        t_start=t_end - 1,
        t_end=t_end,
        model="m",
        sha256="0" * 64,
        backend="torch",
        outputs=JM_COLS,
        unit="Nm/kg",
        y=y,
        quality={},
        latency_ms=2.0,
        synthetic=True,
    ), y


def test_serial_end_to_end_frames_in_predictions_out(bus, pty_device, run_bridge):
    cfg = BridgeConfig(
        to_addr=bus.to_addr, from_addr=bus.from_addr, serial_port=pty_device.path, points=12, **FAST
    )
    with run_bridge(cfg) as bridge:
        connect(pty_device, bus)
        frames = angle_frames(1, 300)
        ic = link.pack_ic_event(0, 1_234_000, stream=0, seq=301, t_us=3_010_000)
        frames.append(ic)
        frames += angle_frames(302, 10)
        blob = b"".join(ser(f) for f in frames)
        blob = blob[:5000] + b"\x17\x42garbage\x00" + blob[5000:]  # corrupts one frame
        pty_device.write(blob)

        def got_all(ms):
            fr = [m for m in ms if isinstance(m, wire.Frames)]
            return fr and fr[-1].t[-1] >= 3.11 - 1e-9 and any(m.ic for m in fr)

        assert bus.wait(got_all)
        fr = bus.of(wire.Frames, "mcu0")
        t = np.concatenate([m.t for m in fr])
        q = np.concatenate([m.q for m in fr])
        assert np.all(np.diff(t) > 0)
        np.testing.assert_allclose(q[:, 0], np.round(t * 100), atol=1e-9)
        assert 300 <= len(t) < 310  # one frame lost to garbage
        assert [e for m in fr for e in m.ic] == [(1.234, "R")]
        # predictions back to the device (publish until the bridge's SUB is connected)
        parts, y = cycle_msg()
        assert pty_device.wait_frames(
            lambda fs: any(f.type == link.PREDICTION for f in fs) or bus.out.send_multipart(parts)
        )
        pred_f = next(f for f in pty_device.frames if f.type == link.PREDICTION)
        pred = link.parse_payload(pred_f)
        assert (pred_f.stream, pred.side, pred.kind, pred.cycle) == (0, 1, 1, 70_000 & 0xFFFF)
        assert pred_f.t_us == round(12.3456e6)
        pos = np.linspace(0, 179, 12)
        want = np.stack([np.interp(pos, np.arange(180), y[:, k]) for k in range(3)]) * 1000
        np.testing.assert_array_equal(pred.values[:2], np.rint(want[:2]))
        assert pred.values[2].max() == 32767 and pred.values[2].min() == -32767
        # counters reach the device (STATUS) and the runtime (source status)
        assert bus.wait(
            lambda ms: any(
                isinstance(m, wire.SourceStatus) and m.stream == "mcu0" and m.counters["framing_errors"] >= 1
                for m in ms
            )
        )
        st = [m for m in bus.of(wire.SourceStatus, "mcu0")][-1]
        assert st.source == "firmware_bridge" and st.counters["stream_angles"] >= 300
        assert bus.of(wire.SourceStatus, "mcu-link")
        assert pty_device.wait_frames(
            lambda fs: any(f.type == link.STATUS and link.parse_payload(f).framing_errors >= 1 for f in fs)
        )
        c = bridge.counters()
        assert c["predictions_out"] >= 1 and c["values_clipped"] > 0


def test_serial_replug_survives(bus, tmp_path, run_bridge, pty_factory):
    """USB replug: the device path vanishes and comes back on a new pty (symlink swapped),
    and the rebooted device's clock starts again from zero."""
    dev_path = tmp_path / "ttyG2H0"
    dev1 = pty_factory()
    os.symlink(dev1.path, dev_path)
    cfg = BridgeConfig(to_addr=bus.to_addr, from_addr=bus.from_addr, serial_port=str(dev_path), **FAST)
    n_frames = lambda ms: sum(len(m.t) for m in ms if isinstance(m, wire.Frames))  # noqa: E731
    with run_bridge(cfg) as bridge:
        connect(dev1, bus, t_us=50_000_000)
        dev1.write(b"".join(ser(f) for f in angle_frames(1, 20, t0_us=50_000_000)))
        assert bus.wait(lambda ms: n_frames(ms) >= 20)
        dev1.unplug()
        os.unlink(dev_path)
        assert bus.wait(lambda ms: any(isinstance(m, wire.End) for m in ms))
        deadline = time.monotonic() + 10
        while bridge.counters()["open_failures"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bridge.counters()["open_failures"] >= 2  # retried with backoff
        dev2 = pty_factory()
        os.symlink(dev2.path, dev_path)
        assert dev2.wait_frames(lambda fr: any(f.type == link.STATUS for f in fr))
        dev2.write(b"\x00" + ser(meta_frame()) + b"".join(ser(f) for f in angle_frames(1, 20)))
        assert bus.wait(lambda ms: n_frames(ms) >= 40)
        k_end = max(i for i, m in enumerate(bus.messages) if isinstance(m, wire.End))
        before = [m.seq for m in bus.messages[:k_end] if isinstance(m, wire.Frames)]
        fr = [m for m in bus.messages[k_end:] if isinstance(m, wire.Frames)]
        assert fr[0].seq == max(before) + 1 and fr[0].t[0] == pytest.approx(0.01)
        c = bridge.counters()
        assert (c["disconnects"], c["reconnects"], c["connected"]) == (1, 1, 1)


def test_udp_loopback(bus, run_bridge):
    cfg = BridgeConfig(to_addr=bus.to_addr, from_addr=bus.from_addr, udp="127.0.0.1:0", **FAST)
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", 0))
    dev.settimeout(0.05)
    got = []

    def pump_device(send=b""):
        if send:
            dev.sendto(send, addr)
        try:
            while True:
                got.append(dev.recv(4096))
        except (TimeoutError, BlockingIOError):
            pass

    with run_bridge(cfg) as bridge:
        deadline = time.monotonic() + 10
        while not bridge.transport.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        addr = bridge.transport.address
        meta = link.pack_meta(100.0, 0.0, stream=7, seq=0, t_us=0)
        assert bus.wait(lambda ms: any(isinstance(m, wire.Meta) for m in ms), pump=lambda: pump_device(meta))
        frames = angle_frames(1, 50, stream=7)
        bad = bytearray(frames[10])
        bad[20] ^= 0xFF
        for f in frames[:10] + [bytes(bad), ser(frames[11])] + frames[12:]:
            dev.sendto(f, addr)
        assert bus.wait(lambda ms: sum(len(m.t) for m in ms if isinstance(m, wire.Frames)) >= 48)
        m = bus.of(wire.Meta, "mcu7")[0]
        assert m.body_mass_kg is None and m.rate_hz == 100.0
        parts, _ = cycle_msg(stream="mcu7", side="R")
        deadline = time.monotonic() + 10
        dec = LinkDecoder()
        preds = []
        while not preds and time.monotonic() < deadline:
            bus.out.send_multipart(parts)
            pump_device()
            preds = [f for d in got for f in dec.feed_datagram(d) if f.type == link.PREDICTION]
        assert preds and preds[0].stream == 7
        assert link.parse_payload(preds[0]).values.shape == (3, 20)
        c = bridge.counters()
        assert c["crc_errors"] == 2 and c["seq_gaps"] == 1 and c["frames_lost"] == 2


BAD_CONFIGS = [
    (dict(), "exactly one of --serial DEV and --udp"),
    (dict(serial_port="/dev/x", udp="h:1"), "exactly one of"),
    (dict(udp="nohost"), "must be HOST:PORT"),
    (dict(udp="h:1", points=37), r"points = 37 must be an integer in \[2, 36\]"),
    (dict(udp="h:1", points=2.5), "points"),
    (dict(udp="h:1", baud=True), "baud"),
    (dict(udp="h:1", stream_prefix="bad prefix!"), "stream_prefix"),
    (dict(udp="h:1", to_addr="localhost:5555"), "not a ZeroMQ endpoint"),
    (dict(udp="h:1", reconnect_min_s=5.0, reconnect_max_s=1.0), "reconnect_max_s"),
]


@pytest.mark.parametrize("kw,match", BAD_CONFIGS, ids=range(len(BAD_CONFIGS)))
def test_bad_config(kw, match):
    values = dict(to_addr="tcp://127.0.0.1:1", from_addr="tcp://127.0.0.1:2")
    values.update(kw)
    with pytest.raises(ConfigError, match=match):
        BridgeConfig(**values)


def test_bridge_config_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown BridgeConfig key\(s\) \['speed'\]"):
        bridge_config({"to_addr": "tcp://a:1", "from_addr": "tcp://a:2", "udp": "h:1", "speed": 3})


def test_bad_zmq_endpoint_is_a_bridge_error():
    from g2h_edge.errors import BridgeError
    from g2h_edge.firmware_bridge import Bridge

    cfg = BridgeConfig(to_addr="tcp://127.0.0.1:notaport", from_addr="tcp://127.0.0.1:2", udp="127.0.0.1:0")
    with pytest.raises(BridgeError, match="cannot connect to 'tcp://127.0.0.1:notaport'"):
        Bridge(cfg).run(duration_s=1.0)


def test_port_held_by_another_reader_is_not_shared(bus, pty_device, run_bridge):
    import serial

    holder = serial.Serial(pty_device.path, 115200, timeout=0, exclusive=True)
    try:
        cfg = BridgeConfig(to_addr=bus.to_addr, from_addr=bus.from_addr, serial_port=pty_device.path, **FAST)
        with run_bridge(cfg) as bridge:
            deadline = time.monotonic() + 10
            while bridge.counters()["open_failures"] < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert bridge.counters()["connected"] == 0
            holder.close()  # released: the bridge gets it
            assert pty_device.wait_frames(lambda fs: any(f.type == link.STATUS for f in fs))
            assert bridge.counters()["connected"] == 1
    finally:
        holder.close()
