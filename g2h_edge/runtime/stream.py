"""Per-stream state of the server: seq/time checks, ring buffer, IC source, convention gate.

A :class:`StreamState` turns the validated input messages of one stream into ready cycles
(:class:`ReadyCycle`); everything it refuses goes to the ``reject`` callable it was given
(the pipeline's reject log) as a :class:`Reject`. It does no I/O and never touches another
object's state; :class:`g2h_edge.runtime.pipeline.Pipeline` owns the streams.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from g2h_edge.errors import G2HError, GaitError
from g2h_edge.gait import CycleAssembler
from g2h_edge.schema import mirror_sides
from g2h_edge.wire import Frames, Meta, frames_in_schema_order

__all__ = ["StreamState", "ReadyCycle", "Reject", "make_detector", "PUSH_FRAMES", "MAX_PENDING_IC"]

#: frames collected before they are pushed into the ring buffer (unless a cycle closes)
PUSH_FRAMES = 256
#: external ICs waiting for their frames, at most (later ones: rejected as ic_backlog)
MAX_PENDING_IC = 128


@dataclass
class ReadyCycle:
    """A checked, resampled cycle waiting for inference."""

    stream: str
    side: str
    index: int
    t_start: float
    t_end: float
    x: np.ndarray  # (180, 10) float32 deg, model input (mirrored for "L")
    quality: dict
    arrival: float  # perf_counter() when the closing frame's message arrived
    body_mass_kg: float | None
    arrival_cpu: float | None = None  # thread_time() then (only with cpu_timing)
    neighbours_s: tuple = ()  # durations of this side's previous cycles (quality)


@dataclass(frozen=True)
class Reject:
    """Something refused: reason code, human detail and the typed context of a refused
    frames message (``seq``) or cycle (``side``, ``cycle``, ``t_start``, ``t_end``)."""

    stream: str | None
    reason: str
    detail: str
    seq: int | None = None
    side: str | None = None
    cycle: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    count: int | None = None  # how many items one reject stands for (ICs)

    def context(self) -> dict:
        """The context fields that are set (extra fields of the ``reject`` message)."""
        return {
            k: v
            for k, v in (
                ("seq", self.seq),
                ("side", self.side),
                ("cycle", self.cycle),
                ("t_start", self.t_start),
                ("t_end", self.t_end),
                ("count", self.count),
            )
            if v is not None
        }

    @classmethod
    def of_gait_error(cls, stream: str, exc: GaitError, side: str) -> Reject:
        """A refused cycle from the assembler's error (its typed cycle context)."""
        return cls(
            stream,
            exc.reason,
            str(exc),
            side=exc.side or side,
            cycle=None if exc.index is None else int(exc.index),
            t_start=None if exc.t_start is None else float(exc.t_start),
            t_end=None if exc.t_end is None else float(exc.t_end),
        )


def make_detector(config, rate_hz: float):
    """Online IC detector of one stream (g2h_edge.gait.OnlineICDetector)."""
    from g2h_edge.gait import OnlineICDetector

    return OnlineICDetector(config, rate_hz)


class StreamState:
    """One stream: meta, counters, ring buffer (CycleAssembler), IC source, convention.

    ICs come from the online detector until the first external ``ic`` event arrives; from
    then on only external events close cycles for this stream (detection is switched off
    and the open cycles are restarted from the first external event). ``reject`` receives
    every :class:`Reject` of this stream; ``gate`` judges its convention.
    """

    def __init__(
        self, stream: str, meta: Meta | None, server_cfg, now: float, reject: Callable[[Reject], None], gate
    ):
        self.stream = stream
        self.cfg = server_cfg
        self.reject = reject
        self.meta_: Meta | None = meta
        self.rate_hz_: float = meta.rate_hz if meta else server_cfg.default_rate_hz
        self.assembler_ = CycleAssembler(server_cfg.cycle)
        self.detector_ = None  # created lazily (detection-driven streams only)
        self.external_ = False  # external ICs seen: detection off
        self.pending_ic_: list[tuple[float, str]] = []  # external ICs beyond the data
        self.gate_ = gate  # its ConventionGate (g2h_edge.runtime.pipeline)
        self.t_first_: float | None = None
        self.t_last_: float | None = None
        self.pend_: list = []  # (t, q) chunks not pushed to the assembler yet
        self.pend_n_ = 0
        self.last_seq_: int | None = None
        self.meta_since_frames_ = False  # a meta came after the last accepted frames
        self.held_meta_: Meta | None = None  # a changed meta, refused (meta_changed)
        self.ic_backlog_told_ = False  # the one ic_backlog reject was sent
        self.last_seen_ = now
        self.counters = {
            "messages": 0,
            "frames": 0,
            "cycles": 0,
            "duplicate_seq": 0,
            "dropped_seq": 0,
            "ics": 0,
            "ic_dropped": 0,
        }
        self.source_status_: dict = {}
        self.durations_: dict = {}  # side -> recent cycle durations (s), quality

    # ------------------------------------------------------------------ inputs
    def meta_changes(self, meta: Meta) -> list[str]:
        """What ``meta`` would change of this stream's meaning: ``channels``, ``units`` or
        ``body_mass_kg`` as "name: old -> new" (empty for a repeated or rate-only meta)."""
        cur = self.meta_ or Meta(self.stream, self.rate_hz_)
        return [
            f"{k}: {getattr(cur, k)!r} -> {getattr(meta, k)!r}"
            for k in ("channels", "units", "body_mass_kg")
            if getattr(cur, k) != getattr(meta, k)
        ]

    def hold_meta(self, meta: Meta, arrival: float) -> None:
        """A refused, changed meta: kept for a new session of this stream id only."""
        self.last_seen_ = arrival
        self.meta_since_frames_ = True
        self.held_meta_ = meta

    @property
    def next_meta(self) -> Meta | None:
        """The meta a new session of this stream id starts with."""
        return self.held_meta_ or self.meta_

    def set_meta(self, meta: Meta, arrival: float) -> None:
        """A repeated meta (same channels, units and mass); a new rate resets the
        detector."""
        self.last_seen_ = arrival
        self.meta_since_frames_ = True
        self.held_meta_ = None
        if self.meta_ is not None and meta.rate_hz != self.meta_.rate_hz:
            self.detector_ = None
        self.meta_ = meta
        self.rate_hz_ = meta.rate_hz

    def set_source_status(self, source: str, counters: dict, arrival: float) -> None:
        """Latest counters of a source (e.g. the firmware bridge) of this stream (the
        pipeline caps the number of sources)."""
        self.last_seen_ = arrival
        self.source_status_[source] = dict(counters)

    @property
    def body_mass_kg(self) -> float | None:
        if self.meta_ is not None and self.meta_.body_mass_kg is not None:
            return self.meta_.body_mass_kg
        return self.cfg.body_mass_kg

    def new_session(self, msg: Frames) -> bool:
        """Whether ``msg`` starts a new session of this stream id: its seq is not above the
        last accepted one and a meta came since that frames message (a restarted
        publisher sends its meta first, then counts from 0 again; docs/protocol.md)."""
        return self.meta_since_frames_ and self.last_seq_ is not None and msg.seq <= self.last_seq_

    def on_frames(self, msg: Frames, arrival: float) -> list[ReadyCycle]:
        """Ingest one frames message; returns the cycles it made ready. Every check comes
        before any change: a refused message leaves the stream as it was."""
        c = self.counters
        self.last_seen_ = arrival
        last = self.last_seq_
        if last is not None and msg.seq <= last:
            c["duplicate_seq"] += 1
            self._reject(
                "duplicate_seq",
                f"seq {msg.seq} <= last seq {last}: message "
                "dropped (a restarted publisher sends a meta first, then seq 0)",
                seq=msg.seq,
            )
            return []
        t = msg.t
        if self.t_last_ is not None and not t[0] > self.t_last_:
            self._reject(
                "time_not_increasing",
                f"frames start at {t[0]:.6f} s, not after the stream's last frame ({self.t_last_:.6f} s)",
                seq=msg.seq,
            )
            return []
        if last is not None and msg.seq > last + 1:
            c["dropped_seq"] += msg.seq - last - 1
        self.last_seq_ = msg.seq
        self.meta_since_frames_ = False
        self.held_meta_ = None
        q = frames_in_schema_order(msg.q, self.meta_)
        c["messages"] += 1
        c["frames"] += t.shape[0]
        self.t_last_ = float(t[-1])
        # frames reach the ring buffer in chunks (one push per PUSH_FRAMES or when a cycle
        # is closed): a push per small message would cost more than everything else
        self.pend_.append((t, q))
        self.pend_n_ += t.shape[0]
        if self.pend_n_ >= PUSH_FRAMES:
            self._push_pending()
        if self.t_first_ is None:
            self.t_first_ = float(t[0])
            self.gate_.start(self.t_first_)
        if self.gate_.due(self.t_last_):
            self._push_pending()
            tb, qb = self.assembler_.buffered()
            exc = self.gate_.judge_window(tb, qb, self.t_last_)
            if exc is not None:
                self._reject(exc.reason, str(exc))
        ics = self._new_ics(msg, q)
        if ics:
            self._push_pending()
        ready: list[ReadyCycle] = []
        for t_ic, side in ics:
            self._close(t_ic, side, arrival, ready)
        return ready

    def _push_pending(self) -> None:
        if not self.pend_:
            return
        if len(self.pend_) == 1:
            t, q = self.pend_[0]
        else:
            t = np.concatenate([p[0] for p in self.pend_])
            q = np.concatenate([p[1] for p in self.pend_])
        self.pend_, self.pend_n_ = [], 0
        self.assembler_.push(t, q)

    def _new_ics(self, msg: Frames, q: np.ndarray) -> list:
        """ICs that can be processed now (frames up to them are buffered), in time order."""
        if msg.ic:
            if not self.external_:
                self._switch_to_external()
            for ev in msg.ic:
                bisect.insort(self.pending_ic_, ev)
            if len(self.pending_ic_) > MAX_PENDING_IC:  # events far beyond the data
                drop, self.pending_ic_ = (
                    self.pending_ic_[MAX_PENDING_IC:],
                    self.pending_ic_[:MAX_PENDING_IC],
                )
                self.counters["ic_dropped"] += len(drop)
                if not self.ic_backlog_told_:  # once per stream; later drops: counted
                    self.ic_backlog_told_ = True
                    self._reject(
                        "ic_backlog",
                        f"{len(drop)} external IC(s) dropped: more "
                        f"than {MAX_PENDING_IC} wait for frames (first at "
                        f"{drop[0][0]:.3f} s, last frame {self.t_last_:.3f} s); "
                        "later drops are counted in status (ic_dropped)",
                        count=len(drop),
                    )
        if not self.external_:
            if self.detector_ is None:
                self.detector_ = make_detector(self.cfg.detector, self.rate_hz_)
            return sorted(self.detector_.update(msg.t, q))
        t_last = float(msg.t[-1])
        k = bisect.bisect_right(self.pending_ic_, (t_last, "~"))
        out, self.pending_ic_ = self.pending_ic_[:k], self.pending_ic_[k:]
        return out

    def _switch_to_external(self) -> None:
        # restart cycle assembly with the buffered frames: cycles are opened by external ICs
        self._push_pending()
        old = self.assembler_
        self.assembler_ = CycleAssembler(self.cfg.cycle)
        t, q = old.buffered()
        if t.shape[0]:
            self.assembler_.push(t.copy(), q.copy())
        self.external_ = True
        self.detector_ = None

    def _close(self, t_ic: float, side: str, arrival: float, ready: list) -> None:
        self.counters["ics"] += 1
        try:
            cyc = self.assembler_.on_ic(t_ic, side, source="external" if self.external_ else "detector")
        except GaitError as exc:
            if side in self.cfg.sides:
                self.reject(self._explain(Reject.of_gait_error(self.stream, exc, side)))
            return
        if cyc is None or side not in self.cfg.sides:
            return
        exc = self.gate_.check_cycle(cyc.x)
        if exc is not None:
            self._reject(
                exc.reason, str(exc), side=side, cycle=cyc.index, t_start=cyc.t_start, t_end=cyc.t_end
            )
            return
        x = cyc.x if side == "R" else mirror_sides(cyc.x)
        self.counters["cycles"] += 1
        nb = self.durations_.setdefault(side, deque(maxlen=5))
        ready.append(
            ReadyCycle(
                self.stream,
                side,
                cyc.index,
                cyc.t_start,
                cyc.t_end,
                np.ascontiguousarray(x, dtype=np.float32),
                _plain(cyc.quality),
                arrival,
                self.body_mass_kg,
                neighbours_s=tuple(nb),
            )
        )
        nb.append(cyc.t_end - cyc.t_start)

    def _explain(self, rej: Reject) -> Reject:
        """Implausible angles are often a wrong convention: say which one when it is."""
        if rej.reason != "implausible_angles" or rej.t_start is None or rej.t_end is None:
            return rej
        t, q = self.assembler_.buffered()
        conv = self.gate_.explain(q[(t >= rej.t_start) & (t <= rej.t_end)])
        if conv is None:
            return rej
        return Reject(
            rej.stream,
            conv.reason,
            str(conv),
            side=rej.side,
            cycle=rej.cycle,
            t_start=rej.t_start,
            t_end=rej.t_end,
        )

    def finish(self, arrival: float) -> list[ReadyCycle]:
        """End of stream: the detector's last confirmed ICs close their cycles; external ICs
        beyond the last frame can never close one (rejected). Returns the ready cycles."""
        self._push_pending()
        ready: list[ReadyCycle] = []
        if self.detector_ is not None and hasattr(self.detector_, "flush"):
            try:
                for t_ic, side in sorted(self.detector_.flush()):
                    self._close(t_ic, side, arrival, ready)
            except G2HError as exc:
                self._reject(exc.reason, str(exc))
        late = [(t_ic, side) for t_ic, side in self.pending_ic_ if side in self.cfg.sides]
        if late:  # one reject for all of them
            self._reject(
                "ic_after_data",
                f"{len(late)} external IC(s) after the stream's "
                f"last frame ({self.t_last_} s), from {late[0][1]} at "
                f"{late[0][0]:.4f} s to {late[-1][1]} at {late[-1][0]:.4f} s",
                side=late[0][1],
                t_end=late[0][0],
                count=len(late),
            )
        self.pending_ic_ = []
        return ready

    def _reject(self, reason: str, detail: str, **context) -> None:
        self.reject(Reject(self.stream, reason, detail, **context))

    def snapshot(self, now: float) -> dict:
        """Counters for the status message (the pipeline adds the reject counts)."""
        out = dict(self.counters)
        out["ic_source"] = "external" if self.external_ else "detector"
        out["rate_hz"] = self.rate_hz_
        out["idle_s"] = round(now - self.last_seen_, 3)
        out["convention"] = self.gate_.state
        if self.source_status_:
            out["sources"] = dict(self.source_status_)
        return out


def _plain(d: dict) -> dict:
    """Quality values as plain Python scalars (msgpack cannot pack numpy scalars)."""
    return {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}
