"""Per-stream state of the server: counters, ring buffer, IC source, convention check.

A :class:`StreamState` turns validated input messages of one stream into ready cycles
(:class:`ReadyCycle`) or rejects (:class:`Reject`). It does no I/O; the server batches the
ready cycles across streams and publishes everything.
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import ConventionError, G2HError, GaitError
from g2h_edge.gait import CycleAssembler
from g2h_edge.gait.convention import ConventionMonitor, check_convention
from g2h_edge.schema import mirror_sides
from g2h_edge.wire import Frames, Meta, frames_in_schema_order

__all__ = ["StreamState", "ReadyCycle", "Reject", "make_detector"]


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


@dataclass
class Reject:
    """Something refused: reason code, human detail and context fields."""
    stream: str | None
    reason: str
    detail: str
    extra: dict = field(default_factory=dict)


def make_detector(config, rate_hz: float):
    """Online IC detector of one stream (g2h_edge.gait.OnlineICDetector)."""
    try:
        from g2h_edge.gait import OnlineICDetector
    except ImportError:  # older g2h_edge.gait without the re-export
        from g2h_edge.gait.detector import OnlineICDetector
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
        self.last_seq_: int | None = None
        self.last_seen_ = now
        self.counters = {"messages": 0, "frames": 0, "cycles": 0, "duplicate_seq": 0,
                         "dropped_seq": 0, "ics": 0}
        self.rejects: Counter = Counter()
        self.source_status_: dict = {}

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
        q = frames_in_schema_order(msg.q, self.meta_)
        try:
            self.assembler_.push(msg.t, q)
        except GaitError as exc:
            self._reject(rejects, exc.reason, str(exc), seq=msg.seq)
            self.last_seq_ = msg.seq
            return
        self.last_seq_ = msg.seq
        c["messages"] += 1
        c["frames"] += msg.t.shape[0]
        if self.t_first_ is None:
            self.t_first_ = float(msg.t[0])
        if not self.convention_ok_ and self.blocked_ is None:
            self._check_window(q, float(msg.t[-1]), rejects)
        ics = self._new_ics(msg, q)
        for t_ic, side in ics:
            self._close(t_ic, side, arrival, ready, rejects)

    def _new_ics(self, msg: Frames, q: np.ndarray) -> list:
        """ICs that can be processed now (frames up to them are buffered), in time order."""
        if msg.ic:
            if not self.external_:
                self._switch_to_external()
            for ev in msg.ic:
                bisect.insort(self.pending_ic_, ev)
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
        old = self.assembler_
        self.assembler_ = CycleAssembler(self.cfg.cycle)
        t, q = old.buffered()
        if t.shape[0]:
            self.assembler_.push(t.copy(), q.copy())
        self.external_ = True
        self.detector_ = None

    def _check_window(self, q, t_last: float, rejects: list) -> None:
        try:
            verdict = self.monitor_.update(q)
        except ConventionError as exc:
            self.blocked_ = exc
            self._reject(rejects, exc.reason, str(exc))
            return
        if verdict == "ok" and t_last - self.t_first_ >= self.cfg.convention_window_s:
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
        ready.append(ReadyCycle(self.stream, side, cyc.index, cyc.t_start, cyc.t_end,
                                np.ascontiguousarray(x, dtype=np.float32), dict(cyc.quality),
                                arrival, self.body_mass_kg))

    def finish(self, arrival: float, ready: list, rejects: list) -> None:
        """End of stream: the detector's last confirmed ICs close their cycles; external ICs
        beyond the last frame can never close one (rejected)."""
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


def _gait_context(exc: G2HError, side: str) -> dict:
    ctx = {"side": getattr(exc, "side", side)}
    for key, attr in (("cycle", "index"), ("t_start", "t_start"), ("t_end", "t_end")):
        v = getattr(exc, attr, None)
        if v is not None:
            ctx[key] = float(v) if key != "cycle" else int(v)
    return ctx
