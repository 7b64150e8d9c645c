"""The server's work between a decoded input message and a ready cycle, without sockets.

:class:`Pipeline` owns every stream's state: ``handle(msg, arrival)`` looks up, creates,
evicts and retires :class:`~g2h_edge.runtime.stream.StreamState` objects, applies metas,
frames, source counters and ``end``, and returns the cycles that became ready plus the
rejects to publish. :class:`RejectLog` is the one place where rejects are counted;
:class:`ConventionGate` is each stream's convention check.
The server (:mod:`g2h_edge.runtime.server`) only moves bytes: it decodes, calls the
pipeline, batches ready cycles into engine calls and publishes.
"""

from __future__ import annotations

import sys
import traceback
from collections import Counter

import numpy as np

from g2h_edge.errors import ConfigError, ConventionError, WireError
from g2h_edge.gait.convention import ConventionMonitor, check_convention, check_cycle_convention
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.stream import ReadyCycle, Reject, StreamState
from g2h_edge.wire import MAX_SOURCES_PER_STREAM, End, Frames, Meta, SourceStatus, check_stream_id

__all__ = ["Pipeline", "RejectLog", "ConventionGate"]


class RejectLog:
    """Counts every reject (by reason, per live stream, unattached) and queues it for
    publication. ``add`` is the only way a reject enters the system."""

    def __init__(self):
        self.by_reason: Counter = Counter()  # every reject since start
        self.unattached: Counter = Counter()  # rejects of no live stream
        self.by_stream: dict[str, Counter] = {}  # live streams' rejects
        self.pending_: list[Reject] = []

    def add(self, rej: Reject, attached: bool = True) -> None:
        """Count ``rej`` (against its live stream when ``attached``) and queue it."""
        self.count(rej.stream, rej.reason, attached)
        self.pending_.append(rej)

    def count(
        self, stream: str | None, reason: str, attached: bool = True, retired: dict | None = None
    ) -> None:
        """Count a reject that its caller publishes itself (``retired``: the reject counts
        of a stream retired meanwhile, reported in its retired entry)."""
        self.by_reason[reason] += 1
        if retired is not None:
            retired[reason] = retired.get(reason, 0) + 1
        elif attached and stream is not None:
            self.by_stream.setdefault(stream, Counter())[reason] += 1
        else:
            self.unattached[reason] += 1

    def take(self) -> list[Reject]:
        """The rejects queued since the last call (to publish)."""
        out, self.pending_ = self.pending_, []
        return out

    def of_stream(self, stream: str) -> dict:
        return dict(self.by_stream.get(stream, ()))

    def forget(self, stream: str) -> dict:
        """Stop tracking a retired stream; returns its counts."""
        return dict(self.by_stream.pop(stream, ()))


class ConventionGate:
    """The convention check of one stream (radians declared as degrees, gait2354 knee sign).

    The first ``window_s`` seconds of frames (then every ``window_s`` until decided) are
    judged by an incremental monitor; every cycle is checked too. A stream caught once stays
    blocked: each later cycle is refused with the same error. ``enabled=False``: everything
    passes.
    """

    def __init__(self, window_s: float, enabled: bool = True):
        self.window_s = window_s
        self.enabled = enabled
        self.monitor_ = ConventionMonitor() if enabled else None
        self.ok_ = not enabled  # decided "ok": windows are no longer judged
        self.blocked_: ConventionError | None = None
        self.next_t_ = np.inf  # next time the window is judged
        self.done_t_ = -np.inf  # frames up to here were judged already

    def start(self, t_first: float) -> None:
        """The stream's first frame time: the first window ends ``window_s`` later."""
        self.next_t_ = t_first + self.window_s

    def due(self, t_last: float) -> bool:
        """Whether the frames up to ``t_last`` complete a window to judge."""
        return not self.ok_ and self.blocked_ is None and t_last >= self.next_t_

    def judge_window(self, t: np.ndarray, q: np.ndarray, t_last: float) -> ConventionError | None:
        """Judge the buffered frames ``t``, ``q`` not judged yet (once per window: it is
        not free); returns the error when this window blocks the stream."""
        new = q[t > self.done_t_]
        self.done_t_ = t_last
        self.next_t_ = t_last + self.window_s
        try:
            verdict = self.monitor_.update(new)
        except ConventionError as exc:
            self.blocked_ = exc
            return exc
        if verdict == "ok":
            self.ok_ = True
            self.monitor_ = None
        return None

    def check_cycle(self, x: np.ndarray) -> ConventionError | None:
        """The error that refuses the cycle ``x`` (180, 10) deg, or None to accept it."""
        if self.blocked_ is not None:
            return self.blocked_
        if not self.enabled:
            return None
        try:
            check_cycle_convention(x)
        except ConventionError as exc:
            return exc
        return None

    def explain(self, q: np.ndarray) -> ConventionError | None:
        """For implausible angles ``q`` (n, 10): the wrong convention they show, if any."""
        if not self.enabled:
            return None
        try:
            check_convention(q)
        except ConventionError as exc:
            return exc
        return None

    @property
    def state(self) -> str:
        """``ok``, ``checking`` or ``blocked:<reason>`` (status)."""
        if self.blocked_ is not None:
            return "blocked:" + self.blocked_.reason
        return "ok" if self.ok_ else "checking"


class Pipeline:
    """Per-stream state of every stream, driven by decoded input messages (no sockets).

    ``handle(msg, arrival)`` -> ``(ready_cycles, rejects)``; ``refuse`` for messages that
    did not decode; ``expire(now)`` for silent streams; ``reject_cycle`` for cycles the
    engines could not serve; ``status(now)`` for the counters of the status message.
    """

    def __init__(self, config: ServerConfig):
        if not isinstance(config, ServerConfig):
            raise ConfigError(f"Pipeline needs a ServerConfig, got {type(config).__name__}")
        self.config = config
        self.log = RejectLog()
        self.streams_: dict[str, StreamState] = {}
        self.totals_ = Counter()  # counters of retired streams
        self.retired_: dict[str, dict] = {}  # ended/expired since the last status
        self.sources_: dict[str, dict] = {}  # source counters, also of unknown streams

    # ------------------------------------------------------------------ inputs
    def handle(self, msg, arrival: float) -> tuple[list[ReadyCycle], list[Reject]]:
        """Apply one decoded input message; returns (ready cycles, rejects to publish)."""
        ready: list[ReadyCycle] = []
        try:
            ready = self._apply(msg, arrival)
        except Exception as exc:  # a bug must not take down the other streams
            traceback.print_exc(file=sys.stderr)
            self.log.add(
                Reject(msg.stream, "internal_error", f"{type(exc).__name__}: {exc}"),
                attached=msg.stream in self.streams_,
            )
        return ready, self.log.take()

    def _apply(self, msg, arrival: float) -> list[ReadyCycle]:
        st = self.streams_.get(msg.stream)
        if isinstance(msg, Frames):
            ready: list[ReadyCycle] = []
            if st is not None and st.new_session(msg):
                ready = st.finish(arrival)  # what the old session can still close
                meta = st.next_meta
                self._retire(st, "restarted", arrival)
                st = self._admit(msg.stream, meta, arrival, ready)
            elif st is None:
                if self.config.default_rate_hz is None:
                    self.log.add(
                        Reject(
                            msg.stream,
                            "no_meta",
                            "frames before any meta for "
                            "this stream: send a meta first (or start the server"
                            " with --rate-hz)",
                            seq=msg.seq,
                        ),
                        attached=False,
                    )
                    return []
                st = self._admit(msg.stream, None, arrival, ready)
            return ready + st.on_frames(msg, arrival) if st is not None else ready
        if isinstance(msg, Meta):
            ready: list[ReadyCycle] = []
            if st is None:
                self._admit(msg.stream, msg, arrival, ready)
            elif changes := st.meta_changes(msg):
                st.hold_meta(msg, arrival)
                self.log.add(
                    Reject(
                        msg.stream,
                        "meta_changed",
                        "meta refused, it changes " + ", ".join(changes) + ": a stream keeps its meta; send "
                        "'end' first (or restart the publisher: meta, then seq "
                        "from 0) to change it",
                    )
                )
            else:
                st.set_meta(msg, arrival)
            return ready
        if isinstance(msg, End):
            if st is None:
                return []
            ready = st.finish(arrival)
            self._retire(st, "ended", arrival)
            return ready
        if isinstance(msg, SourceStatus):
            self._source_status(msg, st, arrival)
            return []
        raise TypeError(f"not an input message: {type(msg).__name__}")

    def _source_status(self, msg: SourceStatus, st: StreamState | None, arrival: float):
        known = self.sources_.get(msg.stream)
        if known is None and st is None and len(self.sources_) >= self.config.max_streams:
            return  # counters of unknown streams: bounded, reported once
        known = self.sources_.setdefault(msg.stream, {})
        if msg.source not in known and len(known) >= MAX_SOURCES_PER_STREAM:
            self.log.add(
                Reject(
                    msg.stream,
                    "too_many_sources",
                    f"source {msg.source!r} "
                    f"refused: stream {msg.stream!r} already has "
                    f"{MAX_SOURCES_PER_STREAM} sources (MAX_SOURCES_PER_STREAM)",
                ),
                attached=st is not None,
            )
            return
        known[msg.source] = dict(msg.counters)
        if st is not None:
            st.set_source_status(msg.source, msg.counters, arrival)

    def refuse(self, parts, exc: WireError) -> list[Reject]:
        """An input that did not decode: reject it (against its stream when the topic names
        a live one); returns the rejects to publish."""
        try:
            topic = bytes(parts[0]).decode("utf-8") if len(parts) >= 1 else None
            stream = check_stream_id(topic)
        except Exception:
            stream = None
        self.log.add(Reject(stream, exc.reason, str(exc)), attached=stream in self.streams_)
        return self.log.take()

    def _admit(
        self, stream: str, meta: Meta | None, now: float, ready: list[ReadyCycle]
    ) -> StreamState | None:
        """A new stream's state; with max_streams held, the stream idle longest (at least
        evict_idle_s) makes room (its last cycles go to ``ready``), else None (refused)."""
        cfg = self.config
        if len(self.streams_) >= cfg.max_streams:
            idlest = min(self.streams_.values(), key=lambda s: s.last_seen_)
            idle_s = now - idlest.last_seen_
            if idle_s < cfg.evict_idle_s:
                self.log.add(
                    Reject(
                        stream,
                        "too_many_streams",
                        f"the server holds "
                        f"{cfg.max_streams} streams (max_streams), all active "
                        f"within {cfg.evict_idle_s:g} s; end or pause other "
                        "streams",
                    ),
                    attached=False,
                )
                return None
            ready += idlest.finish(now)
            self.log.add(
                Reject(
                    idlest.stream,
                    "stream_evicted",
                    f"silent for {idle_s:.1f} s "
                    f"while the server held max_streams ({cfg.max_streams}): "
                    f"state dropped to admit {stream!r}; send again to resume "
                    "as a new stream",
                )
            )
            self._retire(idlest, "evicted", now)
        st = StreamState(
            stream,
            meta,
            cfg,
            now,
            self.log.add,
            ConventionGate(cfg.convention_window_s, cfg.check_convention),
        )
        self.streams_[stream] = st
        return st

    def _retire(self, st: StreamState, why: str, now: float) -> None:
        snap = st.snapshot(now)
        snap["rejects"] = self.log.forget(st.stream)
        snap["state"] = why
        self.retired_[st.stream] = snap
        self.totals_.update(st.counters)
        self.totals_["streams_" + why] += 1
        del self.streams_[st.stream]

    def expire(self, now: float) -> tuple[list[ReadyCycle], list[Reject]]:
        """Finish and forget every stream silent for ``stream_timeout_s``."""
        timeout = self.config.stream_timeout_s
        ready: list[ReadyCycle] = []
        for st in [s for s in self.streams_.values() if now - s.last_seen_ > timeout]:
            ready += st.finish(now)
            self.log.add(
                Reject(
                    st.stream,
                    "stream_expired",
                    f"no message for {timeout:g} s: "
                    "stream state dropped (send 'end' to close a stream cleanly)",
                )
            )
            self._retire(st, "expired", now)
        return ready, self.log.take()

    # ------------------------------------------------------------------ outputs
    def reject_cycle(self, r: ReadyCycle, reason: str, detail: str) -> Reject:
        """A ready cycle the engines could not serve (counted like every reject)."""
        rej = Reject(r.stream, reason, detail, side=r.side, cycle=r.index, t_start=r.t_start, t_end=r.t_end)
        retired = self.retired_.get(r.stream)
        if r.stream not in self.streams_ and retired is not None:
            # the stream ended while its last cycles were in flight: its retired counts
            self.log.count(r.stream, reason, retired=retired["rejects"])
        else:
            self.log.count(r.stream, reason, attached=r.stream in self.streams_)
        return rej

    def status(self, now: float) -> dict:
        """Stream-related parts of the status map: streams, retired, totals (counters),
        rejects, unattached_rejects, sources."""
        streams = {}
        totals = Counter(self.totals_)
        for sid, st in self.streams_.items():
            snap = st.snapshot(now)
            snap["rejects"] = self.log.of_stream(sid)
            streams[sid] = snap
            totals.update(st.counters)
        return {
            "streams": streams,
            "retired": dict(self.retired_),
            "totals": dict(totals, live_streams=len(self.streams_)),
            "rejects": dict(self.log.by_reason),
            "unattached_rejects": dict(self.log.unattached),
            "sources": {k: dict(v) for k, v in self.sources_.items()},
        }

    def status_sent(self) -> None:
        """After a status went out: retired streams and source counters of streams that are
        gone were reported once; forget them."""
        self.retired_ = {}
        for sid in [k for k in self.sources_ if k not in self.streams_]:
            del self.sources_[sid]
