"""The streaming server: ZeroMQ SUB in, per-stream state, batched inference, PUB out.

One thread, one loop: wait for input, drain every queued message without blocking (up to
``max_drain``), hand each to its stream's state, then run all cycles that became ready in
one engine call per engine (micro-batching across streams) and publish. Status once per
``status_interval_s``; silent streams expire. Nothing a publisher sends can stop the loop:
every refused input or cycle is published as a ``reject`` and counted.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import traceback

import numpy as np
import zmq

from g2h_edge.engines.ensemble import infer_with_spread
from g2h_edge.errors import ConfigError, EngineError, WireError
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.engines import check_engine, latency_summary, load_engines, warm_sizes
from g2h_edge.runtime.messages import cycle_message
from g2h_edge.runtime.pipeline import Pipeline
from g2h_edge.runtime.record import RecordWriter
from g2h_edge.runtime.scale import in_shard
from g2h_edge.runtime.sockets import open_sockets
from g2h_edge.runtime.stream import ReadyCycle, Reject
from g2h_edge.schema import N_IN, T
from g2h_edge.wire import (
    decode_input,
    encode_reject,
    encode_status,
)

__all__ = ["Server"]


class Server:
    """Protocol-v1 server. ``start()`` loads engines and binds; ``run()`` loops until
    ``stop()``; ``close()`` releases everything. Constructing it does no I/O.

    Sockets, polling, batching, engine calls and publishing live here; everything a message
    does to stream state happens in :class:`~g2h_edge.runtime.pipeline.Pipeline`.
    """

    def __init__(self, config: ServerConfig, *, engines: list | None = None, on_status=None):
        if not isinstance(config, ServerConfig):
            raise ConfigError(f"Server needs a ServerConfig, got {type(config).__name__}")
        self.config = config
        self.on_status = on_status  # called with each status map (logging)
        self.engines = engines
        self.owns_engines_ = engines is None  # close only the engines loaded here
        self.pipeline = Pipeline(config)
        self.ready_: list[ReadyCycle] = []  # ready cycles of this drain (batched together)
        self.rejects_: list[Reject] = []  # rejects to publish
        self.stop_event = threading.Event()
        self.started = threading.Event()
        self.endpoints: dict[str, str] = {}
        self.latencies_: list[float] = []
        self.batches_ = 0
        self.batched_cycles_ = 0
        self.published_ = 0
        self.record_errors_ = 0
        self.loop_errors_ = 0
        self.shard_skipped_ = 0  # messages of other shards' streams (--shard)
        self.drain_cpu_: float | None = None  # thread_time() at the current drain's start (cpu_timing)
        self.record_: RecordWriter | None = None
        self.last_infer_ = time.perf_counter()  # last engine call (keep_warm_ms)
        self.warm_calls_ = 0
        self.warm_x_ = np.zeros((1, T, N_IN), np.float32)  # (1, 180, 10) dummy cycle
        self.ctx_ = self.sub_ = self.pub_ = self.auth_ = None
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
            eng.warmup(batch_sizes=warm_sizes(cfg.max_batch))
        self.ctx_ = zmq.Context()
        try:
            self.sub_, self.pub_, self.auth_ = open_sockets(self.ctx_, cfg)
        except zmq.ZMQError as exc:
            self.close()
            raise ConfigError(
                f"cannot bind/connect ({exc}); is another server using the "
                f"address? listen={cfg.listen} publish={cfg.publish}",
                reason="address_in_use",
            ) from None
        if cfg.listen:
            self.endpoints["listen"] = self.sub_.getsockopt_string(zmq.LAST_ENDPOINT)
        self.endpoints["publish"] = self.pub_.getsockopt_string(zmq.LAST_ENDPOINT)
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
        if self.auth_ is not None:
            self.auth_.stop()
            self.auth_ = None
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
            wake = next_status if warm_s is None else min(next_status, self.last_infer_ + warm_s)
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
        # thread CPU time (bench only): read once per drain, at its start, and once per
        # engine batch. Each read is a system call (no vDSO for thread clocks); read per
        # message and per cycle they took ~15 % of the server thread under load (py-spy,
        # bench e2e, 250 streams). cpu_ms therefore spans from the start of the drain that
        # read the cycle's closing message to the end of its batch's inference
        # (docs/protocol.md)
        self.drain_cpu_ = time.thread_time() if self.config.cpu_timing else None
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
        cpu0 = self.drain_cpu_
        if self.config.shard is not None and not in_shard(parts, self.config.shard):
            self.shard_skipped_ += 1  # another shard's stream (runtime/scale.py)
            return
        try:
            msg = decode_input(parts)
        except WireError as exc:  # (whatever the bytes, decode_input raises only that)
            self.rejects_ += self.pipeline.refuse(parts, exc)
            return
        ready, rejects = self.pipeline.handle(msg, arrival)
        if rejects:
            self.rejects_ += rejects
        if ready:
            if cpu0 is not None:
                for r in ready:
                    r.arrival_cpu = cpu0
            self.ready_ += ready

    def _expire(self, now: float) -> None:
        ready, rejects = self.pipeline.expire(now)
        self.ready_ += ready
        self.rejects_ += rejects
        self._flush()

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
                    print(
                        f"g2h-edge serve: cannot write the record file "
                        f"{self.config.record_path}: {exc} (counted as record_errors)",
                        file=sys.stderr,
                    )

    def _flush(self) -> None:
        """Publish queued rejects, infer all ready cycles in batches, publish them."""
        if self.rejects_:
            rejects, self.rejects_ = self.rejects_, []
            for r in rejects:
                self._send(encode_reject(r.stream, r.reason, r.detail, **r.context()))
        if not self.ready_:
            return
        ready, self.ready_ = self.ready_, []
        step = self.config.max_batch
        for i in range(0, len(ready), step):
            self._infer_publish(ready[i : i + step])

    def _infer_publish(self, batch: list) -> None:
        x = np.stack([r.x for r in batch])  # (B, 180, 10) float32 deg
        self.last_infer_ = time.perf_counter()
        self.batches_ += 1
        self.batched_cycles_ += len(batch)
        for eng in self.engines:
            try:
                y, y_sd = infer_with_spread(eng, x)  # (B, 180, K) per kg; sd or None
                if y.shape[:2] != (len(batch), T) or y.shape[2] != len(eng.out_cols):
                    raise EngineError(f"engine returned shape {y.shape}")
            except Exception as exc:  # one failing engine call rejects its cycles only
                for r in batch:
                    self._cycle_reject(r, "engine_error", f"{eng.name}: {exc}")
                continue
            # thread CPU time (bench only), read once per batch after its inference
            cpu_now = time.thread_time() if self.config.cpu_timing else None
            for j, (r, yi) in enumerate(zip(batch, y)):
                sd = None if y_sd is None else y_sd[j]
                lat = (time.perf_counter() - r.arrival) * 1e3
                cpu = None if r.arrival_cpu is None or cpu_now is None else (cpu_now - r.arrival_cpu) * 1e3
                try:
                    parts = cycle_message(r, eng, yi, lat, cpu, y_sd=sd)
                except Exception as exc:  # never lose a cycle silently
                    self._cycle_reject(r, "internal_error", f"encoding failed: {exc}")
                    continue
                self._send(parts)
                self.latencies_.append(lat)

    def _cycle_reject(self, r: ReadyCycle, reason: str, detail: str) -> None:
        rej = self.pipeline.reject_cycle(r, reason, detail)
        self._send(encode_reject(rej.stream, rej.reason, rej.detail, **rej.context()))

    def status(self, now: float | None = None) -> dict:
        """The current status map (what the next status message will carry)."""
        now = time.perf_counter() if now is None else now
        part = self.pipeline.status(now)
        part["totals"].update(
            published=self.published_,
            batches=self.batches_,
            record_errors=self.record_errors_,
            loop_errors=self.loop_errors_,
            batched_cycles=self.batched_cycles_,
            shard_skipped=self.shard_skipped_,
        )
        lat = np.asarray(self.latencies_, dtype=np.float64)
        return {
            "time": time.time(),
            "uptime_s": round(now - self.t0_, 3),
            **part,
            "latency_ms": latency_summary(lat),
            "engines": [
                {
                    "name": e.name,
                    "sha256": e.sha256,
                    "backend": e.backend,
                    "task": e.task,
                    "unit": e.unit,
                    "synthetic": bool(e.synthetic),
                }
                for e in self.engines or []
            ],
        }

    def _publish_status(self, now: float) -> None:
        status = self.status(now)
        try:
            self._send(encode_status(status))
            if self.on_status is not None:
                self.on_status(status)
        finally:  # reported or not, a failure must not make the retired pile up
            self.latencies_ = []
            self.pipeline.status_sent()
