"""Qualisys QTM adapter: the real qtm-rt client against a tiny loopback TCP server that speaks
the QTM RT protocol bytes synthesised here (handshake, GetParameters Analog, StreamFrames)."""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
import pytest
import zmq

from g2h_edge import wire
from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.mapping import MappingConfig
from g2h_edge.io.synth import make_stream
from g2h_edge.schema import IN_COLS
from g2h_edge.sources.publisher import PublisherConfig
from g2h_edge.sources.qtm import QtmAdapter, QtmConfig, parse_analog_parameters, pick_device

pytest.importorskip("qtm_rt", reason="qtm-rt (qtm extra) not installed")

LABELS = ["Sync"] + [f"ang_{c}" for c in IN_COLS]


def _xml(rate=100.0, labels=LABELS, unit="deg"):
    chans = "".join(f"<Channel><Label>{lab}</Label><Unit>{unit}</Unit></Channel>" for lab in labels)
    return (
        f"<QTM_Parameters_Ver_1.22><Analog><Device><Device_ID>1</Device_ID>"
        f"<Device_Name>Force board</Device_Name><Channels>2</Channels>"
        f"<Frequency>1000</Frequency><Channel><Label>Fz</Label><Unit>V</Unit></Channel>"
        f"<Channel><Label>Fx</Label><Unit>V</Unit></Channel></Device>"
        f"<Device><Device_ID>2</Device_ID><Device_Name>Angles</Device_Name>"
        f"<Channels>{len(labels)}</Channels><Frequency>{rate:g}</Frequency>{chans}"
        f"</Device></Analog></QTM_Parameters_Ver_1.22>"
    )


def _packet(kind: int, payload: bytes) -> bytes:
    return struct.pack("<II", 8 + len(payload), kind) + payload


def _text(kind: int, text: str) -> bytes:
    return _packet(kind, text.encode() + b"\0")


def _data(frame: int, first_sample: int, x: np.ndarray) -> bytes:
    """One data packet with an analog component: device 1 (2 channels, junk) and device 2
    (x: (channels, samples) float32)."""
    dev1 = struct.pack("<iiii", 1, 2, 1, frame) + struct.pack("<2f", 0.1, 0.2)
    dev2 = (
        struct.pack("<iiii", 2, x.shape[0], x.shape[1], first_sample) + x.astype("<f4").tobytes()
    )  # channel-major
    body = struct.pack("<i", 2) + dev1 + dev2
    comp = struct.pack("<II", 8 + len(body), 3) + body
    return _packet(3, struct.pack("<qII", frame * 10_000, frame, 1) + comp)


class FakeQtm:
    """Accepts one client on loopback and answers like QTM's RT server."""

    def __init__(self, walk, per_packet=3, nan_at=None):
        self.walk, self.per_packet, self.nan_at = walk, per_packet, nan_at
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.commands: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv_command(self, conn) -> str | None:
        head = b""
        while len(head) < 8:
            chunk = conn.recv(8 - len(head))
            if not chunk:
                return None
            head += chunk
        size, _kind = struct.unpack("<II", head)
        body = b""
        while len(body) < size - 8:
            body += conn.recv(size - 8 - len(body))
        return body.rstrip(b"\0").decode()

    def _serve(self):
        conn, _ = self.srv.accept()
        conn.sendall(_text(1, "QTM RT Interface connected"))
        while True:
            cmd = self._recv_command(conn)
            if cmd is None:
                break
            self.commands.append(cmd)
            low = cmd.lower()
            if low.startswith("version"):
                conn.sendall(_text(1, f"Version set to {cmd.split()[1]}"))
            elif low == "getparameters analog":
                conn.sendall(_text(2, _xml()))
            elif low.startswith("streamframes allframes"):
                self._stream(conn)
            elif low == "streamframes stop":
                break
        conn.close()
        self.srv.close()

    def _stream(self, conn):
        w, k = self.walk, self.per_packet
        for f, i in enumerate(range(0, w.n, k)):
            q = w.q[i : i + k].astype(np.float64).copy()  # (k, 10)
            if self.nan_at is not None and i <= self.nan_at < i + k:
                q[self.nan_at - i, 2] = np.nan
            x = np.vstack([np.full((1, q.shape[0]), 5.0), q.T])  # Sync + 10 angles
            conn.sendall(_data(f, 200 + i, x))


def test_parse_parameters_and_pick():
    devs = parse_analog_parameters(_xml())
    assert [(d.id, d.name, d.rate_hz) for d in devs] == [(1, "Force board", 1000.0), (2, "Angles", 100.0)]
    assert devs[1].labels == tuple(LABELS) and devs[1].units[1] == "deg"
    assert pick_device(devs, "Angles").id == 2 and pick_device(devs, "2").id == 2
    with pytest.raises(ConfigError, match="choose one with --device"):
        pick_device(devs, None)
    with pytest.raises(ConfigError, match="no QTM analog device 'x'"):
        pick_device(devs, "x")
    with pytest.raises(DataError, match="not XML"):
        parse_analog_parameters(b"<Analog>")


def test_qtm_rt_stream_to_protocol_frames(tmp_path):
    walk = make_stream(2.0, 100.0, seed=3)
    fake = FakeQtm(walk, per_packet=3, nan_at=40)
    addr = f"ipc://{tmp_path}/qtm"
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind(addr)
    mp = MappingConfig(mapping={c: f"ang_{c}" for c in IN_COLS})
    ad = QtmAdapter(
        QtmConfig(
            port=fake.port,
            device="Angles",
            mapping=mp,
            duration_s=1.5,
            publish=PublisherConfig(stream="qtm", address=addr, wait_subscriber_s=10.0),
        )
    )
    th = threading.Thread(target=lambda: (ad.run(), ad.close()))
    th.start()
    got = []
    while sub.poll(10000):
        msg = wire.decode_input(sub.recv_multipart())
        got.append(msg)
        if isinstance(msg, wire.End):
            break
    th.join(10)
    sub.close(0)
    meta = next(m for m in got if isinstance(m, wire.Meta))
    assert meta.rate_hz == 100.0 and meta.units == "deg"
    frames = [m for m in got if isinstance(m, wire.Frames)]
    t = np.concatenate([f.t for f in frames])
    q = np.concatenate([f.q for f in frames])
    keep = np.arange(walk.n) != 40
    np.testing.assert_allclose(t, (200 + np.arange(walk.n))[keep] / 100.0)
    np.testing.assert_allclose(q, walk.q[keep], atol=1e-5)
    counters = [m for m in got if isinstance(m, wire.SourceStatus)][-1].counters
    assert counters["dropped_nonfinite"] == 1 and counters["frames"] == walk.n - 1
    assert fake.commands[0].lower().startswith("version")
    assert "getparameters analog" in [c.lower() for c in fake.commands]


def test_qtm_unreachable_is_a_clear_error():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    ad = QtmAdapter(QtmConfig(port=port, timeout_s=1.0))
    with pytest.raises(DataError, match="could not connect to QTM RT"):
        ad.run()
