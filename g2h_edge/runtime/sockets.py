"""The server's ZeroMQ sockets: the input SUB and the output PUB with their queue and size
limits (docs/runtime.md, memory budget) and, with ``curve_keys``, CURVE security."""

from __future__ import annotations

import zmq

from g2h_edge.runtime.config import ServerConfig
from g2h_edge.security import server_curve
from g2h_edge.wire import MAX_INPUT_PART_BYTES

__all__ = ["open_sockets"]


def open_sockets(ctx, cfg: ServerConfig):
    """The input SUB socket (bound to ``listen`` or connected to ``connect``) and the output
    PUB socket (bound to ``publish``), with the configured queue limits, and the CURVE
    authenticator (None without ``curve_keys``; g2h_edge/security.py): the side that binds is
    the CURVE server, so a SUB connected to a proxy is a CURVE client."""
    sub = ctx.socket(zmq.SUB)
    pub = ctx.socket(zmq.PUB)
    auth = None
    try:
        sub.setsockopt(zmq.RCVHWM, cfg.rcv_hwm)
        # larger parts close the sender's connection unread (memory bound, wire.py)
        sub.setsockopt(zmq.MAXMSGSIZE, MAX_INPUT_PART_BYTES)
        sub.setsockopt(zmq.RCVBUF, 4 * 1024 * 1024)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        pub.setsockopt(zmq.SNDHWM, cfg.snd_hwm)
        pub.setsockopt(zmq.LINGER, 2000)
        auth = server_curve(ctx, (sub, pub), cfg.curve_keys, clients=() if cfg.listen else (sub,))
        if cfg.listen:
            sub.bind(cfg.listen)
        for addr in cfg.connect:
            sub.connect(addr)
        pub.bind(cfg.publish)
    except zmq.ZMQError:
        sub.close(0)
        pub.close(0)
        if auth is not None:
            auth.stop()
        raise
    return sub, pub, auth
