"""Per-stream cycle assembly: a ring buffer of (t, q) closed into cycles at each IC.

One :class:`CycleAssembler` per stream. Push frames as they arrive, then report each initial
contact (detected or external, e.g. force plates) with :meth:`CycleAssembler.on_ic`. The
interval from the previous IC of the same side to this one is checked (duration, gaps,
non-finite samples, plausible angles, still buffered) and resampled to ``n_frames`` frames.

Reject reasons (``GaitError.reason``): ``cycle_too_short``, ``cycle_too_long``, ``gap``,
``nan``, ``implausible_angles``, ``buffer_overrun``, ``ic_not_increasing``,
``ic_after_data``, ``before_first_frame``, ``missed_ic``, ``step_asymmetry``, plus
``bad_side``/``bad_shape``/``time_not_increasing`` for misuse.
The first IC of a side opens the first cycle and returns ``None`` (not a reject).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import GaitError
from g2h_edge.gait.config import CycleConfig
from g2h_edge.gait.convention import channel_extremes
from g2h_edge.gait.resample import interp_cycle, resample_cycle
from g2h_edge.schema import IN_COLS, N_IN, SIDES

__all__ = ["Cycle", "CycleAssembler"]


@dataclass(frozen=True)
class Cycle:
    """One gait cycle, IC to next IC of ``side``; ``x`` (n_frames, 10) float32 degrees in
    IN_COLS order, NOT mirrored (the left hip's model input is ``mirror_sides(x)``)."""

    side: str
    index: int
    t_start: float
    t_end: float
    x: np.ndarray
    quality: dict = field(default_factory=dict)


def _reject(msg: str, reason: str, side: str, index: int, t0: float, t1: float) -> GaitError:
    return GaitError(msg, reason=reason, side=side, index=index, t_start=t0, t_end=t1)


def _median(v: np.ndarray) -> float:
    """np.median of a finite 1-D array without its NaN checks and dispatch (same value:
    the middle element, or the mean of the two middle ones)."""
    s = np.sort(v)
    if s.shape[0] == 0:
        return float("nan")
    m = s.shape[0] // 2
    return float(s[m]) if s.shape[0] % 2 else float((s[m - 1] + s[m]) / 2.0)


class CycleAssembler:
    """Ring buffer of one stream's frames and the IC-to-IC cycle builder.

    The buffer keeps at least the last ``config.buffer_s`` seconds (and never more than
    ``config.max_buffer_frames`` frames); memory grows only until that span is held.
    """

    def __init__(self, config: CycleConfig | None = None):
        self.config = config if config is not None else CycleConfig()
        cap = 256
        self.t_ = np.empty(cap, dtype=np.float64)
        self.q_ = np.empty((cap, N_IN), dtype=np.float32)
        self.lo_ = 0  # first valid row
        self.hi_ = 0  # one past the last valid row
        self.dropped_ = False  # whether old frames were ever forgotten
        self.last_ic_: dict[str, float | None] = {s: None for s in SIDES}
        self.count_: dict[str, int] = {s: 0 for s in SIDES}  # closed intervals per side
        self.ics_: dict[str, deque] = {s: deque(maxlen=8) for s in SIDES}  # recent ICs
        # (10, 2) limits as an array once (the config is frozen), not once per cycle
        self.limits_ = np.asarray(self.config.angle_limits_deg, dtype=np.float64)

    # ------------------------------------------------------------------ buffer
    def __len__(self) -> int:
        return self.hi_ - self.lo_

    @property
    def t_last(self) -> float | None:
        """Time of the newest buffered frame (None when empty)."""
        return float(self.t_[self.hi_ - 1]) if self.hi_ > self.lo_ else None

    def buffered(self) -> tuple[np.ndarray, np.ndarray]:
        """Views of the buffered ``t`` (m,) and ``q`` (m, 10) (do not modify)."""
        return self.t_[self.lo_ : self.hi_], self.q_[self.lo_ : self.hi_]

    def push(self, t, q) -> None:
        """Append frames ``t`` (n,) seconds, strictly increasing and after the last frame,
        and ``q`` (n, 10) degrees in IN_COLS order. Non-finite samples are stored; a cycle
        containing them is rejected with reason ``nan``."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        q = np.asarray(q, dtype=np.float32)
        n = t.shape[0]
        if q.ndim != 2 or q.shape != (n, N_IN):
            raise GaitError(
                f"push needs t (n,) and q (n, {N_IN}), got {t.shape} and {q.shape}", reason="bad_shape"
            )
        if n == 0:
            return
        last = self.t_last
        if (last is not None and not t[0] > last) or (n > 1 and not (t[1:] > t[:-1]).all()):
            raise GaitError(
                f"frame times must increase strictly (last buffered {last}, got {t[:3].tolist()}...)",
                reason="time_not_increasing",
            )
        self._make_room(n, float(t[-1]))
        self.t_[self.hi_ : self.hi_ + n] = t
        self.q_[self.hi_ : self.hi_ + n] = q
        self.hi_ += n

    def _make_room(self, n: int, t_new_last: float) -> None:
        cfg = self.config
        if n > cfg.max_buffer_frames:  # a single chunk larger than the cap
            raise GaitError(
                f"{n} frames in one push exceed max_buffer_frames ({cfg.max_buffer_frames})",
                reason="bad_shape",
            )
        # forget frames older than buffer_s before the newest one (keep one frame before the
        # horizon so a cycle starting exactly there still has its bracketing sample)
        horizon = t_new_last - cfg.buffer_s
        keep = int(np.searchsorted(self.t_[self.lo_ : self.hi_], horizon, side="right")) - 1
        self.lo_ += max(keep, 0)
        self.dropped_ = self.dropped_ or keep > 0
        excess = (self.hi_ - self.lo_) + n - cfg.max_buffer_frames
        if excess > 0:  # hard frame cap: drop the oldest
            self.lo_ = min(self.lo_ + excess, self.hi_)
            self.dropped_ = True
        need = (self.hi_ - self.lo_) + n
        cap = self.t_.shape[0]
        if self.hi_ + n <= cap:
            return
        if need * 2 > cap:  # grow (amortised O(1) per frame)
            cap = max(cap * 2, need * 2)
        t_new = np.empty(cap, dtype=np.float64)
        q_new = np.empty((cap, N_IN), dtype=np.float32)
        m = self.hi_ - self.lo_
        t_new[:m] = self.t_[self.lo_ : self.hi_]
        q_new[:m] = self.q_[self.lo_ : self.hi_]
        self.t_, self.q_, self.lo_, self.hi_ = t_new, q_new, 0, m

    def reset(self) -> None:
        """Forget frames and ICs (e.g. after a long silence)."""
        self.lo_ = self.hi_ = 0
        self.dropped_ = False
        self.last_ic_ = {s: None for s in SIDES}
        self.ics_ = {s: deque(maxlen=8) for s in SIDES}

    # ------------------------------------------------------------------ cycles
    def on_ic(self, t_ic: float, side: str, *, source: str = "detector") -> Cycle | None:
        """Record an initial contact of ``side`` at ``t_ic`` (s) and close the cycle that
        began at the previous IC of that side. Returns the :class:`Cycle`, ``None`` for the
        first IC of a side, or raises :class:`GaitError` (``.reason``, and ``.side``,
        ``.index``, ``.t_start``, ``.t_end`` for the runtime's reject message).

        The IC becomes the start of the next cycle even when this one is rejected (except
        for ``ic_not_increasing`` and ``ic_after_data``, which leave the state unchanged).
        Push the frames up to ``t_ic`` before calling this.
        """
        if side not in SIDES:
            raise GaitError(f"side must be one of {SIDES}, got {side!r}", reason="bad_side")
        t_ic = float(t_ic)
        t0 = self.last_ic_[side]
        if not math.isfinite(t_ic) or (t0 is not None and not t_ic > t0):
            raise _reject(
                f"{side} IC at {t_ic!r} s is not after the previous one ({t0} s)",
                "ic_not_increasing",
                side,
                self.count_[side],
                t_ic if t0 is None else t0,
                t_ic,
            )
        t_last = self.t_last
        if t_last is None or t_ic > t_last + self._half_frame():
            raise _reject(
                f"{side} IC at {t_ic:.4f} s is after the last frame ({t_last} s); push the frames first",
                "ic_after_data",
                side,
                self.count_[side],
                t_ic if t0 is None else t0,
                t_ic,
            )
        self.last_ic_[side] = t_ic
        self.ics_[side].append(t_ic)
        if t0 is None:
            return None
        index = self.count_[side]
        self.count_[side] += 1
        frac = self._check_steps(side, index, t0, t_ic)
        x, quality = self._build(side, index, t0, t_ic, min(t_ic, t_last))
        quality["ic_source"] = source
        quality["step_fraction"] = frac
        return Cycle(side=side, index=index, t_start=t0, t_end=t_ic, x=x, quality=quality)

    def _check_steps(self, side: str, index: int, t0: float, t1: float) -> float | None:
        """The other side's ICs inside the cycle: two mean this side missed one (a double
        cycle); one must fall near mid-cycle. Returns its phase (None when there is none)."""
        cfg = self.config
        dur = t1 - t0
        if dur < cfg.min_cycle_s or dur > cfg.max_cycle_s or cfg.min_step_fraction <= 0:
            return None  # duration rejects come first (in _build)
        other = [tc for tc in self.ics_["L" if side == "R" else "R"] if t0 < tc < t1]
        if len(other) >= 2:
            raise _reject(
                f"{side} cycle [{t0:.3f}, {t1:.3f}] s holds {len(other)} ICs of the "
                f"other side: a {side} IC was missed",
                "missed_ic",
                side,
                index,
                t0,
                t1,
            )
        if not other:
            return None
        frac = (other[0] - t0) / dur
        if not cfg.min_step_fraction <= frac <= 1.0 - cfg.min_step_fraction:
            raise _reject(
                f"{side} cycle [{t0:.3f}, {t1:.3f}] s has the other side's IC at "
                f"{100 * frac:.0f} % (allowed {100 * cfg.min_step_fraction:.0f}-"
                f"{100 * (1 - cfg.min_step_fraction):.0f} %): a wrong IC?",
                "step_asymmetry",
                side,
                index,
                t0,
                t1,
            )
        return frac

    def _half_frame(self) -> float:
        m = self.hi_ - self.lo_
        if m < 2:
            return 0.0
        return 0.5 * float(self.t_[self.hi_ - 1] - self.t_[self.hi_ - 2])

    def _build(self, side: str, index: int, t0: float, t_ic: float, t1: float):
        """Check and resample [t0, t1]; t1 is t_ic clamped to the newest frame."""
        cfg = self.config
        dur = t_ic - t0
        if dur < cfg.min_cycle_s:
            raise _reject(
                f"{side} cycle of {dur:.3f} s is shorter than min_cycle_s ({cfg.min_cycle_s} s)",
                "cycle_too_short",
                side,
                index,
                t0,
                t_ic,
            )
        if dur > cfg.max_cycle_s:
            raise _reject(
                f"{side} cycle of {dur:.3f} s is longer than max_cycle_s ({cfg.max_cycle_s} s)",
                "cycle_too_long",
                side,
                index,
                t0,
                t_ic,
            )
        t, q = self.buffered()
        i0 = int(np.searchsorted(t, t0, side="right")) - 1  # last sample <= t0
        i1 = int(np.searchsorted(t, t1, side="left"))  # first sample >= t1
        if i0 < 0 and self.dropped_:
            raise _reject(
                f"{side} cycle start {t0:.4f} s is no longer buffered (oldest "
                f"frame {t[0]:.4f} s); raise buffer_s",
                "buffer_overrun",
                side,
                index,
                t0,
                t_ic,
            )
        if i0 < 0:
            raise _reject(
                f"{side} cycle start {t0:.4f} s is before the stream's first frame ({t[0]:.4f} s)",
                "before_first_frame",
                side,
                index,
                t0,
                t_ic,
            )
        i1 = min(i1, t.shape[0] - 1)
        ts, qs = t[i0 : i1 + 1], q[i0 : i1 + 1]
        _, lo, hi, finite = channel_extremes(qs)  # also serve the plausibility check
        if not finite:
            bad = np.argwhere(~np.isfinite(qs))[0]
            raise _reject(
                f"{side} cycle holds non-finite angles ({IN_COLS[bad[1]]} at {ts[bad[0]]:.4f} s)",
                "nan",
                side,
                index,
                t0,
                t1,
            )
        dt = ts[1:] - ts[:-1]
        max_gap = float(dt.max()) if dt.size else 0.0
        if max_gap > cfg.max_gap_s:
            at = float(ts[int(np.argmax(dt))])
            raise _reject(
                f"{side} cycle has a {max_gap * 1e3:.1f} ms gap after {at:.4f} s "
                f"(max_gap_s {cfg.max_gap_s} s)",
                "gap",
                side,
                index,
                t0,
                t1,
            )
        self._check_limits(lo, hi, side, index, t0, t1)
        if ts.shape[0] < 2 or not t1 > t0:  # what resample_cycle would refuse
            x = resample_cycle(ts, qs, t0, t1, cfg.n_frames)
        else:
            x = interp_cycle(ts, qs, t0, t1, cfg.n_frames, dt)
        frame = _median(dt)
        # frames missing inside gaps; none when no gap reaches 1.5 frames (rint < 2)
        filled = 0 if max_gap < 1.5 * frame else int(np.sum(np.maximum(np.rint(dt / frame) - 1.0, 0.0)))
        # samples within [t0, t1] (ts is sorted)
        inside = int(ts.searchsorted(t1, side="right")) - int(ts.searchsorted(t0, side="left"))
        quality = {
            "duration_s": dur,
            "n_source_frames": inside,
            "rate_hz": 1.0 / frame,
            "effective_rate_hz": (inside - 1) / dur if inside > 1 else 0.0,
            "max_gap_s": max_gap,
            "gap_filled_frames": filled,
        }
        return x, quality

    def _check_limits(self, lo, hi, side, index, t0, t1) -> None:
        """``lo``/``hi``: the cycle's per-channel minimum and maximum (10,)."""
        lim = self.limits_  # (10, 2)
        bad = np.flatnonzero((lo < lim[:, 0]) | (hi > lim[:, 1]))
        if bad.size:
            c = int(bad[0])
            raise _reject(
                f"{side} cycle has implausible {IN_COLS[c]}: range "
                f"[{lo[c]:.1f}, {hi[c]:.1f}] deg outside [{lim[c, 0]:.0f}, "
                f"{lim[c, 1]:.0f}] (radians declared as degrees? old gait2354 "
                "knee sign?)",
                "implausible_angles",
                side,
                index,
                t0,
                t1,
            )
