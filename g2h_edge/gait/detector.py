"""Online initial-contact (IC) detection from joint angles only.

Feature: the forward *reach* of each foot relative to its hip in the sagittal plane,
``sin(hip_flexion) + sin(hip_flexion - knee_angle)`` in thigh lengths (a two-segment leg
with equal thigh and shank). It is the angle-only form of Zeni et al. (2008)'s heel-minus-
sacrum method: the foot travels forward in swing, peaks in terminal swing and travels back in
stance, so each stride has ONE clean maximum (the raw knee minimum has several per stride).
On the 12 real trials of ../shared/data the maximum leads the hand-marked foot strike by a
median 29 ms (see docs/gait_events.md for what was measured).

Per side, a two-state hysteresis machine (``SEEK_MAX`` in swing, ``SEEK_MIN`` in stance)
runs over the samples in order with O(1) state per side (plus a short history for the peak
fit). Two equivalent implementations: a scalar per-sample loop for live-sized chunks (the
cheapest for ~1-256 frames: numpy's per-call overhead dominates on such small arrays) and a
vectorised pass for bulk offline chunks; tests check that they give identical ICs.

A maximum is confirmed when the reach has dropped ``confirm_drop_reach`` below it (not
before ``ic_offset_s + confirm_margin_s``, so the IC is already in the past) or after
``max_delay_s`` (bounded delay), then gated:

- swing: the reach rose at least ``min_swing_reach`` from the stance minimum (or, before any
  stance was seen, from the lowest reach since the stream began);
- lead: this foot is ahead of the other one by ``min_lead_reach`` (feet apart, this one in
  front: kills double-support wiggles and stance-phase noise);
- the other leg's state: the other foot is still moving back (terminal stance), its reach
  rising no faster than ``max_other_speed_reach_s``;
- the knee is extended (< ``max_knee_ic_deg``);
- timing: at least ``min_stride_s`` after this side's last IC, ``min_step_s`` after the other's;
- start of a stream (no swing seen before the peak): the lead must reach
  ``start_min_lead_reach``, the fitted peak must be a peak (negative curvature) within
  ``start_edge_s`` before the first sample at most, and the reach may fall at most
  ``start_max_drop_reach`` over the next ``fit_half_s`` (a flat peak, not loading response).

The IC time is the vertex of a least-squares parabola fitted over ``fit_half_s`` around the
maximum (sub-frame, rate independent) plus ``ic_offset_s``.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from g2h_edge.errors import ConfigError, GaitError
from g2h_edge.gait.config import ICDetectorConfig
from g2h_edge.schema import IN_COLS, N_IN, SIDES

__all__ = ["foot_reach", "fit_peak", "OnlineICDetector", "detect_ics"]

_HIP = (IN_COLS.index("hip_flexion_r"), IN_COLS.index("hip_flexion_l"))
_KNEE = (IN_COLS.index("knee_angle_r"), IN_COLS.index("knee_angle_l"))
_COLS = list(_HIP + _KNEE)
_D2R = math.pi / 180.0
_SEEK_MAX, _SEEK_MIN = 1.0, -1.0
#: chunks up to this many frames take the scalar per-sample path. Measured on the 2-core
#: build machine (docs/gait_events.md): it is as fast or faster per frame than the
#: vectorised pass at every chunk size up to a few hundred frames (numpy's per-call
#: overhead on (m, 2) arrays dominates); the vectorised pass serves bulk offline runs.
_SMALL = 256
#: rows per vectorised pass (a state change, ~4 per stride, re-scans the rest of a pass)
_BLOCK = 128


def foot_reach(q) -> np.ndarray:
    """Forward reach of the right and left foot relative to the hip, (n, 10) deg -> (n, 2),
    in thigh lengths: ``sin(hip) + sin(hip - knee)`` (Rajagopal convention, knee + flexion)."""
    q = np.asarray(q)
    a = q[:, _COLS].astype(np.float64) * _D2R          # (n, 4): hip_r, hip_l, knee_r, knee_l
    h, k = a[:, :2], a[:, 2:]
    return np.sin(h) + np.sin(h - k)                   # (n, 2)


def _poly_fit(x, y, quadratic: bool):
    """Least-squares ``y = a x^2 + b x + c`` (or ``b x + c``) by the normal equations on
    centred samples (a few reductions instead of np.polyfit's SVD); returns (a, b) or None
    when singular."""
    n = float(x.shape[0])
    s1, s2, t0, t1 = float(x.sum()), float(x @ x), float(y.sum()), float(x @ y)
    if not quadratic:
        det = n * s2 - s1 * s1
        return None if det <= 0 else (0.0, (n * t1 - s1 * t0) / det)
    x2 = x * x
    s3, s4, t2 = float(x2 @ x), float(x2 @ x2), float(x2 @ y)
    # [[s4 s3 s2] [s3 s2 s1] [s2 s1 n]] (a b c) = (t2 t1 t0), Cramer's rule
    det = s4 * (s2 * n - s1 * s1) - s3 * (s3 * n - s1 * s2) + s2 * (s3 * s1 - s2 * s2)
    if not abs(det) > 0:
        return None
    a = (t2 * (s2 * n - s1 * s1) - s3 * (t1 * n - s1 * t0) + s2 * (t1 * s1 - s2 * t0)) / det
    b = (s4 * (t1 * n - s1 * t0) - t2 * (s3 * n - s1 * s2) + s2 * (s3 * t0 - t1 * s2)) / det
    return a, b


def fit_peak(t, y, t_peak: float, half_s: float, t_max: float | None = None, *,
             clip: bool = True):
    """Least-squares parabola through ``y(t)`` over ``[t_peak - half_s, min(t_peak + half_s,
    t_max)]``; returns ``(t_vertex, curvature)``. Falls back to ``(t_peak, 0.0)`` with fewer
    than 3 samples or a non-negative curvature (no peak). With ``clip`` the vertex is kept
    within the fitted samples."""
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    hi = t_peak + half_s if t_max is None else min(t_peak + half_s, t_max)
    w = (t >= t_peak - half_s) & (t <= hi)
    if np.count_nonzero(w) < 3:
        return t_peak, 0.0
    x = t[w] - t_peak
    ab = _poly_fit(x, y[w], True)
    if ab is None or not ab[0] < 0:
        return t_peak, (0.0 if ab is None else float(ab[0]))
    xv = -ab[1] / (2.0 * ab[0])
    if clip:
        xv = min(max(xv, float(x[0])), float(x[-1]))
    return t_peak + xv, float(ab[0])


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
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) \
                or not 1.0 <= float(rate_hz) <= 20000.0:
            raise ConfigError(f"rate_hz must be a number within [1, 20000] Hz, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        c = self.config
        # rows kept for the peak fit: from the peak - fit_half_s to the confirming sample
        self.hist_len_ = int(math.ceil(2.0 * (c.max_delay_s + c.fit_half_s) * self.rate_hz)) + 8
        self.rejected_: dict[str, int] = {}      # gate name -> count (diagnostics)
        self.clamped_ = 0                        # ICs moved back onto the confirming frame
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new stream, or after a long gap)."""
        c = self.config
        # per-side state as plain floats (cheap in the per-sample path)
        self.mode_ = [_SEEK_MAX, _SEEK_MAX]
        self.run_ = [-math.inf, -math.inf]               # running max of mode * reach
        self.trun_ = [math.nan, math.nan]                # its time
        self.last_min_ = [math.nan, math.nan]            # last stance minimum of the reach
        self.last_ic_ = [math.nan, math.nan]
        self.low_ = [math.inf, math.inf]                 # lowest reach since the start
        self.low_at_peak_ = [math.inf, math.inf]         # ... up to the running max
        self.thr_ = [c.confirm_drop_reach] * 2           # per-mode constants (_set_mode)
        self.min_age_ = [c.ic_offset_s + c.confirm_margin_s] * 2
        self.max_age_ = [c.max_delay_s] * 2
        # recent rows (t, reach_r, reach_l, knee_r, knee_l), used only when a peak is fitted;
        # grows if the frames come faster than rate_hz said (see _check_times)
        self.hist_: deque = deque(maxlen=self.hist_len_)
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
            raise GaitError(f"update needs t (n,) and q (n, {N_IN}), got {t.shape} and "
                            f"{q.shape}", reason="bad_shape")
        if n == 0:
            return []
        if n <= _SMALL:
            return self._update_small(t.tolist(), q[:, _COLS].tolist())
        return self._update_large(t, q)

    def flush(self) -> list[tuple[float, str]]:
        """End of stream: confirm a pending maximum that passes every gate and whose IC lies
        within the received frames (it could not close a cycle otherwise)."""
        out = []
        hist = self._history([])
        for s in (0, 1) if not self.trun_[1] < self.trun_[0] else (1, 0):   # time order
            if self.mode_[s] == _SEEK_MAX and self.trun_[s] < self.t_last_:
                prev = self.last_ic_[s]
                ic = self._evaluate(s, self.trun_[s], *hist, clamp=False)
                if ic is not None and ic[0] > self.t_last_:
                    self.last_ic_[s] = prev            # not usable: after the last frame
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
        if not increasing or not (t0 > self.t_last_ or not self.hist_):
            raise GaitError(f"frame times must be finite and increase strictly (last "
                            f"{self.t_last_}, got {list(t[:3])}...)",
                            reason="time_not_increasing")
        if self.hist_ and t0 - self.t_last_ > self.config.reset_gap_s:
            self.reset()
        if not self.hist_:
            self.t_first_ = float(t0)
            first, frames = float(t0), len(t) - 1
        else:
            first, frames = self.t_last_, len(t)
        if frames > 0:                     # frames faster than rate_hz said: keep more rows
            dt = (float(t[-1]) - first) / frames
            c = self.config
            need = int(2.0 * (c.max_delay_s + c.fit_half_s) / max(dt, 5e-5)) + 8
            if need > self.hist_.maxlen:
                self.hist_ = deque(self.hist_, maxlen=need)
        self.t_last_ = float(t[-1])

    def _history(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(t (m,), [reach_r, reach_l, knee_r, knee_l] (m, 4)) of the kept rows + ``rows``."""
        if isinstance(rows, np.ndarray):                # (k, 5) from the vectorised path
            a = np.concatenate([np.array(self.hist_, dtype=np.float64).reshape(-1, 5), rows])
        else:
            a = np.array(list(self.hist_) + rows, dtype=np.float64).reshape(-1, 5)
        return a[:, 0], a[:, 1:]

    def _update_small(self, tl: list, ql: list) -> list[tuple[float, str]]:
        """Per-sample path (chunks up to ``_SMALL`` frames): scalar maths, no numpy calls
        per sample. Same float64 operations and decisions as :meth:`_update_large`."""
        sin, d = math.sin, _D2R
        rows = []
        increasing, tp = True, -math.inf
        for ti, (hr, hl, kr, kl) in zip(tl, ql):
            increasing = increasing and ti > tp
            tp = ti
            if math.isfinite(hr + hl + kr + kl):          # skip frames with NaN/inf angles
                hr, hl = hr * d, hl * d
                rows.append((ti, sin(hr) + sin(hr - kr * d), sin(hl) + sin(hl - kl * d),
                             kr, kl))
        if not rows:
            return []
        self._check_times(rows[0][0], increasing, tl)
        out: list[tuple[float, str]] = []
        # the state lists are mutated in place here and by _switch (same objects)
        run, trun, mode, thr = self.run_, self.trun_, self.mode_, self.thr_
        min_age, max_age, low, low_pk = self.min_age_, self.max_age_, self.low_, self.low_at_peak_
        for k, row in enumerate(rows):
            ti = row[0]
            for s in (0, 1):                              # both sides, in sample order
                v = row[1 + s]
                if v < low[s]:
                    low[s] = v
                g = mode[s] * v
                if g >= run[s]:                           # new maximum: cannot trigger
                    run[s], trun[s], low_pk[s] = g, ti, low[s]
                    continue
                age = ti - trun[s]
                if (g <= run[s] - thr[s] and age >= min_age[s]) or age >= max_age[s]:
                    ic = self._switch(s, ti, v, rows[:k + 1])
                    if ic is not None:
                        out.append(ic)
        self.hist_.extend(rows)
        return out

    def _update_large(self, t, q) -> list[tuple[float, str]]:
        """Vectorised path: both state machines run over stretches of rows without a state
        change with numpy accumulations; Python runs only at the (rare) state changes."""
        a = q[:, _COLS].astype(np.float64)               # (n, 4) hip_r, hip_l, knee_r, knee_l
        ok = np.isfinite(a).all(axis=1)
        if not ok.all():                                 # skip frames with NaN/inf angles
            t, a = t[ok], a[ok]
            if t.shape[0] == 0:
                return []
        h = a[:, :2] * _D2R
        a[:, :2] = np.sin(h) + np.sin(h - a[:, 2:] * _D2R)   # -> reach_r, reach_l, knee_r, knee_l
        self._check_times(float(t[0]), bool((t[1:] > t[:-1]).all()), t)
        rows = np.concatenate([t[:, None], a], axis=1)   # (n, 5)
        out: list[tuple[float, str]] = []
        n, start = t.shape[0], 0
        while start < n:
            end = min(start + _BLOCK, n)          # bounded blocks: a state change re-scans
            tt = t[start:end]                     # at most one block
            mode, run, trun = (np.array(x) for x in (self.mode_, self.run_, self.trun_))
            g = a[start:end, :2] * mode                                # (m, 2) tracked signal
            cm = np.maximum(np.maximum.accumulate(g, axis=0), run)     # running max
            pos = np.arange(g.shape[0])[:, None]
            last = np.maximum.accumulate(np.where(g >= cm, pos, -1), axis=0)
            tm = np.where(last >= 0, tt[np.maximum(last, 0)], trun)    # (m, 2) its time
            lows = np.minimum(np.minimum.accumulate(a[start:end, :2], axis=0), self.low_)
            low_pk = np.where(last >= 0, np.take_along_axis(lows, np.maximum(last, 0), 0),
                              self.low_at_peak_)                       # (m, 2)
            age = tt[:, None] - tm
            trig = ((g <= cm - np.array(self.thr_)) & (age >= np.array(self.min_age_))) \
                | (age >= np.array(self.max_age_))
            hit = trig.any(axis=1)
            j = int(np.argmax(hit)) if hit.any() else g.shape[0] - 1
            self.run_, self.trun_ = cm[j].tolist(), tm[j].tolist()
            self.low_, self.low_at_peak_ = lows[j].tolist(), low_pk[j].tolist()
            if hit[j]:
                for s in np.flatnonzero(trig[j]).tolist():
                    i = start + j
                    ic = self._switch(s, float(t[i]), float(a[i, s]), rows[:i + 1])
                    if ic is not None:
                        out.append(ic)
            start += j + 1
        self.hist_.extend(map(tuple, rows[-self.hist_.maxlen:].tolist()))
        return out

    def _set_mode(self, s: int, mode: float) -> None:
        c = self.config
        self.mode_[s] = mode
        seek_max = mode == _SEEK_MAX
        self.thr_[s] = c.confirm_drop_reach if seek_max else c.swing_rise_reach
        self.min_age_[s] = c.ic_offset_s + c.confirm_margin_s if seek_max else 0.0
        self.max_age_[s] = c.max_delay_s if seek_max else math.inf

    def _switch(self, s: int, ti: float, reach: float, rows):
        """State change of side ``s`` at the row (``ti``, ``reach``); ``rows`` are this
        chunk's rows up to and including it (for the peak fit)."""
        ic = None
        if self.mode_[s] == _SEEK_MAX:
            ic = self._evaluate(s, self.trun_[s], *self._history(rows))
            self._set_mode(s, _SEEK_MIN)
        else:
            self.last_min_[s] = -self.run_[s]
            self._set_mode(s, _SEEK_MAX)
        self.run_[s] = self.mode_[s] * reach
        self.trun_[s] = ti
        return ic

    def _count(self, gate: str) -> None:
        self.rejected_[gate] = self.rejected_.get(gate, 0) + 1

    def _evaluate(self, s: int, t_peak: float, tt, ff, clamp: bool = True):
        """Gate the reach maximum of side ``s`` at ``t_peak``; return (t_ic, side) or None.
        ``tt``/``ff``: rows up to the confirming one, reaching back past the fit window."""
        c = self.config
        i = int(np.searchsorted(tt, t_peak))
        reach, other, knee = ff[i, s], ff[i, 1 - s], ff[i, 2 + s]
        t_v, curv = fit_peak(tt, ff[:, s], t_peak, c.fit_half_s, t_max=tt[-1], clip=False)
        w = (tt >= t_peak - c.fit_half_s) & (tt <= t_peak + c.fit_half_s)
        fit = _poly_fit(tt[w] - t_peak, ff[w, 1 - s], False) if w.sum() >= 2 else None
        other_slope = 0.0 if fit is None else fit[1]   # the other foot: still moving back?
        low = self.last_min_[s]
        if math.isnan(low):                # no stance seen: lowest reach since the start
            low = self.low_at_peak_[s]
        if reach - low < c.min_swing_reach:
            if not math.isnan(self.last_min_[s]):
                return self._count("swing")
            # start of a stream, swing not seen: the peak itself must be convincing
            j = int(np.searchsorted(tt, t_peak + c.fit_half_s, side="right")) - 1
            if reach - other < c.start_min_lead_reach:
                return self._count("start_lead")
            if t_v < t_peak - c.start_edge_s or not curv < 0 \
                    or reach - ff[j, s] > c.start_max_drop_reach:
                return self._count("start_edge")
        t_v = min(max(t_v, t_peak - c.fit_half_s, float(tt[0]) - c.start_edge_s),
                  t_peak + c.fit_half_s, float(tt[-1]))
        if reach - other < c.min_lead_reach:
            return self._count("lead")
        if other_slope > c.max_other_speed_reach_s:
            return self._count("other_leg")
        if knee > c.max_knee_ic_deg:
            return self._count("knee")
        t_ic = t_v + c.ic_offset_s
        if clamp and t_ic > tt[-1]:        # a late, flat peak: never report a future IC
            t_ic = float(tt[-1])
            self.clamped_ += 1
        if t_ic - self.last_ic_[s] < c.min_stride_s:
            return self._count("stride")
        if t_ic - self.last_ic_[1 - s] < c.min_step_s:
            return self._count("step")
        self.last_ic_[s] = t_ic
        return (t_ic, SIDES[s])


def detect_ics(t, q, config: ICDetectorConfig | None = None, *, rate_hz: float | None = None,
               chunk: int = 10, flush: bool = True) -> dict[str, np.ndarray]:
    """Run :class:`OnlineICDetector` over a whole trial, ``chunk`` frames per update (the
    result does not depend on it); returns ``{"R": times, "L": times}`` (s, sorted)."""
    t = np.asarray(t, dtype=np.float64)
    if rate_hz is None:
        dt = np.diff(t)
        rate_hz = 1.0 / float(np.median(dt)) if dt.size else 100.0
    det = OnlineICDetector(config, rate_hz=rate_hz)
    found: list[tuple[float, str]] = []
    for i in range(0, t.shape[0], max(int(chunk), 1)):
        found += det.update(t[i:i + chunk], q[i:i + chunk])
    if flush:
        found += det.flush()
    return {side: np.array(sorted(x for x, s in found if s == side)) for side in SIDES}
