"""Online initial-contact (IC) detection from joint angles only.

Feature: the forward *reach* of each foot relative to its hip in the sagittal plane,
``sin(hip_flexion) + sin(hip_flexion - knee_angle)`` in thigh lengths (a two-segment leg
with equal thigh and shank). It is the angle-only form of Zeni et al. (2008)'s heel-minus-
sacrum method: the foot travels forward in swing, peaks in terminal swing and travels back in
stance, so each stride has ONE clean maximum (the raw knee minimum has several per stride).
On the 12 real trials of ../shared/data the maximum leads the hand-marked foot strike by a
median 29 ms (see docs/gait_events.md for what was measured).

Per side, a two-state hysteresis machine (``SEEK_MAX`` in swing, ``SEEK_MIN`` in stance)
tracks the running *extreme* of the reach (its maximum in swing, its minimum in stance) over
the samples in order, with O(1) state per side (plus a short history for the peak fit). Two
equivalent implementations: a scalar per-sample loop for live-sized chunks (the cheapest for
~1-256 frames: numpy's per-call overhead dominates on such small arrays) and a vectorised pass
for bulk offline chunks; tests check that they give identical ICs.

A maximum is confirmed when the reach has dropped ``confirm_drop_reach`` below it (not
before ``ic_offset_s + confirm_margin_s``, so the IC is already in the past) or after
``max_delay_s`` (bounded delay), then gated (:data:`GATES`, in this order; the name of the
gate that refused a maximum is counted in ``OnlineICDetector.rejected_``):

- ``swing``: the reach rose at least ``min_swing_reach`` from the stance minimum;
- start of a stream (no stance minimum seen yet, and the reach has not risen
  ``min_swing_reach`` from its lowest value since the stream began): the peak itself must be
  convincing: ``start_lead`` (lead >= ``start_min_lead_reach``), ``start_edge`` (the fitted
  vertex at most ``start_edge_s`` before the sampled maximum: the stream began at the peak,
  not after it), ``start_curvature`` (the fit has negative curvature: a peak, not a fall that
  flattens) and ``start_drop`` (the reach falls at most ``start_max_drop_reach`` over the
  ``fit_half_s`` after the maximum: a flat peak, not the steep fall of loading response);
- ``lead``: this foot is ahead of the other one by ``min_lead_reach`` (feet apart, this one in
  front: kills double-support wiggles and stance-phase noise);
- ``other_leg``: the other foot is still moving back (terminal stance), its reach rising no
  faster than ``max_other_speed_reach_s``;
- ``knee``: the knee is extended (< ``max_knee_ic_deg``);
- ``stride`` / ``step``: at least ``min_stride_s`` after this side's last IC, ``min_step_s``
  after the other's.

The IC time is the vertex of a least-squares parabola fitted over ``fit_half_s`` around the
maximum (sub-frame, rate independent) plus ``ic_offset_s``.
"""

from __future__ import annotations

import math
import operator
from collections import deque

import numpy as np

from g2h_edge.errors import ConfigError, GaitError
from g2h_edge.gait.config import ICDetectorConfig
from g2h_edge.gait.gates import GATES, PeakMeasures, fit_peak, gate_peak, poly_fit
from g2h_edge.schema import IN_COLS, N_IN, SIDES

__all__ = [
    "GATES",
    "PeakMeasures",
    "gate_peak",
    "foot_reach",
    "fit_peak",
    "OnlineICDetector",
    "detect_ics",
]  # GATES, PeakMeasures, gate_peak, fit_peak: from gait.gates

_HIP = (IN_COLS.index("hip_flexion_r"), IN_COLS.index("hip_flexion_l"))
_KNEE = (IN_COLS.index("knee_angle_r"), IN_COLS.index("knee_angle_l"))
_COLS = list(_HIP + _KNEE)
_COLS_IDX = np.array(_COLS, dtype=np.intp)  # (q.take with an index array: no list conversion)
_D2R = math.pi / 180.0
_SEEK_MAX, _SEEK_MIN = 1.0, -1.0
#: chunks up to this many frames take the scalar per-sample path. Measured on the 2-core
#: build machine (docs/gait_events.md): it is as fast or faster per frame than the
#: vectorised pass at every chunk size up to a few hundred frames (numpy's per-call
#: overhead on (m, 2) arrays dominates); the vectorised pass serves bulk offline runs.
_SCALAR_MAX_FRAMES = 256
#: rows per vectorised pass (a state change, ~4 per stride, re-scans the rest of a pass)
_BLOCK_ROWS = 128


def foot_reach(q) -> np.ndarray:
    """Forward reach of the right and left foot relative to the hip, (n, 10) deg -> (n, 2),
    in thigh lengths: ``sin(hip) + sin(hip - knee)`` (Rajagopal convention, knee + flexion)."""
    q = np.asarray(q)
    a = q[:, _COLS].astype(np.float64) * _D2R  # (n, 4): hip_r, hip_l, knee_r, knee_l
    hip, knee = a[:, :2], a[:, 2:]
    return np.sin(hip) + np.sin(hip - knee)  # (n, 2)


class OnlineICDetector:
    """Causal IC detector for one stream, both sides. Feed frames with :meth:`update` in
    chunks of any size; it returns the ICs confirmed by those frames as ``(t_ic, side)``.
    The result does not depend on how the frames are chunked.

    ``rate_hz`` is the stream's nominal rate; it only sizes the short history kept for the
    peak fit (all settings are in seconds), which grows if the frames come faster. Frames
    with non-finite hip-flexion or knee angles are skipped.
    """

    def __init__(self, config: ICDetectorConfig | None = None, rate_hz: float = 100.0):
        self.config = config if config is not None else ICDetectorConfig()
        if (
            isinstance(rate_hz, bool)
            or not isinstance(rate_hz, (int, float))
            or not 1.0 <= float(rate_hz) <= 20000.0
        ):
            raise ConfigError(f"rate_hz must be a number within [1, 20000] Hz, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        c = self.config
        # rows kept for the peak fit: from the peak - fit_half_s to the confirming sample
        self.history_len_ = int(math.ceil(2.0 * (c.max_delay_s + c.fit_half_s) * self.rate_hz)) + 8
        self.rejected_: dict[str, int] = {}  # gate name -> count (diagnostics)
        self.clamped_ = 0  # ICs moved back onto the confirming frame
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new stream, or after a long gap)."""
        c = self.config
        # Per-side state as plain floats (cheap in the per-sample path). Each side tracks the
        # running extreme of mode * reach: the reach maximum in SEEK_MAX (swing), minus the
        # reach minimum in SEEK_MIN (stance).
        self.mode_ = [_SEEK_MAX, _SEEK_MAX]
        self.extreme_ = [-math.inf, -math.inf]  # running max of mode * reach
        self.t_extreme_ = [math.nan, math.nan]  # its time (s)
        self.stance_min_ = [math.nan, math.nan]  # last stance minimum of the reach
        self.last_ic_ = [math.nan, math.nan]
        self.lowest_ = [math.inf, math.inf]  # lowest reach since the start
        self.lowest_at_extreme_ = [math.inf, math.inf]  # ... up to the running extreme
        # per-mode confirmation constants (set by _set_mode): the extreme is confirmed once
        # mode * reach has fallen confirm_drop_ below it and it is confirm_min_age_s_ old, or
        # once it is confirm_max_age_s_ old
        self.confirm_drop_ = [c.confirm_drop_reach] * 2
        self.confirm_min_age_s_ = [c.ic_offset_s + c.confirm_margin_s] * 2
        self.confirm_max_age_s_ = [c.max_delay_s] * 2
        # recent rows (t, reach_r, reach_l, knee_r, knee_l), used only when a peak is fitted;
        # grows if the frames come faster than rate_hz said (see _check_times)
        self.history_: deque = deque(maxlen=self.history_len_)
        self.t_first_ = math.nan
        self.t_last_ = math.nan

    # ------------------------------------------------------------------ public
    def update(self, t, q) -> list[tuple[float, str]]:
        """Feed frames ``t`` (n,) s (increasing) and ``q`` (n, 10) deg in IN_COLS order;
        return the ICs confirmed so far as ``[(t_ic, "R"|"L"), ...]`` in time order."""
        t = np.asarray(t, dtype=np.float64)
        q = np.asarray(q)
        n = t.shape[0] if t.ndim == 1 else -1
        if q.shape != (n, N_IN):
            raise GaitError(
                f"update needs t (n,) and q (n, {N_IN}), got {t.shape} and {q.shape}", reason="bad_shape"
            )
        if n == 0:
            return []
        if n <= _SCALAR_MAX_FRAMES:
            return self._update_small(t.tolist(), q.take(_COLS_IDX, axis=1).tolist())
        return self._update_large(t, q)

    def flush(self) -> list[tuple[float, str]]:
        """End of stream: confirm a pending maximum that passes every gate and whose IC lies
        within the received frames (it could not close a cycle otherwise)."""
        out = []
        t_hist, feat_hist = self._history([])
        t_ext = self.t_extreme_
        for s in (0, 1) if not t_ext[1] < t_ext[0] else (1, 0):  # time order
            if self.mode_[s] == _SEEK_MAX and t_ext[s] < self.t_last_:
                prev = self.last_ic_[s]
                ic = self._evaluate(s, t_ext[s], t_hist, feat_hist, clamp=False)
                if ic is not None and ic[0] > self.t_last_:
                    self.last_ic_[s] = prev  # not usable: after the last frame
                    self._count("after_end")
                    ic = None
                if ic is not None:
                    out.append(ic)
        self._set_mode(0, _SEEK_MIN)
        self._set_mode(1, _SEEK_MIN)
        return out

    # ------------------------------------------------------------------ internals
    def _check_times(self, t0: float, increasing: bool, t) -> None:
        """Validate the chunk's times, restart after a long gap, note the stream start."""
        if not increasing or not (t0 > self.t_last_ or not self.history_):
            raise GaitError(
                f"frame times must be finite and increase strictly (last "
                f"{self.t_last_}, got {list(t[:3])}...)",
                reason="time_not_increasing",
            )
        if self.history_ and t0 - self.t_last_ > self.config.reset_gap_s:
            self.reset()
        if not self.history_:
            self.t_first_ = float(t0)
            first, frames = float(t0), len(t) - 1
        else:
            first, frames = self.t_last_, len(t)
        if frames > 0:  # frames faster than rate_hz said: keep more rows
            dt = (float(t[-1]) - first) / frames
            c = self.config
            need = int(2.0 * (c.max_delay_s + c.fit_half_s) / max(dt, 5e-5)) + 8
            if need > self.history_.maxlen:
                self.history_ = deque(self.history_, maxlen=need)
        self.t_last_ = float(t[-1])

    def _history(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(t (m,), [reach_r, reach_l, knee_r, knee_l] (m, 4)) of the kept rows + ``rows``."""
        if isinstance(rows, np.ndarray):  # (k, 5) from the vectorised path
            a = np.concatenate([np.array(self.history_, dtype=np.float64).reshape(-1, 5), rows])
        else:
            a = np.array(list(self.history_) + rows, dtype=np.float64).reshape(-1, 5)
        return a[:, 0], a[:, 1:]

    def _update_small(self, tl: list, ql: list) -> list[tuple[float, str]]:
        """Per-sample path (chunks up to ``_SCALAR_MAX_FRAMES`` frames): scalar maths, no
        numpy calls per sample, one pass that computes each row's reach and runs both state
        machines on it. Same float64 operations and decisions as :meth:`_update_large`."""
        isfinite = math.isfinite
        k0 = 0  # first row with finite angles (frames with NaN/inf angles are skipped)
        while k0 < len(ql) and not isfinite(sum(ql[k0])):
            k0 += 1
        if k0 == len(ql):
            return []
        increasing = tl[0] > -math.inf and all(map(operator.lt, tl, tl[1:]))  # NaN: False
        self._check_times(tl[k0], increasing, tl)  # may reset the state
        sin, d = math.sin, _D2R
        rows: list = []
        out: list[tuple[float, str]] = []
        # the state lists are mutated in place here and by _switch (same objects)
        extreme, t_extreme, mode = self.extreme_, self.t_extreme_, self.mode_
        drop, min_age, max_age = (self.confirm_drop_, self.confirm_min_age_s_, self.confirm_max_age_s_)
        lowest, lowest_at_ext = self.lowest_, self.lowest_at_extreme_
        # both sides in sample order, side 0 then side 1 (the loop over the sides written
        # out: same operations, less interpreter work per sample)
        for ti, (hr, hl, kr, kl) in zip(tl[k0:], ql[k0:]):
            if not isfinite(hr + hl + kr + kl):
                continue
            hr, hl = hr * d, hl * d
            reach_r, reach_l = sin(hr) + sin(hr - kr * d), sin(hl) + sin(hl - kl * d)
            rows.append((ti, reach_r, reach_l, kr, kl))
            if reach_r < lowest[0]:
                lowest[0] = reach_r
            tracked = mode[0] * reach_r
            if tracked >= extreme[0]:  # new extreme: cannot trigger
                extreme[0], t_extreme[0], lowest_at_ext[0] = tracked, ti, lowest[0]
            else:
                age = ti - t_extreme[0]
                if (tracked <= extreme[0] - drop[0] and age >= min_age[0]) or age >= max_age[0]:
                    ic = self._switch(0, ti, reach_r, rows)
                    if ic is not None:
                        out.append(ic)
            if reach_l < lowest[1]:
                lowest[1] = reach_l
            tracked = mode[1] * reach_l
            if tracked >= extreme[1]:
                extreme[1], t_extreme[1], lowest_at_ext[1] = tracked, ti, lowest[1]
            else:
                age = ti - t_extreme[1]
                if (tracked <= extreme[1] - drop[1] and age >= min_age[1]) or age >= max_age[1]:
                    ic = self._switch(1, ti, reach_l, rows)
                    if ic is not None:
                        out.append(ic)
        self.history_.extend(rows)
        return out

    def _update_large(self, t, q) -> list[tuple[float, str]]:
        """Vectorised path: both state machines run over stretches of rows without a state
        change with numpy accumulations; Python runs only at the (rare) state changes."""
        a = q[:, _COLS].astype(np.float64)  # (n, 4) hip_r, hip_l, knee_r, knee_l
        ok = np.isfinite(a).all(axis=1)
        if not ok.all():  # skip frames with NaN/inf angles
            t, a = t[ok], a[ok]
            if t.shape[0] == 0:
                return []
        hip = a[:, :2] * _D2R
        a[:, :2] = np.sin(hip) + np.sin(hip - a[:, 2:] * _D2R)  # reach_r, reach_l, knee_r, knee_l
        self._check_times(float(t[0]), bool((t[1:] > t[:-1]).all()), t)
        rows = np.concatenate([t[:, None], a], axis=1)  # (n, 5)
        out: list[tuple[float, str]] = []
        n, start = t.shape[0], 0
        while start < n:
            end = min(start + _BLOCK_ROWS, n)  # bounded blocks: a state change re-scans
            tb = t[start:end]  # at most one block
            mode, ext, t_ext = (np.array(x) for x in (self.mode_, self.extreme_, self.t_extreme_))
            tracked = a[start:end, :2] * mode  # (m, 2) mode * reach
            run_ext = np.maximum(np.maximum.accumulate(tracked, axis=0), ext)  # running extreme
            pos = np.arange(tracked.shape[0])[:, None]
            last = np.maximum.accumulate(np.where(tracked >= run_ext, pos, -1), axis=0)
            run_t = np.where(last >= 0, tb[np.maximum(last, 0)], t_ext)  # (m, 2) its time
            lowest = np.minimum(np.minimum.accumulate(a[start:end, :2], axis=0), self.lowest_)
            lowest_at_ext = np.where(
                last >= 0, np.take_along_axis(lowest, np.maximum(last, 0), 0), self.lowest_at_extreme_
            )  # (m, 2)
            age = tb[:, None] - run_t
            trig = (
                (tracked <= run_ext - np.array(self.confirm_drop_))
                & (age >= np.array(self.confirm_min_age_s_))
            ) | (age >= np.array(self.confirm_max_age_s_))
            hit = trig.any(axis=1)
            j = int(np.argmax(hit)) if hit.any() else tracked.shape[0] - 1
            self.extreme_, self.t_extreme_ = run_ext[j].tolist(), run_t[j].tolist()
            self.lowest_, self.lowest_at_extreme_ = lowest[j].tolist(), lowest_at_ext[j].tolist()
            if hit[j]:
                for s in np.flatnonzero(trig[j]).tolist():
                    i = start + j
                    ic = self._switch(s, float(t[i]), float(a[i, s]), rows[: i + 1])
                    if ic is not None:
                        out.append(ic)
            start += j + 1
        self.history_.extend(map(tuple, rows[-self.history_.maxlen :].tolist()))
        return out

    def _set_mode(self, s: int, mode: float) -> None:
        c = self.config
        self.mode_[s] = mode
        seek_max = mode == _SEEK_MAX
        self.confirm_drop_[s] = c.confirm_drop_reach if seek_max else c.swing_rise_reach
        self.confirm_min_age_s_[s] = c.ic_offset_s + c.confirm_margin_s if seek_max else 0.0
        self.confirm_max_age_s_[s] = c.max_delay_s if seek_max else math.inf

    def _switch(self, s: int, ti: float, reach: float, rows):
        """State change of side ``s`` at the row (``ti``, ``reach``); ``rows`` are this
        chunk's rows up to and including it (for the peak fit)."""
        ic = None
        if self.mode_[s] == _SEEK_MAX:
            ic = self._evaluate(s, self.t_extreme_[s], *self._history(rows))
            self._set_mode(s, _SEEK_MIN)
        else:
            self.stance_min_[s] = -self.extreme_[s]
            self._set_mode(s, _SEEK_MAX)
        self.extreme_[s] = self.mode_[s] * reach
        self.t_extreme_[s] = ti
        return ic

    def _count(self, gate: str) -> None:
        self.rejected_[gate] = self.rejected_.get(gate, 0) + 1

    def _measure(self, s: int, t_peak: float, t_hist, feat_hist):
        """(:class:`PeakMeasures`, fitted vertex time) of side ``s``'s maximum at ``t_peak``;
        ``t_hist`` (m,) / ``feat_hist`` (m, 4): rows up to the confirming one."""
        c = self.config
        i = int(np.searchsorted(t_hist, t_peak))
        reach, other, knee = feat_hist[i, s], feat_hist[i, 1 - s], feat_hist[i, 2 + s]
        t_v, curv = fit_peak(t_hist, feat_hist[:, s], t_peak, c.fit_half_s, t_max=t_hist[-1], clip=False)
        w = (t_hist >= t_peak - c.fit_half_s) & (t_hist <= t_peak + c.fit_half_s)
        fit = poly_fit(t_hist[w] - t_peak, feat_hist[w, 1 - s], False) if w.sum() >= 2 else None
        stance_seen = not math.isnan(self.stance_min_[s])
        low = self.stance_min_[s] if stance_seen else self.lowest_at_extreme_[s]
        j = int(np.searchsorted(t_hist, t_peak + c.fit_half_s, side="right")) - 1
        return PeakMeasures(
            lead_reach=float(reach - other),
            swing_rise_reach=float(reach - low),
            stance_seen=stance_seen,
            other_speed_reach_s=0.0 if fit is None else fit[1],
            knee_deg=float(knee),
            vertex_lead_s=float(t_peak - t_v),
            curvature=curv,
            drop_after_reach=float(reach - feat_hist[j, s]),
        ), t_v

    def _evaluate(self, s: int, t_peak: float, t_hist, feat_hist, clamp: bool = True):
        """Gate the reach maximum of side ``s`` at ``t_peak``; return (t_ic, side) or None."""
        c = self.config
        m, t_v = self._measure(s, t_peak, t_hist, feat_hist)
        gate = gate_peak(m, c)
        if gate is not None:
            return self._count(gate)
        t_v = min(
            max(t_v, t_peak - c.fit_half_s, float(t_hist[0]) - c.start_edge_s),
            t_peak + c.fit_half_s,
            float(t_hist[-1]),
        )
        t_ic = t_v + c.ic_offset_s
        if clamp and t_ic > t_hist[-1]:  # a late, flat peak: never report a future IC
            t_ic = float(t_hist[-1])
            self.clamped_ += 1
        if t_ic - self.last_ic_[s] < c.min_stride_s:
            return self._count("stride")
        if t_ic - self.last_ic_[1 - s] < c.min_step_s:
            return self._count("step")
        self.last_ic_[s] = t_ic
        return (t_ic, SIDES[s])


def detect_ics(
    t,
    q,
    config: ICDetectorConfig | None = None,
    *,
    rate_hz: float | None = None,
    chunk: int = 10,
    flush: bool = True,
) -> dict[str, np.ndarray]:
    """Run :class:`OnlineICDetector` over a whole trial, ``chunk`` frames per update (the
    result does not depend on it); returns ``{"R": times, "L": times}`` (s, sorted)."""
    t = np.asarray(t, dtype=np.float64)
    if rate_hz is None:
        dt = np.diff(t)
        rate_hz = 1.0 / float(np.median(dt)) if dt.size else 100.0
    det = OnlineICDetector(config, rate_hz=rate_hz)
    found: list[tuple[float, str]] = []
    for i in range(0, t.shape[0], max(int(chunk), 1)):
        found += det.update(t[i : i + chunk], q[i : i + chunk])
    if flush:
        found += det.flush()
    return {side: np.array(sorted(x for x, s in found if s == side)) for side in SIDES}
