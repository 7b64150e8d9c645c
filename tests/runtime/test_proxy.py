"""Scaling beyond one process: `g2h-edge proxy` (zmq XSUB/XPUB) in front of 4 sharded
`serve` processes on loopback; every stream's cycles arrive exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter

import pytest
import zmq

from g2h_edge import wire
from g2h_edge.errors import ConfigError
from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.local import OutputCollector
from g2h_edge.runtime.scale import Proxy, ProxyConfig, in_shard, parse_shard, shard_of
from g2h_edge.sources.replay import ReplayConfig, replay

CLI = [sys.executable, "-m", "g2h_edge.cli"]


def test_shard_of_is_stable_and_spreads():
    assert shard_of("walker1", 4) == shard_of(b"walker1", 4)
    counts = Counter(shard_of(f"s{i}", 4) for i in range(400))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 60
    assert in_shard([b"walker1", b""], (shard_of("walker1", 4), 4))
    assert in_shard([], (0, 3)) and not in_shard([], (1, 3))


@pytest.mark.parametrize(
    "value, match",
    [
        ("4/4", "0 <= I < N"),
        ("1", "I/N"),
        ("a/b", "I/N"),
        ("0/0", "1 <= N"),
        ((1, True), "I/N"),
        ("-1/3", "0 <= I"),
    ],
)
def test_bad_shards_are_refused(value, match):
    with pytest.raises(ConfigError, match=match):
        parse_shard(value)
    with pytest.raises(ConfigError, match=match):
        ServerConfig(engines=("m.onnx",), shard=value)


def test_proxy_refuses_public_bind_without_curve():
    with pytest.raises(ConfigError, match="insecure-public-bind"):
        ProxyConfig(frontend="tcp://0.0.0.0:5550")


def test_in_process_proxy_forwards_both_ways():
    with Proxy(ProxyConfig(frontend="tcp://127.0.0.1:*", backend="tcp://127.0.0.1:*")) as px:
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(px.endpoints["backend"])
        pub = ctx.socket(zmq.XPUB)
        pub.connect(px.endpoints["frontend"])
        assert pub.poll(5000) and pub.recv() == b"\x01"  # the subscription came through
        pub.send_multipart([b"a", b"b"])
        assert sub.poll(5000) and sub.recv_multipart() == [b"a", b"b"]
        pub.close(0)
        sub.close(0)


def _start(cmd, pattern, timeout_s=180):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(pattern, line)
        if m:
            return proc, m.groups()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"{cmd[3]} did not start: {proc.stderr.read()}")


@pytest.mark.slow
def test_four_sharded_servers_behind_the_proxy(jm_onnx_path):
    procs, cols = [], []
    try:
        proxy, (front, back) = _start(
            [*CLI, "proxy", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"],
            r"publishers -> (\S+) \(XSUB\), servers <- (\S+) ",
        )
        procs.append(proxy)
        pubs = []
        for i in range(4):
            p, (_, out) = _start(
                [
                    *CLI,
                    "serve",
                    "--engine",
                    str(jm_onnx_path),
                    "--allow-synthetic",
                    "--connect",
                    back,
                    "--publish",
                    "tcp://127.0.0.1:*",
                    "--shard",
                    f"{i}/4",
                    "--log-interval",
                    "0",
                ],
                r"inputs (.+) -> outputs (\S+);",
            )
            procs.append(p)
            pubs.append(out)
        cols = [OutputCollector(addr).start() for addr in pubs]
        assert all(c.wait_ready(60) for c in cols)
        # wait until every server's subscription reached the proxy: probe messages of every
        # shard; each server counts the other shards' probes as shard_skipped
        probes = [next(f"probe{k}" for k in range(100) if shard_of(f"probe{k}", 4) == i) for i in range(4)]
        ctx = zmq.Context.instance()
        probe = ctx.socket(zmq.PUB)
        probe.connect(front)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            c.of_type("status") and c.of_type("status")[-1]["totals"].get("shard_skipped", 0) > 0
            for c in cols
        ):
            for sid in probes:
                probe.send_multipart(wire.encode_end(sid))
            time.sleep(0.2)
        # a message no server can decode is rejected by exactly one server (its topic's)
        probe.send_multipart([b"junk", b"\xc1"])
        streams = [f"walker{i}" for i in range(8)]
        trials = {sid: make_stream(8.0, 100.0, seed=40 + k) for k, sid in enumerate(streams)}
        for sid in streams:
            replay(trials[sid], ReplayConfig(address=front, stream=sid, max_rate=True, with_events=True))
        for c, i in zip(cols, range(4)):
            mine = [s for s in streams if shard_of(s, 4) == i]
            assert all(c.wait_ended(s, 90) for s in mine), (i, mine)
        probe.close(0)
    finally:
        for c in cols:
            c.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    for sid in streams:
        tr = trials[sid]
        expected = Counter(
            (s, round(float(a), 4), round(float(b), 4))
            for s in "RL"
            for a, b in zip(tr.events[s][:-1], tr.events[s][1:])
        )
        got = Counter()
        for i, c in enumerate(cols):
            mine = Counter(
                (m["side"], round(m["t_start"], 4), round(m["t_end"], 4)) for m in c.of_type("cycle", sid)
            )
            assert not mine or shard_of(sid, 4) == i, (sid, i)
            got += mine
        assert got == expected, sid  # exactly once, none lost
    junk = [m for c in cols for m in c.of_type("reject") if m["reason"] == "undecodable"]
    assert len(junk) == 1
    assert all(p.returncode == 0 for p in procs[1:]), [p.returncode for p in procs]
