"""`g2h-edge bridge` and `g2h-edge bench bridge` through the real CLI entry point."""

from __future__ import annotations

import re
import socket
import threading

import pytest
import zmq

from g2h_edge import wire
from g2h_edge.cli import main
from g2h_edge.firmware_bridge import link


@pytest.mark.parametrize(
    "argv,match",
    [
        (
            ["bridge", "--to", "tcp://127.0.0.1:1", "--from", "tcp://127.0.0.1:2"],
            "exactly one of --serial DEV and --udp HOST:PORT",
        ),
        (
            [
                "bridge",
                "--udp",
                "127.0.0.1:9",
                "--serial",
                "/dev/null",
                "--to",
                "tcp://a:1",
                "--from",
                "tcp://a:2",
            ],
            "exactly one of",
        ),
        (["bridge", "--udp", "127.0.0.1", "--to", "tcp://a:1", "--from", "tcp://a:2"], "must be HOST:PORT"),
        (
            ["bridge", "--udp", "127.0.0.1:9", "--to", "127.0.0.1:1", "--from", "tcp://a:2"],
            "not a ZeroMQ endpoint",
        ),
    ],
)
def test_bridge_command_rejects_bad_options(argv, match, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def test_bridge_command_runs_udp(capfd):
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    to = f"tcp://127.0.0.1:{sub.bind_to_random_port('tcp://127.0.0.1')}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # a free port for the bridge
    argv = [
        "bridge",
        "--udp",
        f"127.0.0.1:{port}",
        "--to",
        to,
        "--from",
        "tcp://127.0.0.1:1",
        "--points",
        "10",
        "--duration",
        "1.5",
    ]
    result = []
    th = threading.Thread(target=lambda: result.append(main(argv)))
    msgs = []
    try:
        th.start()
        # a bound SUB attaches new connections only while its owner thread uses it: poll
        while th.is_alive() or sub.poll(100):
            if sub.poll(50):
                msgs.append(wire.decode_input(sub.recv_multipart()))
        th.join()
        assert result == [0]
        err = capfd.readouterr().err
        assert f"device udp 127.0.0.1:{port}" in err and "frames_ok=0" in err
        # the link's counters arrive once a second, even with no device traffic
        assert msgs and all(isinstance(m, wire.SourceStatus) and m.stream == "mcu-link" for m in msgs)
    finally:
        sub.close(0)
        ctx.term()


def test_bench_bridge_prints_ratio(capsys):
    assert main(["bench", "bridge", "--frames", "500", "--streams", "5"]) == 0
    out = capsys.readouterr().out
    assert "naive per-byte baseline" in out and "vs naive" in out
    assert "target of 10,000 ANGLES frames/s" in out
    assert out.count("x\n") >= 4


def test_points_limit_matches_the_payload_limit():
    from g2h_edge.firmware_bridge import MAX_POINTS
    from g2h_edge.schema import MF_COLS

    assert 6 + 2 * len(MF_COLS) * MAX_POINTS <= link.MAX_PAYLOAD_BYTES
    assert 6 + 2 * len(MF_COLS) * (MAX_POINTS + 1) > link.MAX_PAYLOAD_BYTES
