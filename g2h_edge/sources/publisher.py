"""The publishing half every live adapter shares (Xsens MVN, Qualisys QTM).

:class:`FramePublisher` owns the lossless XPUB socket of ``replay`` (it waits for the
server's subscription, blocks rather than drops), sends the ``meta`` first and every
``meta_interval_s``, publishes frames in chunks of at most ``frames_per_message``, leaves
out (and counts) samples whose ten angles are not all finite or whose time does not
increase, sends the counters as a source ``status`` every ``status_interval_s`` and on
close, and ``end`` last. The adapters only decode their vendor's packets into
``(t seconds, q (n, 10) degrees)`` through the mapping layer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import zmq

from g2h_edge.errors import ConfigError
from g2h_edge.schema import IN_COLS
from g2h_edge.wire import (
    MAX_BODY_MASS_KG,
    MAX_FRAMES_PER_MESSAGE,
    MAX_RATE_HZ,
    MIN_BODY_MASS_KG,
    MIN_RATE_HZ,
    check_stream_id,
    encode_end,
    encode_frames,
    encode_meta,
    encode_source_status,
)

__all__ = ["PublisherConfig", "SourceStats", "FramePublisher", "check_publish_options"]


@dataclass(frozen=True)
class PublisherConfig:
    """Where and how a live adapter publishes (see module doc)."""

    stream: str = "live"
    address: str = "tcp://127.0.0.1:5555"
    bind: bool = False
    body_mass_kg: float | None = None
    frames_per_message: int = 10
    meta_interval_s: float = 1.0
    status_interval_s: float = 1.0
    wait_subscriber_s: float = 30.0
    linger_s: float = 10.0

    def __post_init__(self):
        check_publish_options(self, ("meta_interval_s", "status_interval_s", "wait_subscriber_s", "linger_s"))


def check_publish_options(cfg, intervals: tuple[str, ...]) -> None:
    """The publishing fields every live source's config shares: ``stream`` (None allowed),
    ``address``, ``body_mass_kg``, ``frames_per_message`` and the positive ``intervals``;
    a ConfigError (``bad_option``) naming the bad value."""
    name = type(cfg).__name__
    if cfg.stream is not None:
        try:
            check_stream_id(cfg.stream)
        except Exception as exc:  # WireError: say it as a configuration error
            raise ConfigError(str(exc), reason="bad_option") from None
    if not isinstance(cfg.address, str) or "://" not in cfg.address:
        raise ConfigError(f"{name}.address {cfg.address!r} is not a ZeroMQ endpoint", reason="bad_option")
    m = cfg.body_mass_kg
    if m is not None and not (isinstance(m, (int, float)) and MIN_BODY_MASS_KG <= m <= MAX_BODY_MASS_KG):
        raise ConfigError(
            f"body_mass_kg {m!r} must be within [{MIN_BODY_MASS_KG}, {MAX_BODY_MASS_KG}] kg",
            reason="bad_option",
        )
    fpm = cfg.frames_per_message
    if isinstance(fpm, bool) or not isinstance(fpm, int) or not 1 <= fpm <= MAX_FRAMES_PER_MESSAGE:
        raise ConfigError(
            f"frames_per_message {fpm!r} must be an integer in 1..{MAX_FRAMES_PER_MESSAGE}",
            reason="bad_option",
        )
    for key in intervals:
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ConfigError(f"{name}.{key} = {v!r} must be > 0", reason="bad_option")


@dataclass
class SourceStats:
    """What a live adapter did (also sent to the server as source counters)."""

    packets: int = 0  # vendor packets/datagrams received
    bad_packets: int = 0  # refused as malformed (not this protocol, wrong sizes)
    samples: int = 0  # angle samples decoded
    frames: int = 0  # frames published
    messages: int = 0  # frames messages published
    dropped_nonfinite: int = 0  # samples with a NaN/inf among the 10 angles
    dropped_time: int = 0  # samples whose time did not increase
    wall_s: float = 0.0

    def counters(self) -> dict:
        return {
            k: int(getattr(self, k))
            for k in (
                "packets",
                "bad_packets",
                "samples",
                "frames",
                "messages",
                "dropped_nonfinite",
                "dropped_time",
            )
        }


class FramePublisher:
    """Publishes decoded frames of one stream (see module doc). ``open()`` blocks until
    the server subscribes; ``close()`` sends the counters and ``end``."""

    def __init__(self, cfg: PublisherConfig, source: str, units: str = "deg", *, context=None):
        if units not in ("deg", "rad"):
            raise ConfigError(f"units {units!r} must be 'deg' or 'rad'", reason="bad_option")
        self.cfg = cfg
        self.source = source
        self.units = units
        self.stats = SourceStats()
        self.rate_hz: float | None = None
        self.seq_ = 0
        self.t_last_ = -math.inf
        self.next_meta_ = 0.0
        self.next_status_ = 0.0
        self.own_ctx_ = context is None
        self.ctx_ = context or zmq.Context()
        self.sock_ = None

    def open(self) -> FramePublisher:
        from g2h_edge.sources.replay import ReplayConfig, open_publisher, wait_for_subscriber

        self.sock_ = open_publisher(
            self.ctx_, ReplayConfig(address=self.cfg.address, bind=self.cfg.bind, linger_s=self.cfg.linger_s)
        )
        wait_for_subscriber(self.sock_, self.cfg.wait_subscriber_s)
        return self

    def set_rate(self, rate_hz: float) -> None:
        """The stream's frame rate (sent in every meta); the first call sends the meta."""
        if not (math.isfinite(rate_hz) and MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ):
            raise ConfigError(
                f"the source's rate {rate_hz:g} Hz is outside [{MIN_RATE_HZ}, "
                f"{MAX_RATE_HZ}] Hz: pass --rate-hz",
                reason="bad_rate",
            )
        first = self.rate_hz is None
        self.rate_hz = float(rate_hz)
        if first:
            self._send_meta()

    def _send(self, parts) -> None:
        self.sock_.send_multipart(parts)  # XPUB_NODROP: blocks rather than drops

    def _send_meta(self) -> None:
        self._send(encode_meta(self.cfg.stream, self.rate_hz, IN_COLS, self.units, self.cfg.body_mass_kg))
        self.next_meta_ = time.monotonic() + self.cfg.meta_interval_s

    def send_status(self) -> None:
        self._send(encode_source_status(self.cfg.stream, self.source, self.stats.counters()))
        self.next_status_ = time.monotonic() + self.cfg.status_interval_s

    def tick(self) -> None:
        """Repeat the meta and send the counters when due (call it from the read loop)."""
        now = time.monotonic()
        if self.rate_hz is not None and now >= self.next_meta_:
            self._send_meta()
        if now >= self.next_status_:
            self.send_status()

    def publish(self, t: np.ndarray, q: np.ndarray) -> int:
        """Publish ``t`` (n,) s and ``q`` (n, 10) in IN_COLS order; returns frames sent."""
        st = self.stats
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        q = np.ascontiguousarray(q, dtype=np.float32).reshape(t.shape[0], len(IN_COLS))
        st.samples += t.shape[0]
        ok = np.isfinite(q).all(axis=1) & np.isfinite(t)
        st.dropped_nonfinite += int(np.count_nonzero(~ok))
        t, q = t[ok], q[ok]
        if t.shape[0]:  # strictly increasing, also across calls
            keep = t > np.maximum.accumulate(np.concatenate([[self.t_last_], t[:-1]]))
            st.dropped_time += int(np.count_nonzero(~keep))
            t, q = t[keep], q[keep]
        n = t.shape[0]
        if n and self.rate_hz is None:
            raise ConfigError("set_rate() before publishing frames", reason="no_rate")
        step = self.cfg.frames_per_message
        for i in range(0, n, step):
            self._send(encode_frames(self.cfg.stream, self.seq_, t[i : i + step], q[i : i + step]))
            self.seq_ += 1
            st.messages += 1
        if n:
            self.t_last_ = float(t[-1])
            st.frames += n
        return n

    def close(self, send_end: bool = True) -> None:
        if self.sock_ is not None:
            try:
                if send_end:
                    self.send_status()
                    self._send(encode_end(self.cfg.stream))
            finally:
                self.sock_.close()  # lingers until delivered
                self.sock_ = None
        if self.own_ctx_:
            self.ctx_.term()
            self.own_ctx_ = False
