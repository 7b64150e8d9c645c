"""Bridge test fixtures: real pseudo-terminals, real ZeroMQ sockets on loopback, a bridge
running on a thread."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty

import pytest
import zmq

from g2h_edge import wire
from g2h_edge.firmware_bridge.deframer import LinkDecoder


class PtyDevice:
    """The device end of a pseudo-terminal: the bridge opens ``path`` with pyserial."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # until pyserial configures it, keep bytes untouched
        self.path = os.ttyname(self.slave)
        os.set_blocking(self.master, False)
        self.decoder = LinkDecoder()
        self.decoder.feed(b"\x00")
        self.frames = []

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self.master], [], 1.0)
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def poll(self, timeout_s: float = 0.05) -> list:
        """Frames the bridge sent to the device since the last call."""
        new = []
        r, _, _ = select.select([self.master], [], [], timeout_s)
        while r:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            new += self.decoder.feed(data)
            r, _, _ = select.select([self.master], [], [], 0)
        self.frames += new
        return new

    def wait_frames(self, pred, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if pred(self.frames):
                return True
        return False

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)


class Bus:
    """Stand-ins for the runtime's sockets: a bound SUB (its input) decoding with
    wire.decode_input, and a bound PUB (its output) for cycle messages."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.inp = self.ctx.socket(zmq.SUB)
        self.inp.setsockopt(zmq.SUBSCRIBE, b"")
        self.to_addr = f"tcp://127.0.0.1:{self.inp.bind_to_random_port('tcp://127.0.0.1')}"
        self.out = self.ctx.socket(zmq.PUB)
        self.from_addr = f"tcp://127.0.0.1:{self.out.bind_to_random_port('tcp://127.0.0.1')}"
        self.messages = []

    def poll(self, timeout_s: float = 0.05) -> list:
        new = []
        if self.inp.poll(int(timeout_s * 1000)):
            while True:
                try:
                    new.append(wire.decode_input(self.inp.recv_multipart(zmq.NOBLOCK)))
                except zmq.Again:
                    break
        self.messages += new
        return new

    def wait(self, pred, timeout_s: float = 10.0, pump=None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pump is not None:
                pump()
            self.poll()
            if pred(self.messages):
                return True
        return False

    def of(self, kind, stream=None) -> list:
        return [m for m in self.messages if isinstance(m, kind) and (stream is None or m.stream == stream)]

    def close(self):
        self.inp.close(0)
        self.out.close(0)
        self.ctx.term()


@pytest.fixture
def bus():
    b = Bus()
    yield b
    b.close()


@pytest.fixture
def pty_factory():
    """Make pseudo-terminal devices; all are closed at the end of the test."""
    made = []

    def make() -> PtyDevice:
        made.append(PtyDevice())
        return made[-1]

    yield make
    for dev in made:
        with contextlib.suppress(OSError):
            dev.unplug()


@pytest.fixture
def pty_device(pty_factory):
    return pty_factory()


@pytest.fixture
def run_bridge():
    """``with run_bridge(config) as bridge:`` the bridge loop on a thread."""
    from g2h_edge.firmware_bridge import Bridge

    @contextlib.contextmanager
    def _run(config):
        bridge = Bridge(config)
        stop = threading.Event()
        errors = []

        def main():
            try:
                bridge.run(stop)
            except BaseException as exc:  # surfaced in the test thread below
                errors.append(exc)

        th = threading.Thread(target=main, daemon=True)
        th.start()
        assert bridge.ready.wait(10)
        try:
            yield bridge
        finally:
            stop.set()
            th.join(10)
            assert not th.is_alive()
            assert not errors, errors

    return _run
