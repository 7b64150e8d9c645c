"""In-process helpers: a server on a background thread and a collecting subscriber.

Used by ``g2h-edge demo``, the end-to-end benchmark and the tests; everything goes through
real ZeroMQ sockets (ports picked by the OS when the config says ``tcp://127.0.0.1:*``).
"""

from __future__ import annotations

import threading
import time

import zmq

from g2h_edge.errors import G2HError
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.server import Server
from g2h_edge.wire import decode_output

__all__ = ["LocalServer", "OutputCollector"]


class LocalServer:
    """Run a :class:`Server` on a daemon thread: ``with LocalServer(cfg) as srv: ...``.

    ``srv.endpoints`` holds the bound ``listen``/``publish`` addresses. Leaving the block
    stops the server (queued inputs and in-flight cycles are still published).
    """

    def __init__(self, config: ServerConfig, *, engines=None, start_timeout_s: float = 120.0):
        self.server = Server(config, engines=engines)
        self.thread_: threading.Thread | None = None
        self.error_: BaseException | None = None
        self.start_timeout_s = start_timeout_s

    @property
    def endpoints(self) -> dict:
        return self.server.endpoints

    def _main(self) -> None:
        try:
            self.server.start()
            self.server.run()
        except BaseException as exc:  # reported to the owner thread in start()/stop()
            self.error_ = exc
        finally:
            self.server.started.set()
            self.server.close()

    def start(self) -> LocalServer:
        self.thread_ = threading.Thread(target=self._main, name="g2h-server", daemon=True)
        self.thread_.start()
        if not self.server.started.wait(self.start_timeout_s):
            raise G2HError("the server did not start in time", reason="start_timeout")
        if self.error_ is not None:
            raise self.error_
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.stop()
        if self.thread_ is not None:
            self.thread_.join(timeout_s)
        if self.error_ is not None:
            raise self.error_

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class OutputCollector:
    """Subscribe to a server's PUB endpoint and keep every decoded output message.

    ``wait_ready()`` returns once a status message arrived (the subscription is live, so
    nothing published afterwards is missed); ``wait_ended(stream)`` once the server
    reported the stream ended (all its cycles were published before that status).
    """

    def __init__(self, endpoint: str, *, on_message=None, curve_keys: str | None = None):
        self.endpoint = endpoint
        self.curve_keys = curve_keys  # CURVE client keys (g2h_edge/security.py)
        self.on_message = on_message
        self.messages: list[dict] = []
        self.ended_: set[str] = set()  # streams a status reported as ended
        self.statuses_ = 0
        self.lock = threading.Lock()
        self.cond_ = threading.Condition(self.lock)
        self.stop_ = threading.Event()
        self.thread_: threading.Thread | None = None

    def start(self) -> OutputCollector:
        self.thread_ = threading.Thread(target=self._main, name="g2h-collector", daemon=True)
        self.thread_.start()
        return self

    def _main(self) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        from g2h_edge.security import client_curve

        client_curve(sub, self.curve_keys)
        sub.connect(self.endpoint)
        try:
            while not self.stop_.is_set():
                if not sub.poll(50):
                    continue
                while True:
                    try:
                        parts = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    msg = decode_output(parts)
                    if self.on_message is not None:
                        self.on_message(msg)
                    with self.cond_:
                        self.messages.append(msg)
                        if msg["type"] == "status":
                            self.statuses_ += 1
                            self.ended_.update(
                                k for k, v in msg.get("retired", {}).items() if v.get("state") == "ended"
                            )
                        self.cond_.notify_all()
        finally:
            sub.close(0)
            ctx.term()

    def wait_for(self, predicate, timeout_s: float, *, on_self: bool = False) -> bool:
        """Wait until ``predicate(messages)`` (or ``predicate(self)``) is true (False on
        timeout)."""
        deadline = time.monotonic() + timeout_s
        arg = self if on_self else self.messages
        with self.cond_:
            while not predicate(arg):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond_.wait(min(left, 0.1))
        return True

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        return self.wait_for(lambda c: c.statuses_ > 0, timeout_s, on_self=True)

    def wait_ended(self, stream: str, timeout_s: float = 60.0) -> bool:
        return self.wait_for(lambda c: stream in c.ended_, timeout_s, on_self=True)

    def of_type(self, kind: str, stream: str | None = None) -> list[dict]:
        with self.lock:
            return [
                m
                for m in self.messages
                if m["type"] == kind and (stream is None or m.get("stream") == stream)
            ]

    def stop(self) -> None:
        self.stop_.set()
        if self.thread_ is not None:
            self.thread_.join(5)

    def __enter__(self) -> OutputCollector:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
