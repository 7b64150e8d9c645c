"""``serve``: run one server in this thread until SIGINT/SIGTERM (what ``g2h-edge serve``
calls)."""

from __future__ import annotations

import signal
import threading

from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.server import Server

__all__ = ["serve"]


def serve(
    config: ServerConfig,
    *,
    engines: list | None = None,
    on_ready=None,
    on_status=None,
    install_signals: bool = True,
) -> int:
    """Run a server until SIGINT/SIGTERM (or ``Server.stop``); returns the exit status 0.

    On a signal: stop taking new work, handle what is queued, publish in-flight cycles,
    flush and close the record file.
    """
    server = Server(config, engines=engines, on_status=on_status)
    server.start()
    previous = {}

    def on_signal(signum, frame):
        if server.stop_event.is_set():  # a second Ctrl-C: stop now, without draining
            raise KeyboardInterrupt
        server.stop()

    if install_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        if on_ready is not None:
            on_ready(server)
        server.run()
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
