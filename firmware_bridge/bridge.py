"""The firmware bridge: a microcontroller (serial or UDP) <-> the runtime's ZeroMQ sockets.

Device frames are decoded (:class:`.deframer.LinkDecoder`), translated into protocol-v1
messages (:class:`.translate.DeviceTranslator`) and published by a PUB socket that connects
to the runtime's input (``to_addr``). A SUB socket connected to the runtime's output
(``from_addr``) receives ``cycle`` messages of the bridge's streams, which go back to the
device as PREDICTION frames. Once a second the counters go to the device (STATUS frames) and
to the runtime (``status`` inputs, republished in the server's status stream).

One thread, one poller; the device may vanish and come back at any time (reopened with
exponential backoff), and no byte sequence from it can raise.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zmq

from g2h_edge import wire
from g2h_edge.config import config_from_mapping
from g2h_edge.errors import BridgeError, ConfigError, G2HError, WireError

from .deframer import LinkDecoder
from .link import pack_status
from .translate import DeviceTranslator, device_stream_of, prediction_frame
from .transports import SerialTransport, TransportLost, UdpTransport, parse_host_port

__all__ = ["BridgeConfig", "Bridge", "bridge_config", "run_bridge", "MAX_POINTS"]

#: most waveform points per PREDICTION: 14 muscle-force channels x 36 x 2 + 6 <= 1024 bytes
MAX_POINTS = 36


def _check_num(cfg, name: str, lo: float, hi: float, integer: bool = False) -> None:
    v = getattr(cfg, name)
    kinds = (int,) if integer else (int, float)
    if isinstance(v, bool) or not isinstance(v, kinds) or not math.isfinite(v) or not lo <= v <= hi:
        what = "an integer" if integer else "a number"
        raise ConfigError(f"BridgeConfig.{name} = {v!r} must be {what} in [{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class BridgeConfig:
    """Everything ``g2h-edge bridge`` needs (exactly one of ``serial_port`` and ``udp``).

    ``to_addr``: the runtime's input endpoint (our PUB connects to it); ``from_addr``: the
    runtime's output endpoint (our SUB connects to it). ``udp`` is the local HOST:PORT the
    bridge binds for device datagrams.
    """

    to_addr: str
    from_addr: str
    serial_port: str | None = None
    baud: int = 115200
    udp: str | None = None
    points: int = 20
    stream_prefix: str = "mcu"
    source: str = "firmware_bridge"
    status_interval_s: float = 1.0
    meta_interval_s: float = 1.0
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 2.0
    max_batch_frames: int = 200
    restart_after_s: float = 1.0
    read_bytes: int = 4096
    write_timeout_s: float = 0.05
    #: CURVE client keys for both sockets (g2h_edge.security; None: plain TCP)
    curve_keys: str | None = None

    def __post_init__(self):
        if (self.serial_port is None) == (self.udp is None):
            raise ConfigError(
                "give exactly one of --serial DEV and --udp HOST:PORT "
                f"(got serial={self.serial_port!r}, udp={self.udp!r})"
            )
        for name in ("to_addr", "from_addr"):
            addr = getattr(self, name)
            if not isinstance(addr, str) or "://" not in addr:
                raise ConfigError(
                    f"BridgeConfig.{name} = {addr!r} is not a ZeroMQ endpoint such as tcp://127.0.0.1:5555"
                )
        if self.serial_port is not None and (not isinstance(self.serial_port, str) or not self.serial_port):
            raise ConfigError(
                f"BridgeConfig.serial_port = {self.serial_port!r} must be a device path such as /dev/ttyACM0"
            )
        if self.udp is not None:
            try:
                parse_host_port(self.udp)
            except Exception as exc:
                raise ConfigError(str(exc)) from None
        try:
            wire.check_stream_id(f"{self.stream_prefix}255")
            wire.check_stream_id(f"{self.stream_prefix}-link")
            wire.encode_source_status("x", self.source, {})
        except (WireError, TypeError) as exc:
            raise ConfigError(
                f"BridgeConfig.stream_prefix {self.stream_prefix!r} / source "
                f"{self.source!r} do not make valid names: {exc}"
            ) from None
        _check_num(self, "baud", 50, 20_000_000, integer=True)
        _check_num(self, "points", 2, MAX_POINTS, integer=True)
        _check_num(self, "max_batch_frames", 1, wire.MAX_FRAMES_PER_MESSAGE, integer=True)
        _check_num(self, "read_bytes", 64, 1 << 20, integer=True)
        for name, lo, hi in (
            ("status_interval_s", 0.01, 3600),
            ("meta_interval_s", 0.01, 3600),
            ("reconnect_min_s", 0.001, 60),
            ("reconnect_max_s", 0.001, 600),
            ("restart_after_s", 0.001, 3600),
            ("write_timeout_s", 0.001, 10),
        ):
            _check_num(self, name, lo, hi)
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigError("BridgeConfig.reconnect_max_s must be >= reconnect_min_s")


def bridge_config(values: Mapping[str, Any]) -> BridgeConfig:
    """BridgeConfig from a mapping; unknown keys raise ConfigError."""
    return config_from_mapping(BridgeConfig, values)


class Bridge:
    """Runs the bridge loop; ``run(stop)`` until ``stop`` (a threading.Event) is set."""

    def __init__(self, config: BridgeConfig, *, log=None):
        self.config = config
        self.log = log or (lambda text: None)  # e.g. click.echo to stderr (the CLI)
        if config.serial_port is not None:
            self.transport = SerialTransport(
                config.serial_port,
                config.baud,
                read_bytes=config.read_bytes,
                write_timeout_s=config.write_timeout_s,
            )
        else:
            self.transport = UdpTransport(*parse_host_port(config.udp))
        self.decoder = LinkDecoder()
        self.translator = DeviceTranslator(
            config.stream_prefix, max_batch=config.max_batch_frames, restart_after_s=config.restart_after_s
        )
        self.stats = dict.fromkeys(
            (
                "reconnects",
                "disconnects",
                "open_failures",
                "predictions_out",
                "predictions_dropped",
                "values_clipped",
                "outputs_bad",
                "status_frames_out",
                "translate_errors",
            ),
            0,
        )
        self.tx_seq_: dict[int, int] = {}
        self.ready = threading.Event()  # set once the sockets exist (tests, bench)
        self.ever_open_ = False
        self.failing_ = False  # open failures are logged once per outage
        self.retry_at_ = 0.0
        self.backoff_s_ = config.reconnect_min_s

    @property
    def link_stream(self) -> str:
        """Stream id under which the link's own counters are reported (``<prefix>-link``)."""
        return f"{self.config.stream_prefix}-link"

    # ------------------------------------------------------------------ counters
    def counters(self) -> dict[str, int]:
        """Link, translation and bridge counters in one flat map."""
        c = self.decoder.counters()
        c.update(self.translator.counters())
        c.update(self.stats)
        c["tx_timeouts"] = self.transport.tx_timeouts
        c["connected"] = int(self.transport.is_open)
        return c

    def status_counters(self) -> tuple[int, int, int, int]:
        """The four STATUS-frame counters: frames ok, CRC, framing (every other rejected
        frame: COBS, length, oversize, version, type, payload), seq gaps."""
        c = self.counters()
        framing = (
            c["framing_errors"] + c["oversize"] + c["wrong_version"] + c["unknown_type"] + c["bad_payload"]
        )
        return c["frames_ok"], c["crc_errors"], framing, c["seq_gaps"]

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event | None = None, duration_s: float | None = None) -> None:
        """Serve until ``stop`` is set or ``duration_s`` has passed (None: forever)."""
        stop = stop or threading.Event()
        ctx = zmq.Context.instance()
        pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
        self.pub_, self.sub_ = pub, sub
        try:
            for s in (pub, sub):
                s.setsockopt(zmq.LINGER, 500)
            pub.setsockopt(zmq.SNDHWM, 100_000)
            sub.setsockopt(zmq.SUBSCRIBE, self.config.stream_prefix.encode())
            from g2h_edge.security import client_curve

            for s in (pub, sub):
                client_curve(s, self.config.curve_keys)
            for sock, addr in ((pub, self.config.to_addr), (sub, self.config.from_addr)):
                try:
                    sock.connect(addr)
                except zmq.ZMQError as exc:
                    raise BridgeError(
                        f"cannot connect to {addr!r}: {exc}; give an endpoint such as tcp://127.0.0.1:5555",
                        reason="bad_address",
                    ) from None
            self.ready.set()
            t_end = math.inf if duration_s is None else time.monotonic() + duration_s
            next_status = next_meta = time.monotonic() + self.config.status_interval_s
            while not stop.is_set() and time.monotonic() < t_end:
                self._step(min(next_status, next_meta))
                now = time.monotonic()
                if now >= next_meta:
                    self._publish(self.translator.metas())
                    next_meta = now + self.config.meta_interval_s
                if now >= next_status:
                    self._report()
                    next_status = now + self.config.status_interval_s
        finally:
            if self.ready.is_set():
                self._publish(self.translator.end_all())
            self.transport.close()
            pub.close()
            sub.close()

    def _step(self, deadline: float) -> None:
        now = time.monotonic()
        if not self.transport.is_open and now >= self.retry_at_:
            self._open()
        poller = zmq.Poller()
        poller.register(self.sub_, zmq.POLLIN)
        if self.transport.is_open:
            poller.register(self.transport.fileno(), zmq.POLLIN | zmq.POLLERR)
        wait = max(0.0, min(deadline, self.retry_at_ if not self.transport.is_open else deadline) - now)
        events = dict(poller.poll(timeout=min(wait, 0.05) * 1000))
        if self.sub_ in events:
            self._drain_outputs()
        if self.transport.is_open:
            self._read_device()

    def _open(self) -> None:
        try:
            self.transport.open()
        except TransportLost as exc:
            self.stats["open_failures"] += 1
            if not self.failing_:
                self.log(f"bridge: {exc}; retrying (up to every {self.config.reconnect_max_s:g} s)")
            self.failing_ = True
            self.retry_at_ = time.monotonic() + self.backoff_s_
            self.backoff_s_ = min(self.backoff_s_ * 2, self.config.reconnect_max_s)
            return
        if self.ever_open_:
            self.stats["reconnects"] += 1
        self.log(f"bridge: {'re' if self.ever_open_ else ''}connected to {self.transport.name}")
        self.ever_open_ = True
        self.failing_ = False
        self.backoff_s_ = self.config.reconnect_min_s
        self.decoder.resync()

    def _lost(self, exc: Exception) -> None:
        """The device vanished: close, end its streams, retry soon."""
        self.log(f"bridge: {exc}; ending its streams and reopening")
        self.transport.close()
        self.stats["disconnects"] += 1
        self._publish(self.translator.end_all())
        self.retry_at_ = time.monotonic() + self.backoff_s_

    def _read_device(self) -> None:
        try:
            got = self.transport.read()
        except TransportLost as exc:
            self._lost(exc)
            return
        if not got:
            return
        if self.transport.datagrams:
            frames = []
            for data, addr in got:
                new = self.decoder.feed_datagram(data)
                for f in new:
                    self.transport.note_peer(f.stream, addr)
                frames += new
        else:
            frames = self.decoder.feed(got)
        if frames:
            try:
                msgs = self.translator.handle(frames)
            except G2HError as exc:  # a message wire.py refuses: count, keep running
                self.stats["translate_errors"] += 1
                self.log(f"bridge: frames dropped: {exc}")
                return
            self._publish(msgs)

    def _publish(self, messages: list) -> None:
        send = self.pub_.send_multipart
        for parts in messages:
            send(parts, copy=False)

    def _drain_outputs(self) -> None:
        for _ in range(1000):
            try:
                parts = self.sub_.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = wire.decode_output(parts)
            except WireError:
                self.stats["outputs_bad"] += 1
                continue
            if msg.get("type") == "cycle":
                self._send_prediction(msg)

    def _next_seq(self, stream: int) -> int:
        seq = self.tx_seq_.get(stream, 0)
        self.tx_seq_[stream] = (seq + 1) & 0xFFFF
        return seq

    def _send_prediction(self, msg: dict) -> None:
        n = device_stream_of(msg.get("stream", ""), self.config.stream_prefix)
        stream, frame, clipped = prediction_frame(
            msg, points=self.config.points, prefix=self.config.stream_prefix, seq=self.tx_seq_.get(n, 0)
        )
        if stream is None or not self.transport.is_open:
            self.stats["predictions_dropped"] += 1
            return
        self._next_seq(stream)
        self.stats["values_clipped"] += clipped
        try:
            self.transport.send(frame, stream)
        except TransportLost as exc:
            self._lost(exc)
            return
        self.stats["predictions_out"] += 1

    def _report(self) -> None:
        """STATUS frames to the device, source status messages to the runtime."""
        counts = self.status_counters()
        streams = sorted(self.translator.streams) or [0]
        if self.transport.is_open:
            for n in streams:
                st = self.translator.streams.get(n)
                frame = pack_status(
                    *counts, stream=n, seq=self._next_seq(n), t_us=st.t_raw if st is not None else 0
                )
                try:
                    self.transport.send(frame, n)
                except TransportLost as exc:
                    self._lost(exc)
                    break
                self.stats["status_frames_out"] += 1
        link = self.counters()
        msgs = [wire.encode_source_status(self.link_stream, self.config.source, link)]
        for st in self.translator.streams.values():
            c = dict(link)
            c.update({f"stream_{k}": v for k, v in st.counters.items()})
            msgs.append(wire.encode_source_status(st.sid, self.config.source, c))
        self._publish(msgs)


def run_bridge(config: BridgeConfig, stop: threading.Event | None = None) -> Bridge:
    """Build a Bridge and run it until ``stop`` is set (or Ctrl-C)."""
    bridge = Bridge(config)
    try:
        bridge.run(stop)
    except KeyboardInterrupt:
        pass
    return bridge
