"""Replay a recorded trial as protocol-v1 frames over ZeroMQ (``g2h-edge replay``).

Loses nothing: the publisher is an XPUB socket that waits until a subscriber's
subscription reaches it (no slow-joiner loss), never drops on a full queue
(``XPUB_NODROP``: sends block instead), sends ``end`` last and lingers until everything
is delivered. Paced at the trial's own clock times ``speed``, or as fast as possible.

With ``results`` set (the CLI sets it by default) it also watches the server's output for
its stream (:mod:`g2h_edge.sources.confirm`) and waits up to ``confirm_wait_s`` after the
last send for the server to confirm every frame; ``ReplayStats.confirmation`` says what the
server did (cycles, rejects by reason, confirmed or not).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.wire import MAX_FRAMES_PER_MESSAGE, check_stream_id, encode_end, encode_frames, encode_meta

__all__ = [
    "ReplayConfig",
    "ReplayStats",
    "replay",
    "load_trial_file",
    "build_messages",
    "finite_frames",
    "wait_for_subscriber",
    "RECOMMENDED_FRAMES_PER_MESSAGE",
]

#: frames per message we recommend to publishers: ~50 ms of data at 200 Hz, one message per
#: 10 frames keeps per-message overhead small without adding noticeable latency
RECOMMENDED_FRAMES_PER_MESSAGE = 10


@dataclass(frozen=True)
class ReplayConfig:
    """Where and how to replay. ``bind=False`` connects to a server that binds (default)."""

    address: str = "tcp://127.0.0.1:5555"
    bind: bool = False
    stream: str = "replay"
    speed: float = 1.0
    max_rate: bool = False
    with_events: bool = False
    frames_per_message: int = RECOMMENDED_FRAMES_PER_MESSAGE
    #: a meta is repeated every this many seconds of trial time (late joiners)
    meta_interval_s: float = 1.0
    #: give up if no subscriber appears within this many seconds
    wait_subscriber_s: float = 30.0
    #: overrides the trial's body mass (None: use the trial's, if any)
    body_mass_kg: float | None = None
    send_end: bool = True
    #: how long to keep delivering queued messages after the last send
    linger_s: float = 30.0
    #: the server's output (its --publish address) to watch for this stream's cycles,
    #: rejects and status; None: publish only, nothing is confirmed
    results: str | None = None
    #: after the last send, wait at most this long for the server to confirm the stream
    confirm_wait_s: float = 10.0
    #: CURVE client keys (g2h_edge/security.py; None: plain TCP)
    curve_keys: str | None = None

    def __post_init__(self):
        check_stream_id(self.stream)
        if not isinstance(self.address, str) or "://" not in self.address:
            raise ConfigError(f"ReplayConfig.address {self.address!r} is not a ZeroMQ endpoint")
        if not (isinstance(self.speed, (int, float)) and math.isfinite(self.speed) and self.speed > 0):
            raise ConfigError(f"ReplayConfig.speed = {self.speed!r} must be > 0")
        fpm = self.frames_per_message
        if isinstance(fpm, bool) or not isinstance(fpm, int) or not 1 <= fpm <= MAX_FRAMES_PER_MESSAGE:
            raise ConfigError(
                f"ReplayConfig.frames_per_message = {fpm!r} must be an integer in 1..{MAX_FRAMES_PER_MESSAGE}"
            )
        if self.results is not None and (not isinstance(self.results, str) or "://" not in self.results):
            raise ConfigError(f"ReplayConfig.results {self.results!r} is not a ZeroMQ endpoint")
        for name in ("meta_interval_s", "wait_subscriber_s", "linger_s", "confirm_wait_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"ReplayConfig.{name} = {v!r} must be > 0")


@dataclass
class ReplayStats:
    messages: int = 0
    frames: int = 0
    events: int = 0
    wall_s: float = 0.0
    dropped_frames: int = 0  # non-finite frames left out
    #: what the server did with the stream (None unless ReplayConfig.results is set)
    confirmation: object = None


def load_trial_file(path, *, npz_rate_hz: float = 100.0, convert_gait2354: bool = False):
    """A Trial from .mot/.sto/.csv (g2h_edge.io.read_trial) or a Gait2Hip NPZ (cycles strung
    into one continuous stream with known ICs, g2h_edge.io.synth.cycles_to_stream)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist", reason="missing_file")
    if path.suffix.lower() == ".npz":
        from g2h_edge.io.npz import read_gait2hip_npz
        from g2h_edge.io.synth import cycles_to_stream

        return cycles_to_stream(read_gait2hip_npz(path, require_meta=False), npz_rate_hz)
    from g2h_edge.io.trial import read_trial

    return read_trial(path, convert_gait2354=convert_gait2354)


def build_messages(trial, config: ReplayConfig, *, stream: str | None = None):
    """[(send_time_s trial clock, [topic, body]), ...] for the whole trial, meta first,
    meta repeated every meta_interval_s, ``end`` last (when config.send_end)."""
    stream = stream or config.stream
    t, q = finite_frames(trial)
    mass = config.body_mass_kg if config.body_mass_kg is not None else getattr(trial, "body_mass_kg", None)
    meta = encode_meta(stream, float(trial.rate_hz), body_mass_kg=mass)
    events = _events(trial) if config.with_events else []
    out, ev_i, next_meta = [(float(t[0]), meta)], 0, float(t[0]) + config.meta_interval_s
    step = config.frames_per_message
    for seq, i in enumerate(range(0, t.shape[0], step)):
        tm = t[i : i + step]
        t_send = float(tm[-1])
        if t_send >= next_meta:
            out.append((t_send, meta))
            next_meta += config.meta_interval_s
        ic = []
        while ev_i < len(events) and events[ev_i][0] <= t_send:
            ic.append(events[ev_i])
            ev_i += 1
        out.append((t_send, encode_frames(stream, seq, tm, q[i : i + step], ic=ic or None)))
    if config.send_end:
        out.append((float(t[-1]), encode_end(stream)))
    return out


def finite_frames(trial) -> tuple[np.ndarray, np.ndarray]:
    """The trial's frames without the non-finite ones (marker dropouts): the protocol
    carries finite angles only, and the server sees a dropout as a time gap (bridged by
    interpolation when short, the cycle rejected as ``gap`` when long)."""
    t = np.asarray(trial.t, dtype=np.float64)
    q = np.asarray(trial.q, dtype=np.float32)
    if t.ndim != 1 or q.shape != (t.shape[0], 10) or t.shape[0] == 0:
        raise DataError(f"trial has t {t.shape} and q {q.shape}: expected (n,) and (n, 10)")
    ok = np.isfinite(t) & np.isfinite(q).all(axis=1)
    if not ok.any():
        raise DataError("the trial has no frame with finite angles", reason="nan")
    return t[ok], q[ok]


def _events(trial) -> list:
    ev = getattr(trial, "events", None) or {}
    if not ev:
        raise DataError(
            "--with-events: this trial has no IC events (for .mot/.csv a sibling "
            "<stem>_events.json with foot_strike_R/L is needed)",
            reason="no_events",
        )
    pairs = [(float(x), side) for side in ("R", "L") for x in np.asarray(ev.get(side, []))]
    return sorted(pairs)


def wait_for_subscriber(sock, timeout_s: float) -> None:
    """Block until the XPUB ``sock`` receives a subscription (a subscriber is connected)."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DataError(
                f"no subscriber connected within {timeout_s:g} s; start the "
                "server (g2h-edge serve) or check the address",
                reason="no_subscriber",
            )
        if poller.poll(int(left * 1000) + 1):
            msg = sock.recv()
            if msg[:1] == b"\x01":  # subscribe (b"\x00" is unsubscribe)
                return


def open_publisher(ctx, config: ReplayConfig):
    """An XPUB socket that blocks rather than drops, bound or connected per config."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.LINGER, int(config.linger_s * 1000))
    from g2h_edge.security import check_exposure, client_curve

    try:
        check_exposure(
            (config.address,) if config.bind else (), curve_keys=config.curve_keys, what="g2h-edge source"
        )
        if config.bind and config.curve_keys:
            raise ConfigError(
                "a source cannot --bind with --curve-keys (the side that binds "
                "is the CURVE server): connect to the server or to a "
                "g2h-edge proxy instead",
                reason="bad_option",
            )
        client_curve(sock, config.curve_keys)
    except ConfigError:
        sock.close(0)
        raise
    try:
        (sock.bind if config.bind else sock.connect)(config.address)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise ConfigError(
            f"cannot {'bind' if config.bind else 'connect'} {config.address}: {exc}", reason="bad_address"
        ) from None
    return sock


def send_paced(sock, messages, config: ReplayConfig, stats: ReplayStats, stop=None) -> None:
    """Send ``[(trial_time, parts)]`` in order, paced at trial time / speed (or max rate)."""
    t0 = messages[0][0] if messages else 0.0
    wall0 = time.perf_counter()
    for t_msg, parts in messages:
        if stop is not None and stop():
            break
        if not config.max_rate:
            delay = wall0 + (t_msg - t0) / config.speed - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sock.send_multipart(parts)  # blocks when the queue is full (NODROP)
        stats.messages += 1


def replay(trial, config: ReplayConfig, *, context=None, on_progress=None) -> ReplayStats:
    """Publish ``trial`` (a g2h_edge.io Trial) as stream ``config.stream``; returns counts,
    and with ``config.results`` what the server confirmed (``stats.confirmation``)."""
    messages = build_messages(trial, config)
    stats = ReplayStats(frames=int(finite_frames(trial)[0].shape[0]))
    stats.dropped_frames = int(np.asarray(trial.t).shape[0]) - stats.frames
    if config.with_events:
        stats.events = len(_events(trial))
    ctx = context or zmq.Context()
    watcher = None
    if config.results is not None:
        from g2h_edge.sources.confirm import ResultWatcher

        watcher = ResultWatcher(
            config.results, config.stream, context=ctx, curve_keys=config.curve_keys
        ).start()
    sock = open_publisher(ctx, config)
    linger_ms = None
    try:
        wait_for_subscriber(sock, config.wait_subscriber_s)
        if watcher is not None:  # its first status: the subscription to results is live
            watcher.wait_ready(min(config.confirm_wait_s, config.wait_subscriber_s))
        if watcher is not None:
            watcher.sending()
        start = time.perf_counter()
        send_paced(sock, messages, config, stats)
        stats.wall_s = time.perf_counter() - start
        if watcher is not None:
            stats.confirmation = watcher.finish(stats.frames, config.send_end, config.confirm_wait_s)
            watcher = None
            linger_ms = 0  # confirmed: delivered; not: waited long enough already
    finally:
        if watcher is not None:
            watcher.finish(0, False, 0)
        if linger_ms is not None:
            sock.setsockopt(zmq.LINGER, linger_ms)
        sock.close()  # lingers until delivered (config.linger_s)
        if context is None:
            ctx.term()
    return stats
