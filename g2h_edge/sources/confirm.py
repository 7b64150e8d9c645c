"""What the server did with a published stream: its cycles, rejects and status, seen on the
server's output (``g2h-edge replay --results``).

A publisher alone cannot tell a delivered stream from one the server refused, blocked or
never saw (a killed server, a wrong address): ZeroMQ sends succeed either way. A
:class:`ResultWatcher` subscribes to the server's output for one stream (topic = stream id)
and to ``$status``, counts the stream's cycles and rejects, and confirms the stream from the
status counters: the server counted every frame sent (and, after ``end``, retired the stream
as ``ended``). :func:`exit_code` turns the outcome into the documented exit status.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import zmq

from g2h_edge.errors import WireError
from g2h_edge.wire import decode_output

__all__ = [
    "ResultWatcher",
    "Confirmation",
    "exit_code",
    "CYCLE_REASONS",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_UNCONFIRMED",
]

#: reject reasons about one cycle's quality (docs/protocol.md "Cycles"): reported, not
#: failures of the stream. Every other reject of the stream (input, state, convention,
#: engine) means the server refused part of what was sent.
CYCLE_REASONS = frozenset(
    {
        "cycle_too_short",
        "cycle_too_long",
        "gap",
        "nan",
        "implausible_angles",
        "buffer_overrun",
        "ic_not_increasing",
        "ic_after_data",
        "ic_backlog",
    }
)
EXIT_OK = 0  # confirmed; no reject other than cycle quality
EXIT_REJECTED = 3  # the server rejected or blocked the stream or some of its input
EXIT_UNCONFIRMED = 4  # the server never confirmed every frame (killed, unreachable, lost)


@dataclass
class Confirmation:
    """The server's view of one stream, as seen on its output."""

    results: str  # the output address watched
    confirmed: bool = False  # every frame counted (and ended, if sent)
    statuses: int = 0  # status messages received
    cycles: int = 0  # cycle messages for the stream
    rejects: Counter = field(default_factory=Counter)  # by reason, not cycle quality
    cycle_rejects: Counter = field(default_factory=Counter)  # by reason, cycle quality
    server_frames: int | None = None  # frames the server counted, last status
    convention: str | None = None  # the stream's convention state, last status
    bad_outputs: int = 0  # output messages that did not decode

    @property
    def blocked(self) -> bool:
        return str(self.convention or "").startswith("blocked")

    def summary(self, frames_sent: int) -> str:
        """One line: cycles, rejects by reason, what was not confirmed."""
        rej = ", ".join(f"{r}={n}" for r, n in sorted((self.rejects + self.cycle_rejects).items())) or "none"
        if self.confirmed:
            state = "confirmed by the server"
        elif not self.statuses:
            state = (
                f"UNCONFIRMED: no status from the server on {self.results} (not "
                "running, killed, or another --results address)"
            )
        else:
            got = "none" if self.server_frames is None else self.server_frames
            state = (
                f"UNCONFIRMED: the server counted {got} of {frames_sent} frames "
                "(killed, restarted or refused mid-stream?)"
            )
        block = f"; stream {self.convention}" if self.blocked else ""
        return f"server: {self.cycles} cycles, rejects {rej}{block}; {state}"


def exit_code(c: Confirmation) -> int:
    """EXIT_REJECTED when the server rejected/blocked the stream (even if confirmed),
    EXIT_UNCONFIRMED when it never confirmed it, EXIT_OK otherwise."""
    if c.rejects or c.blocked:
        return EXIT_REJECTED
    return EXIT_OK if c.confirmed else EXIT_UNCONFIRMED


class ResultWatcher:
    """Watches the server output at ``address`` for ``stream`` on its own thread (the SUB
    socket lives and dies in that thread). ``start()``, ``wait_ready()``, publish, then
    ``finish(frames, ended, timeout_s)``."""

    def __init__(self, address: str, stream: str, *, context=None, curve_keys=None):
        self.address, self.stream = address, stream
        self.curve_keys = curve_keys  # CURVE client keys of a secured server (or None)
        self.ctx_ = context or zmq.Context.instance()
        self.result_ = Confirmation(results=address)
        self.lock_ = threading.Lock()
        self.ready_ = threading.Event()
        self.stop_ = threading.Event()
        self.thread_: threading.Thread | None = None
        self.after_ = float("inf")  # statuses count for confirmation after this time
        self.view_: dict | None = None  # the stream's counters in the last status after it

    def start(self) -> ResultWatcher:
        self.thread_ = threading.Thread(target=self._main, name="g2h-replay-results", daemon=True)
        self.thread_.start()
        return self

    def _main(self) -> None:
        sock = self.ctx_.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)  # keep everything: this thread drains it
        for topic in (self.stream.encode(), b"$status"):
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        try:
            if self.curve_keys:
                from g2h_edge.security import client_curve

                client_curve(sock, self.curve_keys)
            sock.connect(self.address)
            while not self.stop_.is_set():
                if sock.poll(20):
                    self._handle(sock.recv_multipart())
        finally:
            sock.close(0)

    def _handle(self, parts) -> None:
        try:
            msg = decode_output(parts)
        except WireError:
            with self.lock_:
                self.result_.bad_outputs += 1
            return
        res = self.result_
        with self.lock_:
            if msg["type"] == "status":
                res.statuses += 1
                view = (msg.get("streams") or {}).get(self.stream) or (msg.get("retired") or {}).get(
                    self.stream
                )
                if view is not None:
                    res.server_frames = view.get("frames")
                    res.convention = view.get("convention", res.convention)
                if view is not None and time.monotonic() >= self.after_:
                    self.view_ = view  # a later status without the stream keeps this one
                self.ready_.set()
            elif msg.get("stream") == self.stream:  # topics are prefixes: check the id
                if msg["type"] == "cycle":
                    res.cycles += 1
                elif msg["reason"] in CYCLE_REASONS:
                    res.cycle_rejects[msg["reason"]] += 1
                else:
                    res.rejects[msg["reason"]] += 1

    def sending(self) -> None:
        """Called just before the first message is sent: statuses from now on count (an
        earlier one may describe a previous session of the same stream id)."""
        with self.lock_:
            self.after_ = time.monotonic()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait for the first status (the subscription is live); False after timeout_s."""
        return self.ready_.wait(timeout_s)

    def finish(self, frames: int, ended: bool, timeout_s: float) -> Confirmation:
        """After the last send: wait up to ``timeout_s`` for a status that counts all
        ``frames`` (and shows the stream ``ended`` when ``end`` was sent), stop, report."""
        with self.lock_:
            self.after_ = min(self.after_, time.monotonic())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock_:
                view = self.view_
            if (
                view is not None
                and int(view.get("frames", -1)) >= frames
                and (not ended or view.get("state") == "ended")
            ):
                self.result_.confirmed = True
                break
            time.sleep(0.02)
        self.stop_.set()
        if self.thread_ is not None:
            self.thread_.join(5)
        return self.result_
