"""The streaming server: ZeroMQ SUB in, per-stream state, batched inference, PUB out.

One thread, one loop: wait for input, drain every queued message without blocking (up to
``max_drain``), hand each to its stream's state, then run all cycles that became ready in
one engine call per engine (micro-batching across streams) and publish. Status once per
``status_interval_s``; silent streams expire. Nothing a publisher sends can stop the loop:
every refused input or cycle is published as a ``reject`` and counted.
"""
from __future__ import annotations

import gc
import signal
import sys
import threading
import time
import traceback
from collections import Counter

import numpy as np
import zmq

from g2h_edge.errors import ConfigError, EngineError, WireError
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.engines import check_engine, latency_summary, load_engines
from g2h_edge.runtime.record import RecordWriter
from g2h_edge.runtime.stream import Reject, StreamState
from g2h_edge.schema import N_IN, T
from g2h_edge.wire import (
    End,
    Frames,
    Meta,
    SourceStatus,
    check_stream_id,
    decode_input,
    encode_cycle,
    encode_reject,
    encode_status,
)

__all__ = ["Server", "serve"]


class Server:
    """Protocol-v1 server. ``start()`` loads engines and binds; ``run()`` loops until
    ``stop()``; ``close()`` releases everything. Constructing it does no I/O."""

    def __init__(self, config: ServerConfig, *, engines: list | None = None, on_status=None):
        if not isinstance(config, ServerConfig):
            raise ConfigError(f"Server needs a ServerConfig, got {type(config).__name__}")
        self.config = config
        self.on_status = on_status          # called with each status map (logging)
        self.engines = engines
        self.owns_engines_ = engines is None     # close only the engines loaded here
        self.streams_: dict[str, StreamState] = {}
        self.ready_: list = []
        self.rejects_: list = []
        self.stop_event = threading.Event()
        self.started = threading.Event()
        self.endpoints: dict[str, str] = {}
        self.totals_ = Counter()            # counters of retired streams
        self.reject_totals_ = Counter()     # every reject by reason (all streams)
        self.unattached_ = Counter()        # rejects that belong to no live stream
        self.sources_: dict[str, dict] = {}
        self.retired_: dict[str, dict] = {}  # ended/expired since the last status
        self.latencies_: list[float] = []
        self.batches_ = 0
        self.batched_cycles_ = 0
        self.published_ = 0
        self.record_errors_ = 0
        self.loop_errors_ = 0
        self.record_: RecordWriter | None = None
        self.last_infer_ = time.perf_counter()   # last engine call (keep_warm_ms)
        self.warm_calls_ = 0
        self.warm_x_ = np.zeros((1, T, N_IN), np.float32)   # (1, 180, 10) dummy cycle
        self.ctx_ = self.sub_ = self.pub_ = None
        self.t0_ = time.perf_counter()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Server:
        cfg = self.config
        if self.engines is None:
            self.engines = load_engines(cfg)
        else:
            for eng in self.engines:
                check_engine(eng, getattr(eng, "name", "?"), cfg.allow_synthetic)
        for eng in self.engines:
            # every batch size up to max_batch in powers of two (a compiled torch engine
            # compiles them now, not when the first large batch arrives)
            eng.warmup(batch_sizes=_warm_sizes(cfg.max_batch))
        self.ctx_ = zmq.Context()
        self.sub_ = self.ctx_.socket(zmq.SUB)
        self.sub_.setsockopt(zmq.RCVHWM, cfg.rcv_hwm)
        self.sub_.setsockopt(zmq.RCVBUF, 4 * 1024 * 1024)
        self.sub_.setsockopt(zmq.SUBSCRIBE, b"")
        self.pub_ = self.ctx_.socket(zmq.PUB)
        self.pub_.setsockopt(zmq.SNDHWM, 1_000_000)
        self.pub_.setsockopt(zmq.LINGER, 2000)
        try:
            if cfg.listen:
                self.sub_.bind(cfg.listen)
                self.endpoints["listen"] = self.sub_.getsockopt_string(zmq.LAST_ENDPOINT)
            for addr in cfg.connect:
                self.sub_.connect(addr)
            self.pub_.bind(cfg.publish)
            self.endpoints["publish"] = self.pub_.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self.close()
            raise ConfigError(f"cannot bind/connect ({exc}); is another server using the "
                              f"address? listen={cfg.listen} publish={cfg.publish}",
                              reason="address_in_use") from None
        if cfg.record_path:
            self.record_ = RecordWriter(cfg.record_path).open()
        # long-lived objects (engines, modules) leave the collector's generations: fewer and
        # shorter GC pauses in the loop (they show up in the p99 latency otherwise)
        gc.collect()
        gc.freeze()
        self.t0_ = time.perf_counter()
        self.started.set()
        return self

    def stop(self) -> None:
        """Ask the loop to finish (thread- and signal-safe)."""
        self.stop_event.set()

    def close(self) -> None:
        if self.record_ is not None:
            self.record_.close()
            self.record_ = None
        for sock in (self.sub_, self.pub_):
            if sock is not None:
                sock.close()
        self.sub_ = self.pub_ = None
        if self.ctx_ is not None:
            self.ctx_.term()
            self.ctx_ = None
        for eng in (self.engines or []) if self.owns_engines_ else []:
            try:
                eng.close()
            except Exception:  # closing must not mask the real outcome
                pass

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Serve until stop(); then finish queued inputs and in-flight cycles."""
        cfg = self.config
        poller = zmq.Poller()
        poller.register(self.sub_, zmq.POLLIN)
        next_status = time.perf_counter() + cfg.status_interval_s
        warm_s = None if cfg.keep_warm_ms is None else cfg.keep_warm_ms / 1e3
        self.last_infer_ = time.perf_counter()
        while not self.stop_event.is_set():
            wake = next_status if warm_s is None else min(next_status,
                                                          self.last_infer_ + warm_s)
            wait = 0.0 if cfg.busy_poll else max(0.0, min(wake - time.perf_counter(), 0.1))
            if poller.poll(int(wait * 1000) or (1 if wait > 0 else 0)):
                self._safe(self._drain)
            elif warm_s is not None and time.perf_counter() - self.last_infer_ >= warm_s:
                self._safe(self._keep_warm)
            now = time.perf_counter()
            if now >= next_status:
                self._safe(self._expire, now)
                self._safe(self._publish_status, now)
                next_status = max(next_status + cfg.status_interval_s, now)
        # shutdown: what is already queued still counts, in-flight cycles are published
        # (bounded: a publisher that keeps sending must not keep the server alive)
        deadline = time.perf_counter() + cfg.shutdown_drain_s
        while self._safe(self._drain) and time.perf_counter() < deadline:
            pass
        self._safe(self._publish_status, time.perf_counter())

    def _keep_warm(self) -> None:
        """Idle: one dummy B=1 inference per engine (output discarded), so the next real
        cycle does not pay the cold-cache cost (config.keep_warm_ms)."""
        x = self.warm_x_
        try:
            for eng in self.engines:
                eng.infer(x)
            self.warm_calls_ += 1
        finally:  # a failing engine is retried once per interval, not in a tight loop
            self.last_infer_ = time.perf_counter()

    def _safe(self, fn, *args):
        """Run one loop step; a bug is printed and counted, the loop goes on."""
        try:
            return fn(*args)
        except Exception:
            self.loop_errors_ += 1
            traceback.print_exc(file=sys.stderr)
            return 0

    def _drain(self) -> int:
        """Handle every queued input (at most max_drain), then infer + publish. Returns the
        number of messages handled."""
        sub, n = self.sub_, 0
        limit = self.config.max_drain
        while n < limit:
            try:
                parts = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            self._handle(parts, time.perf_counter())
        self._flush()
        return n

    def _handle(self, parts: list, arrival: float) -> None:
        # thread CPU time at arrival (bench): the processing cost without the waiting
        cpu0 = time.thread_time() if self.config.cpu_timing else None
        try:
            msg = decode_input(parts)
        except WireError as exc:
            self._wire_reject(parts, exc)
            return
        except Exception as exc:  # decode_input raises only WireError; belt and braces
            self._wire_reject(parts, WireError(f"{type(exc).__name__}: {exc}",
                                               reason="internal_error"))
            return
        st = self.streams_.get(msg.stream)
        try:
            if isinstance(msg, Frames):
                if st is None:
                    if self.config.default_rate_hz is None:
                        self._add_reject(Reject(msg.stream, "no_meta", "frames before any "
                                         "meta for this stream: send a meta first (or start "
                                         "the server with --rate-hz)", {"seq": msg.seq}), None)
                        return
                    st = self._new_stream(msg.stream, None, arrival)
                    if st is None:
                        return
                st.last_seen_ = arrival
                n_ready = len(self.ready_)
                st.on_frames(msg, arrival, self.ready_, self.rejects_)
                if cpu0 is not None:
                    for r in self.ready_[n_ready:]:
                        r.arrival_cpu = cpu0
            elif isinstance(msg, Meta):
                if st is None:
                    st = self._new_stream(msg.stream, msg, arrival)
                    if st is None:
                        return
                else:
                    st.set_meta(msg)
                st.last_seen_ = arrival
            elif isinstance(msg, End):
                if st is not None:
                    st.finish(arrival, self.ready_, self.rejects_)
                    self._retire(st, "ended")
            elif isinstance(msg, SourceStatus):
                if st is not None or msg.stream in self.sources_ or \
                        len(self.sources_) < self.config.max_streams:
                    self.sources_.setdefault(msg.stream, {})[msg.source] = dict(msg.counters)
                if st is not None:
                    st.source_status_[msg.source] = dict(msg.counters)
                    st.last_seen_ = arrival
        except Exception as exc:  # a bug must not take down the other streams
            traceback.print_exc(file=sys.stderr)
            self.rejects_.append(Reject(msg.stream, "internal_error",
                                        f"{type(exc).__name__}: {exc}", {}))
            if st is not None:
                st.count_reject("internal_error")

    def _new_stream(self, stream: str, meta, now: float) -> StreamState | None:
        if len(self.streams_) >= self.config.max_streams:
            self._add_reject(Reject(stream, "too_many_streams", f"the server already holds "
                                    f"{self.config.max_streams} streams (max_streams); end "
                                    "or let other streams expire", {}), None)
            return None
        st = StreamState(stream, meta, self.config, now)
        self.streams_[stream] = st
        self.retired_.pop(stream, None)
        return st

    def _retire(self, st: StreamState, why: str) -> None:
        self._flush()
        snap = st.snapshot(time.perf_counter())
        snap["state"] = why
        self.retired_[st.stream] = snap
        for k, v in st.counters.items():
            self.totals_[k] += v
        self.totals_["streams_" + why] += 1
        del self.streams_[st.stream]

    def _wire_reject(self, parts, exc: WireError) -> None:
        stream = None
        try:
            topic = bytes(parts[0]).decode("utf-8") if len(parts) >= 1 else None
            stream = check_stream_id(topic)
        except Exception:
            stream = None
        st = self.streams_.get(stream) if stream else None
        if st is not None:
            st.count_reject(exc.reason)
        self._add_reject(Reject(stream, exc.reason, str(exc), {}), st)

    def _add_reject(self, rej: Reject, st) -> None:
        if st is None:
            self.unattached_[rej.reason] += 1
        self.rejects_.append(rej)

    def _expire(self, now: float) -> None:
        timeout = self.config.stream_timeout_s
        for st in [s for s in self.streams_.values() if now - s.last_seen_ > timeout]:
            st.finish(now, self.ready_, self.rejects_)
            st._reject(self.rejects_, "stream_expired", f"no message for {timeout:g} s: "
                       "stream state dropped (send 'end' to close a stream cleanly)")
            self._retire(st, "expired")

    # ------------------------------------------------------------------ outputs
    def _send(self, parts: list) -> None:
        self.pub_.send_multipart(parts, copy=True)
        self.published_ += 1
        if self.record_ is not None:
            try:
                self.record_.write(parts)
            except OSError as exc:  # a full disk must not stop the predictions
                self.record_errors_ += 1
                if self.record_errors_ == 1:
                    print(f"g2h-edge serve: cannot write the record file "
                          f"{self.config.record_path}: {exc} (counted as record_errors)",
                          file=sys.stderr)

    def _flush(self) -> None:
        """Publish queued rejects, infer all ready cycles in batches, publish them."""
        if self.rejects_:
            rejects, self.rejects_ = self.rejects_, []
            for r in rejects:
                self.reject_totals_[r.reason] += 1
                self._send(encode_reject(r.stream, r.reason, r.detail, **r.extra))
        if not self.ready_:
            return
        ready, self.ready_ = self.ready_, []
        step = self.config.max_batch
        for i in range(0, len(ready), step):
            self._infer_publish(ready[i:i + step])

    def _infer_publish(self, batch: list) -> None:
        x = np.stack([r.x for r in batch])                 # (B, 180, 10) float32 deg
        self.last_infer_ = time.perf_counter()
        self.batches_ += 1
        self.batched_cycles_ += len(batch)
        for eng in self.engines:
            try:
                y = eng.infer(x)                           # (B, 180, K) per kg
                if y.shape[:2] != (len(batch), T) or y.shape[2] != len(eng.out_cols):
                    raise EngineError(f"engine returned shape {y.shape}")
            except Exception as exc:  # one failing engine call rejects its cycles only
                for r in batch:
                    self._cycle_reject(r, "engine_error", f"{eng.name}: {exc}")
                continue
            for r, yi in zip(batch, y):
                lat = (time.perf_counter() - r.arrival) * 1e3
                cpu = None if r.arrival_cpu is None else (time.thread_time() -
                                                          r.arrival_cpu) * 1e3
                try:
                    parts = encode_cycle(
                        stream=r.stream, side=r.side, cycle=r.index, t_start=r.t_start,
                        t_end=r.t_end, model=eng.name, sha256=eng.sha256,
                        backend=eng.backend, outputs=eng.out_cols, unit=eng.unit, y=yi,
                        quality=r.quality, latency_ms=lat, synthetic=bool(eng.synthetic),
                        body_mass_kg=r.body_mass_kg, cpu_ms=cpu)
                except Exception as exc:  # never lose a cycle silently
                    self._cycle_reject(r, "internal_error", f"encoding failed: {exc}")
                    continue
                self._send(parts)
                self.latencies_.append(lat)
        for r in batch:
            st = self.streams_.get(r.stream)
            if st is not None:
                st.counters["cycles"] += 1
            else:
                self.totals_["cycles"] += 1

    def _cycle_reject(self, r, reason: str, detail: str) -> None:
        st = self.streams_.get(r.stream)
        if st is not None:
            st.count_reject(reason)
        self.reject_totals_[reason] += 1
        self._send(encode_reject(r.stream, reason, detail, side=r.side, cycle=r.index,
                                 t_start=r.t_start, t_end=r.t_end))

    def status(self, now: float | None = None) -> dict:
        """The current status map (what the next status message will carry)."""
        now = time.perf_counter() if now is None else now
        streams = {sid: st.snapshot(now) for sid, st in self.streams_.items()}
        totals = Counter(self.totals_)
        for st in self.streams_.values():
            totals.update(st.counters)
        lat = np.asarray(self.latencies_, dtype=np.float64)
        return {
            "time": time.time(), "uptime_s": round(now - self.t0_, 3),
            "streams": streams, "retired": dict(self.retired_),
            "totals": dict(totals, live_streams=len(self.streams_),
                           published=self.published_, batches=self.batches_,
                           record_errors=self.record_errors_,
                           loop_errors=self.loop_errors_,
                           batched_cycles=self.batched_cycles_),
            "rejects": dict(self.reject_totals_), "unattached_rejects": dict(self.unattached_),
            "sources": {k: dict(v) for k, v in self.sources_.items()},
            "latency_ms": latency_summary(lat),
            "engines": [{"name": e.name, "sha256": e.sha256, "backend": e.backend,
                         "task": e.task, "unit": e.unit, "synthetic": bool(e.synthetic)}
                        for e in self.engines or []],
        }

    def _publish_status(self, now: float) -> None:
        status = self.status(now)
        self._send(encode_status(status))
        if self.on_status is not None:
            self.on_status(status)
        self.retired_ = {}
        self.latencies_ = []
        # source counters of streams that are gone were reported once: forget them
        for sid in [k for k in self.sources_ if k not in self.streams_]:
            del self.sources_[sid]


def serve(config: ServerConfig, *, engines: list | None = None, on_ready=None,
          on_status=None, install_signals: bool = True) -> int:
    """Run a server until SIGINT/SIGTERM (or ``Server.stop``); returns the exit status 0.

    On a signal: stop taking new work, handle what is queued, publish in-flight cycles,
    flush and close the record file.
    """
    server = Server(config, engines=engines, on_status=on_status)
    server.start()
    previous = {}

    def on_signal(signum, frame):
        if server.stop_event.is_set():      # a second Ctrl-C: stop now, without draining
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


def _warm_sizes(max_batch: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to min(max_batch, 64), and max_batch itself."""
    sizes = {1 << i for i in range(7) if 1 << i <= max_batch}
    return tuple(sorted(sizes | {max_batch}))
