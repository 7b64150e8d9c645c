"""Live adapter: a Lab Streaming Layer (LSL) stream of joint angles -> protocol-v1 frames.

Most motion-capture and wearable systems can publish joint angles on LSL. ``g2h-edge lsl``
resolves one such stream, picks the 10 input channels by their labels, converts the LSL
timestamps to a smooth, strictly increasing clock and publishes protocol-v1 ``meta`` /
``frames`` / ``end`` messages to the server (the same lossless XPUB publisher as ``replay``).

    cfg = LslConfig(name="Vicon_angles", address="tcp://127.0.0.1:5555")
    stats = run_lsl(cfg)             # until stop() / duration_s / Ctrl-C

Channel mapping (:func:`map_channels`): each of ``schema.IN_COLS`` is taken from the LSL
channel with the same label (case-insensitive), or from the label given in ``mapping``
(``{"hip_flexion_r": "RHipAngles_X", ...}``). Labels come from the stream's XDF-style
description (``desc/channels/channel/label``) or from ``labels`` when the stream has none.
Extra channels are ignored; a missing or ambiguous one is an error that lists the labels.

Units: ``units`` ("deg" | "rad"), or the channels' ``unit`` fields when they all agree
(degrees/radians spelt any common way); otherwise an error. The server converts radians.

Timestamps: the inlet post-processes them (clock synchronisation, de-jitter, monotonic), so
``t`` is the sender's sample time on this machine's LSL clock, in seconds. Samples whose
time does not increase, or whose 10 angles are not all finite, are left out and counted;
the counters go to the server every ``status_interval_s`` as a source ``status`` message
(``source: "lsl"``), so they appear in the server's status next to the stream's counters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.mapping import ChannelPlan, MappingConfig, resolve_channels
from g2h_edge.schema import IN_COLS
from g2h_edge.sources.publisher import check_publish_options
from g2h_edge.wire import (
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    check_stream_id,
    encode_end,
    encode_frames,
    encode_meta,
    encode_source_status,
)

__all__ = [
    "LslConfig",
    "LslStats",
    "map_channels",
    "channel_plan",
    "units_from_lsl",
    "open_inlet",
    "stream_labels",
    "LslAdapter",
    "run_lsl",
    "SOURCE_NAME",
]

SOURCE_NAME = "lsl"
_DEG = {"deg", "degree", "degrees", "°"}
_RAD = {"rad", "radian", "radians"}


def _pylsl():
    try:
        import pylsl
    except Exception as exc:  # ImportError, or liblsl missing on this platform
        raise ConfigError(
            f"the LSL adapter needs pylsl ({exc}); install it with pip install 'g2h-edge[lsl]'",
            reason="missing_dependency",
        ) from None
    return pylsl


@dataclass(frozen=True)
class LslConfig:
    """Which LSL stream to read and where to publish it (see module doc)."""

    #: resolve by any of these LSL properties (at least one)
    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    #: protocol stream id (None: the LSL stream's name, made a valid id)
    stream: str | None = None
    address: str = "tcp://127.0.0.1:5555"
    bind: bool = False
    #: IN_COLS name -> LSL channel label, for channels whose label differs ("-LABEL" flips)
    mapping: dict = field(default_factory=dict)
    #: a named label/sign/offset table of the mapping layer ("pig")
    preset: str | None = None
    #: IN_COLS name -> degrees added (calibration offsets)
    offsets_deg: dict = field(default_factory=dict)
    #: the stream's channel labels, in order, when its description has none
    labels: tuple | None = None
    units: str | None = None
    #: frames per second when the LSL stream is irregular (nominal rate 0)
    rate_hz: float | None = None
    body_mass_kg: float | None = None
    frames_per_message: int = 10
    meta_interval_s: float = 1.0
    status_interval_s: float = 1.0
    resolve_timeout_s: float = 10.0
    wait_subscriber_s: float = 30.0
    #: stop after this many seconds (None: until stopped)
    duration_s: float | None = None
    linger_s: float = 10.0
    #: CURVE client keys (g2h_edge/security.py; None: plain TCP)
    curve_keys: str | None = None

    def __post_init__(self):
        if not (self.name or self.type or self.source_id):
            raise ConfigError(
                "say which LSL stream to read: a name, a type or a source_id", reason="bad_option"
            )
        for key in ("name", "type", "source_id"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, str) or "'" in v):
                raise ConfigError(
                    f"LSL {key} {v!r} must be a string without single quotes", reason="bad_option"
                )
        if self.units is not None and self.units not in ("deg", "rad"):
            raise ConfigError(f"units {self.units!r} must be 'deg' or 'rad'", reason="bad_option")
        MappingConfig(mapping=self.mapping, preset=self.preset, offsets_deg=self.offsets_deg)
        if self.rate_hz is not None and not (
            isinstance(self.rate_hz, (int, float)) and MIN_RATE_HZ <= self.rate_hz <= MAX_RATE_HZ
        ):
            raise ConfigError(
                f"rate_hz {self.rate_hz!r} must be within [{MIN_RATE_HZ}, {MAX_RATE_HZ}] Hz",
                reason="bad_option",
            )
        check_publish_options(
            self,
            ("meta_interval_s", "status_interval_s", "resolve_timeout_s", "wait_subscriber_s", "linger_s"),
        )
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"duration_s {self.duration_s!r} must be > 0", reason="bad_option")


@dataclass
class LslStats:
    """What the adapter did (also sent to the server as source counters)."""

    samples: int = 0  # samples pulled from LSL
    frames: int = 0  # frames published
    messages: int = 0  # frames messages published
    dropped_nonfinite: int = 0  # samples with a NaN/inf among the 10 angles
    dropped_time: int = 0  # samples whose time did not increase
    wall_s: float = 0.0

    def counters(self) -> dict:
        return {
            "samples": self.samples,
            "frames": self.frames,
            "messages": self.messages,
            "dropped_nonfinite": self.dropped_nonfinite,
            "dropped_time": self.dropped_time,
        }


def channel_plan(
    labels, mapping: dict | None = None, *, preset: str | None = None, offsets_deg: dict | None = None
) -> ChannelPlan:
    """Where the 10 IN_COLS channels are in the LSL sample, with signs and offsets
    (:func:`g2h_edge.io.mapping.resolve_channels`, the mapping layer every source uses)."""
    cfg = MappingConfig(mapping=dict(mapping or {}), preset=preset, offsets_deg=dict(offsets_deg or {}))
    return resolve_channels(labels, cfg, what="the LSL stream")


def map_channels(labels, mapping: dict | None = None) -> list[int]:
    """Indices into the LSL sample of the 10 IN_COLS channels (in IN_COLS order)."""
    return list(channel_plan(labels, mapping).index)


def units_from_lsl(units, override: str | None = None) -> str:
    """'deg' or 'rad' from the channels' LSL unit strings (or the override)."""
    if override is not None:
        return override
    kinds = set()
    for u in units:
        u = str(u or "").strip().lower()
        kinds.add("deg" if u in _DEG else "rad" if u in _RAD else "?" if u else "")
    if kinds == {"deg"} or kinds == {"rad"}:
        return kinds.pop()
    if kinds == {""}:
        raise ConfigError(
            "the LSL stream does not say its angle units: pass --units deg or --units rad", reason="no_units"
        )
    raise ConfigError(
        f"the LSL channels' units are mixed or unknown ({sorted(units)}): pass --units deg or --units rad",
        reason="bad_units",
    )


def stream_labels(info) -> tuple[list[str], list[str]]:
    """(labels, units) of an LSL StreamInfo's channels, from its XDF-style description
    (empty strings where absent)."""
    n = info.channel_count()
    labels, units = [""] * n, [""] * n
    ch = info.desc().child("channels").child("channel")
    i = 0
    while not ch.empty() and i < n:
        labels[i] = ch.child_value("label")
        units[i] = ch.child_value("unit")
        ch = ch.next_sibling("channel")
        i += 1
    return labels, units


def open_inlet(cfg: LslConfig):
    """Resolve the configured LSL stream and open an inlet on it: (inlet, StreamInfo)."""
    pylsl = _pylsl()
    props = [(k, v) for k, v in (("name", cfg.name), ("type", cfg.type), ("source_id", cfg.source_id)) if v]
    pred = " and ".join(f"{k}='{v}'" for k, v in props)
    found = pylsl.resolve_bypred(pred, 1, cfg.resolve_timeout_s)
    if not found:
        raise DataError(
            f"no LSL stream with {pred} appeared within {cfg.resolve_timeout_s:g}"
            " s; is the sender running on this network?",
            reason="no_lsl_stream",
        )
    flags = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, recover=True, processing_flags=flags)
    info = inlet.info(timeout=cfg.resolve_timeout_s)  # the full info, with its description
    return inlet, info


def _stream_id(cfg: LslConfig, info) -> str:
    if cfg.stream is not None:
        return cfg.stream
    sid = "".join(c if c.isascii() and (c.isalnum() or c in "_.:/-") else "_" for c in info.name())
    sid = sid.lstrip("_.:/-")[:64] or "lsl"
    return check_stream_id(sid)


class LslAdapter:
    """Reads one LSL inlet, publishes protocol-v1 messages (see module doc)."""

    def __init__(self, cfg: LslConfig, inlet, info, *, context=None):
        self.cfg = cfg
        self.inlet = inlet
        n_ch = info.channel_count()
        pylsl = _pylsl()
        if info.channel_format() in (pylsl.cf_string, getattr(pylsl, "cf_undefined", 0)):
            raise ConfigError(f"LSL stream {info.name()!r} carries strings, not numbers", reason="bad_format")
        labels, units = stream_labels(info)
        if cfg.labels is not None:
            if len(cfg.labels) != n_ch:
                raise ConfigError(
                    f"--labels lists {len(cfg.labels)} names but the LSL stream has {n_ch} channels",
                    reason="bad_labels",
                )
            labels = list(cfg.labels)
        self.plan_ = channel_plan(labels, cfg.mapping, preset=cfg.preset, offsets_deg=cfg.offsets_deg)
        self.cols_ = list(self.plan_.index)  # (10,) indices
        self.units = units_from_lsl([units[i] for i in self.cols_], cfg.units)
        if self.units == "rad" and self.plan_.offset_deg.any():
            raise ConfigError(
                "offsets are in degrees: with a radian stream, leave them out or convert the stream",
                reason="bad_option",
            )
        rate = float(info.nominal_srate())
        if rate <= 0:
            if cfg.rate_hz is None:
                raise ConfigError(
                    "the LSL stream has an irregular rate (nominal 0 Hz): pass "
                    "--rate-hz with its approximate frame rate",
                    reason="no_rate",
                )
            rate = float(cfg.rate_hz)
        elif cfg.rate_hz is not None:
            rate = float(cfg.rate_hz)
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise ConfigError(
                f"the LSL stream's rate {rate:g} Hz is outside [{MIN_RATE_HZ}, {MAX_RATE_HZ}] Hz",
                reason="bad_rate",
            )
        self.rate_hz = rate
        self.stream = _stream_id(cfg, info)
        self.n_channels = n_ch
        self.stats = LslStats()
        self.seq_ = 0
        self.t_last_ = -math.inf
        self.stop_ = False
        self.own_ctx_ = context is None
        self.ctx_ = context or zmq.Context()
        self.sock_ = None

    # ----------------------------------------------------------------- publishing
    def open(self) -> LslAdapter:
        from g2h_edge.sources.replay import ReplayConfig, open_publisher, wait_for_subscriber

        self.sock_ = open_publisher(
            self.ctx_,
            ReplayConfig(
                address=self.cfg.address,
                bind=self.cfg.bind,
                linger_s=self.cfg.linger_s,
                curve_keys=self.cfg.curve_keys,
            ),
        )
        wait_for_subscriber(self.sock_, self.cfg.wait_subscriber_s)
        self._send_meta()
        return self

    def _send(self, parts) -> None:
        self.sock_.send_multipart(parts)  # XPUB_NODROP: blocks rather than drops

    def _send_meta(self) -> None:
        self._send(encode_meta(self.stream, self.rate_hz, IN_COLS, self.units, self.cfg.body_mass_kg))

    def _send_status(self) -> None:
        self._send(encode_source_status(self.stream, SOURCE_NAME, self.stats.counters()))

    def publish(self, t: np.ndarray, x: np.ndarray) -> int:
        """Publish LSL samples ``t`` (n,) s, ``x`` (n, n_channels); returns frames sent."""
        st = self.stats
        st.samples += t.shape[0]
        q = np.ascontiguousarray(self.plan_.apply(x), dtype=np.float32)  # (n, 10), signed
        ok = np.isfinite(q).all(axis=1) & np.isfinite(t)
        st.dropped_nonfinite += int(np.count_nonzero(~ok))
        t, q = t[ok], q[ok]
        if t.shape[0]:  # strictly increasing, also across pulls
            keep = t > np.maximum.accumulate(np.concatenate([[self.t_last_], t[:-1]]))
            st.dropped_time += int(np.count_nonzero(~keep))
            t, q = t[keep], q[keep]
        n = t.shape[0]
        step = self.cfg.frames_per_message
        for i in range(0, n, step):
            self._send(encode_frames(self.stream, self.seq_, t[i : i + step], q[i : i + step]))
            self.seq_ += 1
            st.messages += 1
        if n:
            self.t_last_ = float(t[-1])
            st.frames += n
        return n

    # ----------------------------------------------------------------- loop
    def stop(self) -> None:
        self.stop_ = True

    def run(self) -> LslStats:
        """Pull and publish until stop(), duration_s, or KeyboardInterrupt; sends ``end``."""
        cfg = self.cfg
        start = time.monotonic()
        next_meta = start + cfg.meta_interval_s
        next_status = start + cfg.status_interval_s
        try:
            while not self.stop_:
                now = time.monotonic()
                if cfg.duration_s is not None and now - start >= cfg.duration_s:
                    break
                # returns as soon as one sample is there (min_samples=1): no added latency
                x, ts = self.inlet.pull_chunk(timeout=0.01, max_samples=1024, min_samples=1, as_numpy=True)
                if len(ts):
                    self.publish(np.asarray(ts, np.float64), np.asarray(x, np.float64).reshape(len(ts), -1))
                if now >= next_meta:
                    self._send_meta()
                    next_meta = now + cfg.meta_interval_s
                if now >= next_status:
                    self._send_status()
                    next_status = now + cfg.status_interval_s
        except KeyboardInterrupt:
            pass
        finally:
            self.stats.wall_s = time.monotonic() - start
        return self.stats

    def close(self, send_end: bool = True) -> None:
        if self.sock_ is not None:
            try:
                if send_end:
                    self._send_status()
                    self._send(encode_end(self.stream))
            finally:
                self.sock_.close()  # lingers until delivered
                self.sock_ = None
        try:
            self.inlet.close_stream()
        except Exception:  # closing must not mask the real outcome
            pass
        if self.own_ctx_:
            self.ctx_.term()


def run_lsl(cfg: LslConfig, *, on_ready=None) -> LslStats:
    """Resolve, map, publish until stopped (duration_s or Ctrl-C); returns the stats.
    ``on_ready(adapter)`` is called once the subscriber is connected."""
    inlet, info = open_inlet(cfg)
    adapter = LslAdapter(cfg, inlet, info)
    try:
        adapter.open()
        if on_ready is not None:
            on_ready(adapter)
        return adapter.run()
    finally:
        adapter.close()
