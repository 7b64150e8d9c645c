"""Per-stream state of the server: counters, ring buffer, IC source, convention check.

A :class:`StreamState` turns validated input messages of one stream into ready cycles
(:class:`ReadyCycle`) or rejects (:class:`Reject`). It does no I/O; the server batches the
ready cycles across streams and publishes everything.
"""
from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import ConventionError, G2HError, GaitError
from g2h_edge.gait import CycleAssembler
from g2h_edge.gait.convention import ConventionMonitor, check_convention
from g2h_edge.schema import mirror_sides
from g2h_edge.wire import Frames, Meta, frames_in_schema_order

__all__ = ["StreamState", "ReadyCycle", "Reject", "make_detector", "PUSH_FRAMES"]

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
    x: np.ndarray            # (180, 10) float32 deg, model input (mirrored for "L")
    quality: dict
    arrival: float           # perf_counter() when the closing frame's message arrived
    body_mass_kg: float | None
    arrival_cpu: float | None = None   # thread_time() then (only with cpu_timing)
    neighbours_s: tuple = ()           # durations of this side's previous cycles (quality)


@dataclass
class Reject:
    """Something refused: reason code, human detail and context fields."""
    stream: str | None
    reason: str
    detail: str
    extra: dict = field(default_factory=dict)


def make_detector(config, rate_hz: float):
    """Online IC detector of one stream (g2h_edge.gait.OnlineICDetector)."""
    from g2h_edge.gait import OnlineICDetector
    return OnlineICDetector(config, rate_hz)


class StreamState:
    """One stream: meta, counters, ring buffer (CycleAssembler), IC source, convention.

    ICs come from the online detector until the first external ``ic`` event arrives; from
    then on only external events close cycles for this stream (detection is switched off
    and the open cycles are restarted from the first external event).
    """

    def __init__(self, stream: str, meta: Meta | None, server_cfg, now: float):
        self.stream = stream
        self.cfg = server_cfg
        self.meta_: Meta | None = meta
        self.rate_hz_: float = meta.rate_hz if meta else server_cfg.default_rate_hz
        self.assembler_ = CycleAssembler(server_cfg.cycle)
        self.detector_ = None          # created lazily (detection-driven streams only)
        self.external_ = False         # external ICs seen: detection off
        self.pending_ic_: list[tuple[float, str]] = []   # external ICs beyond the data
        self.monitor_ = ConventionMonitor() if server_cfg.check_convention else None
        self.convention_ok_ = not server_cfg.check_convention
        self.blocked_: ConventionError | None = None
        self.t_first_: float | None = None
        self.t_last_: float | None = None
        self.pend_: list = []               # (t, q) chunks not pushed to the assembler yet
        self.pend_n_ = 0
        self.conv_next_t_ = np.inf          # next time the convention window is judged
        self.conv_done_t_ = -np.inf         # frames up to here were judged already
        self.last_seq_: int | None = None
        self.last_seen_ = now
        self.counters = {"messages": 0, "frames": 0, "cycles": 0, "duplicate_seq": 0,
                         "dropped_seq": 0, "ics": 0}
        self.rejects: Counter = Counter()
        self.source_status_: dict = {}
        self.durations_: dict = {}          # side -> recent cycle durations (s), quality

    # ------------------------------------------------------------------ inputs
    def set_meta(self, meta: Meta) -> None:
        """A (repeated) meta: later frames use its order/units/mass; a new rate resets the
        detector."""
        if self.meta_ is not None and meta.rate_hz != self.meta_.rate_hz:
            self.detector_ = None
        self.meta_ = meta
        self.rate_hz_ = meta.rate_hz

    @property
    def body_mass_kg(self) -> float | None:
        if self.meta_ is not None and self.meta_.body_mass_kg is not None:
            return self.meta_.body_mass_kg
        return self.cfg.body_mass_kg

    def on_frames(self, msg: Frames, arrival: float, ready: list, rejects: list) -> None:
        """Ingest one frames message; append ReadyCycle / Reject objects to the lists."""
        c = self.counters
        if self.last_seq_ is not None and msg.seq <= self.last_seq_:
            c["duplicate_seq"] += 1
            self._reject(rejects, "duplicate_seq", f"seq {msg.seq} <= last seq "
                         f"{self.last_seq_}: message dropped", seq=msg.seq)
            return
        if self.last_seq_ is not None and msg.seq > self.last_seq_ + 1:
            c["dropped_seq"] += msg.seq - self.last_seq_ - 1
        self.last_seq_ = msg.seq
        t = msg.t
        if self.t_last_ is not None and not t[0] > self.t_last_:
            self._reject(rejects, "time_not_increasing", f"frames start at {t[0]:.6f} s, not "
                         f"after the stream's last frame ({self.t_last_:.6f} s)", seq=msg.seq)
            return
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
            self.conv_next_t_ = self.t_first_ + self.cfg.convention_window_s
        if not self.convention_ok_ and self.blocked_ is None and \
                self.t_last_ >= self.conv_next_t_:
            self._push_pending()
            self._check_window(self.t_last_, rejects)
        ics = self._new_ics(msg, q, rejects)
        if ics:
            self._push_pending()
        for t_ic, side in ics:
            self._close(t_ic, side, arrival, ready, rejects)

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

    def _new_ics(self, msg: Frames, q: np.ndarray, rejects: list) -> list:
        """ICs that can be processed now (frames up to them are buffered), in time order."""
        if msg.ic:
            if not self.external_:
                self._switch_to_external()
            for ev in msg.ic:
                bisect.insort(self.pending_ic_, ev)
            if len(self.pending_ic_) > MAX_PENDING_IC:   # events far beyond the data
                drop, self.pending_ic_ = (self.pending_ic_[MAX_PENDING_IC:],
                                          self.pending_ic_[:MAX_PENDING_IC])
                self._reject(rejects, "ic_backlog", f"{len(drop)} external IC(s) dropped: "
                             f"more than {MAX_PENDING_IC} wait for frames (first at "
                             f"{drop[0][0]:.3f} s, last frame {self.t_last_:.3f} s)")
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

    def _check_window(self, t_last: float, rejects: list) -> None:
        """Judge the convention once per window (not per message: it is not free), on the
        buffered frames not judged yet; undecided windows accumulate until decided."""
        t, q = self.assembler_.buffered()
        new = q[t > self.conv_done_t_]
        self.conv_done_t_ = t_last
        self.conv_next_t_ = t_last + self.cfg.convention_window_s
        try:
            verdict = self.monitor_.update(new)
        except ConventionError as exc:
            self.blocked_ = exc
            self._reject(rejects, exc.reason, str(exc))
            return
        if verdict == "ok":
            self.convention_ok_ = True
            self.monitor_ = None

    def _close(self, t_ic: float, side: str, arrival: float, ready: list,
               rejects: list) -> None:
        self.counters["ics"] += 1
        try:
            cyc = self.assembler_.on_ic(t_ic, side,
                                        source="external" if self.external_ else "detector")
        except GaitError as exc:
            if side in self.cfg.sides:
                exc = self._explain(exc)
                self._reject(rejects, exc.reason, str(exc), **_gait_context(exc, side))
            return
        if cyc is None or side not in self.cfg.sides:
            return
        ctx = {"side": side, "cycle": cyc.index, "t_start": cyc.t_start, "t_end": cyc.t_end}
        if self.blocked_ is not None:
            self._reject(rejects, self.blocked_.reason, str(self.blocked_), **ctx)
            return
        if self.cfg.check_convention:
            try:
                check_convention(cyc.x)
            except ConventionError as exc:
                self._reject(rejects, exc.reason, str(exc), **ctx)
                return
        x = cyc.x if side == "R" else mirror_sides(cyc.x)
        nb = self.durations_.setdefault(side, deque(maxlen=5))
        ready.append(ReadyCycle(self.stream, side, cyc.index, cyc.t_start, cyc.t_end,
                                np.ascontiguousarray(x, dtype=np.float32), _plain(cyc.quality),
                                arrival, self.body_mass_kg, neighbours_s=tuple(nb)))
        nb.append(cyc.t_end - cyc.t_start)

    def _explain(self, exc: GaitError):
        """Implausible angles are often a wrong convention: say which one when it is."""
        if exc.reason != "implausible_angles" or not self.cfg.check_convention:
            return exc
        t, q = self.assembler_.buffered()
        t0, t1 = getattr(exc, "t_start", None), getattr(exc, "t_end", None)
        if t0 is None or t1 is None:
            return exc
        try:
            check_convention(q[(t >= t0) & (t <= t1)])
        except ConventionError as conv:
            for attr in ("side", "index", "t_start", "t_end"):
                setattr(conv, attr, getattr(exc, attr, None))
            return conv
        return exc

    def finish(self, arrival: float, ready: list, rejects: list) -> None:
        """End of stream: the detector's last confirmed ICs close their cycles; external ICs
        beyond the last frame can never close one (rejected)."""
        self._push_pending()
        if self.detector_ is not None and hasattr(self.detector_, "flush"):
            try:
                for t_ic, side in sorted(self.detector_.flush()):
                    self._close(t_ic, side, arrival, ready, rejects)
            except G2HError as exc:
                self._reject(rejects, exc.reason, str(exc))
        for t_ic, side in self.pending_ic_:
            if side in self.cfg.sides:
                self._reject(rejects, "ic_after_data", f"{side} IC at {t_ic:.4f} s is after "
                             "the stream's last frame", side=side, t_end=t_ic)
        self.pending_ic_ = []

    def _reject(self, rejects: list, reason: str, detail: str, **extra) -> None:
        self.rejects[reason] += 1
        rejects.append(Reject(self.stream, reason, detail, extra))

    def count_reject(self, reason: str) -> None:
        self.rejects[reason] += 1

    def snapshot(self, now: float) -> dict:
        """Counters for the status message."""
        out = dict(self.counters)
        out["rejects"] = dict(self.rejects)
        out["ic_source"] = "external" if self.external_ else "detector"
        out["rate_hz"] = self.rate_hz_
        out["idle_s"] = round(now - self.last_seen_, 3)
        out["convention"] = ("blocked:" + self.blocked_.reason if self.blocked_ is not None
                             else "ok" if self.convention_ok_ else "checking")
        if self.source_status_:
            out["sources"] = dict(self.source_status_)
        return out


def _plain(d: dict) -> dict:
    """Quality values as plain Python scalars (msgpack cannot pack numpy scalars)."""
    return {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


def _gait_context(exc: G2HError, side: str) -> dict:
    ctx = {"side": getattr(exc, "side", side)}
    for key, attr in (("cycle", "index"), ("t_start", "t_start"), ("t_end", "t_end")):
        v = getattr(exc, attr, None)
        if v is not None:
            ctx[key] = float(v) if key != "cycle" else int(v)
    return ctx
