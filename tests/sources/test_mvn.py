"""Xsens MVN adapter: synthesised type-20 datagrams over loopback UDP -> protocol-v1 frames,
then through a real server into cycles."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import zmq

from g2h_edge import wire
from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.mapping import MVN_TO_RAJAGOPAL, MappingConfig
from g2h_edge.io.synth import make_stream
from g2h_edge.schema import IN_COLS
from g2h_edge.sources.mvn import (
    HEADER,
    MvnAdapter,
    MvnConfig,
    encode_joint_angles,
    joint_labels,
    parse_header,
    parse_joint_angles,
)
from g2h_edge.sources.publisher import PublisherConfig

SEG = {
    "jRightHip": (1, 16),
    "jRightKnee": (16, 17),
    "jRightAnkle": (17, 18),
    "jLeftHip": (1, 20),
    "jLeftKnee": (20, 21),
    "jLeftAnkle": (21, 22),
    "jL5S1": (1, 2),
}


def _joints(q_row):
    """The MVN joints of one sample of Rajagopal angles (inverse of the mvn preset)."""
    vals = {name: [0.0, 0.0, 0.0] for name in SEG}
    for col, (label, sign, off) in MVN_TO_RAJAGOPAL.items():
        name, ax = label.rsplit("_", 1)
        vals[name]["xyz".index(ax)] = (float(q_row[IN_COLS.index(col)]) - off) / sign
    return [(SEG[n][0] * 256 + 7, SEG[n][1] * 256 + 1, *vals[n]) for n in SEG]


def test_datagram_round_trip_and_labels():
    q = np.arange(10, dtype=np.float32)
    dg = encode_joint_angles(41, 1234, _joints(q))
    head = parse_header(dg)
    assert (head.message_type, head.sample_counter, head.time_code_ms, head.n_items, head.last_datagram) == (
        20,
        41,
        1234,
        len(SEG),
        True,
    )
    joints = parse_joint_angles(dg[HEADER.size :], head.n_items)
    labels = joint_labels(joints)
    assert labels[:3] == ["jRightHip_x", "jRightHip_y", "jRightHip_z"]
    assert "jL5S1_z" in labels


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d[:20], "shorter than the 24-byte"),
        (lambda d: b"MXTQ20" + d[6:], "is not MXTPnn"),
        (lambda d: d[:-4], "payload bytes"),
    ],
)
def test_bad_datagrams(mutate, match):
    dg = encode_joint_angles(1, 10, _joints(np.zeros(10)))
    with pytest.raises(DataError, match=match):
        parse_header(mutate(dg))


def test_config_refuses():
    with pytest.raises(ConfigError, match="port 70000"):
        MvnConfig(port=70000)
    with pytest.raises(ConfigError, match="unknown preset"):
        MappingConfig(preset="xsens")


def _collect(addr, out, stop):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind(addr)
    while not stop.is_set():
        if sub.poll(100):
            msg = wire.decode_input(sub.recv_multipart())
            out.append(msg)
            if isinstance(msg, wire.End):
                break
    sub.close(0)


def _send(port, walk, extra=True):
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(walk.n):
        q = walk.q[i].copy()
        if i == 50:
            q[3] = np.nan  # a sample MVN sent as NaN
        tx.sendto(
            encode_joint_angles(i, int(round(walk.t[i] * 1000)) + 5000, _joints(q)), ("127.0.0.1", port)
        )
        if extra and i % 100 == 0:
            tx.sendto(b"garbage", ("127.0.0.1", port))
            tx.sendto(b"MXTP02" + bytes(18), ("127.0.0.1", port))  # pose data: skipped
        time.sleep(0.0005)
    tx.close()


def test_udp_to_protocol_frames(tmp_path):
    walk = make_stream(3.0, 100.0, seed=5)
    addr = f"ipc://{tmp_path}/mvn"
    got, stop = [], threading.Event()
    th = threading.Thread(target=_collect, args=(addr, got, stop))
    th.start()
    cfg = MvnConfig(
        host="127.0.0.1",
        port=0,
        publish=PublisherConfig(stream="suit", address=addr, wait_subscriber_s=10.0, status_interval_s=0.2),
    )
    ad = MvnAdapter(cfg)
    port = ad.bind()[1]
    ad.open()
    runner = threading.Thread(target=ad.run)
    runner.start()
    _send(port, walk)
    time.sleep(0.5)
    ad.stop()
    runner.join(10)
    ad.close()
    th.join(10)
    stop.set()
    meta = next(m for m in got if isinstance(m, wire.Meta))
    assert meta.rate_hz == pytest.approx(100.0, rel=1e-3) and meta.units == "deg"
    frames = [m for m in got if isinstance(m, wire.Frames)]
    t = np.concatenate([f.t for f in frames])
    q = np.concatenate([f.q for f in frames])
    keep = np.arange(walk.n) != 50
    assert t.shape[0] == walk.n - 1  # every sample but the NaN one
    np.testing.assert_allclose(t, np.round(walk.t[keep] * 1000) / 1000 + 5.0, atol=1e-9)
    np.testing.assert_allclose(q, walk.q[keep], atol=1e-4)
    status = [m for m in got if isinstance(m, wire.SourceStatus)][-1]
    c = status.counters
    assert c["bad_packets"] == 3 and c["dropped_nonfinite"] == 1 and c["frames"] == walk.n - 1
    assert c["packets"] == walk.n + 6 and isinstance(got[-1], wire.End)


def test_mvn_into_a_real_server_gives_cycles(random_bundle):
    from g2h_edge.engines import load_engine
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector

    walk = make_stream(8.0, 100.0, seed=9)
    eng = load_engine(random_bundle("lstm", "jm", seed=0, name="mvn-lstm-jm"), threads=1)
    cfg = ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
    )
    with LocalServer(cfg, engines=[eng]) as srv, OutputCollector(srv.endpoints["publish"]) as col:
        assert col.wait_ready(30)
        ad = MvnAdapter(
            MvnConfig(
                host="127.0.0.1",
                port=0,
                mapping=MappingConfig(preset="mvn", rate_hz=100.0),
                publish=PublisherConfig(
                    stream="suit", address=srv.endpoints["listen"], wait_subscriber_s=10.0
                ),
            )
        )
        port = ad.bind()[1]
        ad.open()
        runner = threading.Thread(target=ad.run)
        runner.start()
        _send(port, walk, extra=False)
        time.sleep(0.3)
        ad.stop()
        runner.join(10)
        ad.close()
        assert col.wait_ended("suit", 60)
    eng.close()
    cycles = col.of_type("cycle", "suit")
    n_true = len(walk.events["R"]) - 1 + len(walk.events["L"]) - 1
    assert n_true - 4 <= len(cycles) <= n_true  # online detection, edges excepted


@pytest.mark.parametrize(
    "args,match",
    [
        (["mvn", "--map", "hip=jRightHip_z"], "not input channels"),
        (["mvn", "--connect", "tcp://a:1", "--bind", "tcp://b:2"], "not both"),
        (["qtm", "--stream", "bad id!"], "stream id"),
    ],
)
def test_cli_refuses(capsys, args, match):
    from g2h_edge.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert match in capsys.readouterr().err


def test_a_sample_split_over_two_datagrams_is_joined(tmp_path):
    """MVN splits a sample when it exceeds the MTU: datagram counters 0, then 0x81 (last)."""
    walk = make_stream(1.0, 100.0, seed=4)
    addr = f"ipc://{tmp_path}/split"
    got, stop = [], threading.Event()
    th = threading.Thread(target=_collect, args=(addr, got, stop))
    th.start()
    ad = MvnAdapter(
        MvnConfig(
            mapping=MappingConfig(preset="mvn", rate_hz=100.0),
            publish=PublisherConfig(stream="split", address=addr, wait_subscriber_s=10.0),
        )
    )
    ad.open()
    joints = _joints(walk.q[10])
    assert ad.handle(encode_joint_angles(7, 100, joints[:3], datagram=0x00)) == 0
    assert ad.handle(encode_joint_angles(7, 100, joints[3:], datagram=0x81)) == 1
    ad.close()
    th.join(10)
    stop.set()
    frames = [m for m in got if isinstance(m, wire.Frames)]
    assert len(frames) == 1 and frames[0].t.tolist() == [0.1]
    np.testing.assert_allclose(frames[0].q[0], walk.q[10], atol=1e-4)
    assert ad.stats.packets == 2 and ad.stats.bad_packets == 0
