"""Scaling beyond one process: ZeroMQ's own XSUB/XPUB proxy and sharding by stream id.

Publishers connect to the proxy's *frontend* (an XSUB socket), every ``serve --shard i/n``
process connects its input to the proxy's *backend* (an XPUB socket), so each server sees
every message; a server keeps only the streams of its shard (``crc32(stream id) % n == i``,
decided on the topic frame before decoding) and counts the others as ``shard_skipped``.
ZeroMQ subscriptions filter by prefix only, which cannot express a hash, hence the filter
after receive. Each input message is therefore handled (accepted or rejected) by exactly
one server. The proxy is ``zmq.proxy_steerable`` (libzmq's zmq_proxy): no home-made broker.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

import zmq

from g2h_edge.errors import ConfigError

__all__ = ["shard_of", "parse_shard", "in_shard", "ProxyConfig", "Proxy"]


def shard_of(stream: bytes | str, n: int) -> int:
    """The shard (0..n-1) that owns a stream id: crc32 of its UTF-8 bytes, modulo n."""
    data = stream.encode("utf-8") if isinstance(stream, str) else bytes(stream)
    return zlib.crc32(data) % n


def parse_shard(value) -> tuple[int, int] | None:
    """``"i/n"`` (or an ``(i, n)`` pair) -> ``(i, n)`` with 0 <= i < n; None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            a, sep, b = value.partition("/")
            if not sep:
                raise ValueError
            i, n = int(a), int(b)
        else:
            i, n = value
        if isinstance(i, bool) or isinstance(n, bool) or not (isinstance(i, int) and isinstance(n, int)):
            raise ValueError
    except (ValueError, TypeError):
        raise ConfigError(
            f"shard {value!r} must be I/N, e.g. 0/4 (this server takes the streams with crc32(id) % N == I)"
        ) from None
    if not (1 <= n <= 4096 and 0 <= i < n):
        raise ConfigError(f"shard {value!r}: need 1 <= N <= 4096 and 0 <= I < N")
    return i, n


def in_shard(parts, shard: tuple[int, int]) -> bool:
    """Whether the input message ``parts`` belongs to ``shard``: by its topic frame (a
    message without one belongs to shard 0, so exactly one server rejects it)."""
    i, n = shard
    if not parts:
        return i == 0
    return shard_of(bytes(parts[0]), n) == i


@dataclass(frozen=True)
class ProxyConfig:
    """``frontend``: bound XSUB for publishers; ``backend``: bound XPUB for servers."""

    frontend: str = "tcp://127.0.0.1:5550"
    backend: str = "tcp://127.0.0.1:5555"
    curve_keys: str | None = None
    insecure_public_bind: bool = False
    #: high-water marks (messages) on both sides; large so bursts queue rather than drop
    hwm: int = 1_000_000

    def __post_init__(self):
        from g2h_edge.security import check_exposure, check_server_keys

        for name in ("frontend", "backend"):
            addr = getattr(self, name)
            if not isinstance(addr, str) or "://" not in addr:
                raise ConfigError(f"ProxyConfig.{name} = {addr!r} is not a ZeroMQ endpoint")
        if isinstance(self.hwm, bool) or not isinstance(self.hwm, int) or self.hwm < 0:
            raise ConfigError(f"ProxyConfig.hwm = {self.hwm!r} must be an integer >= 0")
        if self.curve_keys is not None:
            check_server_keys(self.curve_keys)
        check_exposure(
            (self.frontend, self.backend),
            curve_keys=self.curve_keys,
            allow_insecure=self.insecure_public_bind,
            what="g2h-edge proxy",
        )


class Proxy:
    """XSUB frontend -> XPUB backend forwarding (and subscriptions back) on a thread.

    ``start()`` binds (``endpoints`` holds the bound addresses), ``stop()`` ends it.
    The backend is XPUB_VERBOSE so that every server's subscription reaches the publishers.
    """

    def __init__(self, config: ProxyConfig):
        self.config = config
        self.endpoints: dict[str, str] = {}
        self.ctx_ = self.thread_ = self.auth_ = self.ctl_peer_ = None

    def start(self) -> Proxy:
        from g2h_edge.security import server_curve

        cfg = self.config
        self.ctx_ = zmq.Context()
        front, back = self.ctx_.socket(zmq.XSUB), self.ctx_.socket(zmq.XPUB)
        ctl = self.ctx_.socket(zmq.PAIR)
        ctl.bind(f"inproc://g2h-proxy-{id(self)}")
        front.setsockopt(zmq.RCVHWM, cfg.hwm)
        back.setsockopt(zmq.SNDHWM, cfg.hwm)
        back.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            self.auth_ = server_curve(self.ctx_, (front, back), cfg.curve_keys)
            front.bind(cfg.frontend)
            back.bind(cfg.backend)
        except zmq.ZMQError as exc:
            for s in (front, back, ctl):
                s.close(0)
            self._term()
            raise ConfigError(
                f"proxy cannot bind ({exc}): frontend={cfg.frontend} backend={cfg.backend}",
                reason="address_in_use",
            ) from None
        self.endpoints = {
            "frontend": front.getsockopt_string(zmq.LAST_ENDPOINT),
            "backend": back.getsockopt_string(zmq.LAST_ENDPOINT),
        }
        self.ctl_peer_ = self.ctx_.socket(zmq.PAIR)  # steering: sends TERMINATE
        self.ctl_peer_.connect(f"inproc://g2h-proxy-{id(self)}")
        self.thread_ = threading.Thread(
            target=self._main, args=(front, back, ctl), name="g2h-proxy", daemon=True
        )
        self.thread_.start()
        return self

    def _main(self, front, back, ctl) -> None:
        try:
            zmq.proxy_steerable(front, back, None, ctl)
        finally:
            for s in (front, back, ctl):
                s.close(0)

    def stop(self) -> None:
        if self.thread_ is not None:
            self.ctl_peer_.send(b"TERMINATE")
            self.thread_.join(10)
            self.ctl_peer_.close(0)
            self.thread_ = None
        self._term()

    def _term(self) -> None:
        if self.auth_ is not None:
            self.auth_.stop()
            self.auth_ = None
        if self.ctx_ is not None:
            self.ctx_.term()
            self.ctx_ = None

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
