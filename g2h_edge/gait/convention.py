"""Angle-convention checks: refuse radians and the old gait2354 knee sign, never guess.

The models were trained on OpenSim Rajagopal-2016 coordinates in degrees (knee_angle
positive in flexion, 0..~70 deg while walking). Two real-world mistakes produce inputs that
look numerically harmless but give meaningless predictions:

- ``radians_as_degrees``: angles exported in radians. A walking trial in degrees always has
  some angle beyond +-pi (the knee reaches ~60 deg in swing); in radians every angle stays
  within +-pi while the knee still moves by ~1 unit, and by much more than the hip's
  adduction/rotation (which tells walking from sway or noise of someone standing still).
- ``knee_sign_gait2354``: the older gait2354/gait2392 OpenSim models define knee_angle
  NEGATIVE in flexion (-70..0 deg). Detected as a knee that is mostly negative and reaches
  well below any hyper-extension (< -15 deg).

Between gait2354 and Rajagopal only the knee sign differs for the ten model inputs: hip
flexion/adduction/rotation and ankle_angle (dorsiflexion positive) share their definitions
(checked on OpenSim's subject01_walk1: after flipping the knees every channel lies in the
ranges of the Rajagopal trials of Schreiber 2019). :func:`convert_gait2354` flips only the
two knee channels.

Checks refuse only on positive evidence: a short window that cannot tell yet passes
(:func:`assess_convention` returns ``"undecided"`` for it). :class:`ConventionMonitor` is the
cheap incremental form for streams: it keeps per-channel running extrema and knee sign
counts, O(frames x 10) per update.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import ConventionError
from g2h_edge.schema import IN_COLS, N_IN

__all__ = [
    "check_convention",
    "check_cycle_convention",
    "channel_extremes",
    "assess_convention",
    "convert_gait2354",
    "ConventionMonitor",
    "KNEE_INDEX",
    "RADIANS_MAX_ABS",
    "RADIANS_MIN_KNEE_PTP",
    "GAIT2354_KNEE_MIN_DEG",
    "OK_MIN_KNEE_PTP_DEG",
]

#: columns of the two knee angles in IN_COLS order
KNEE_INDEX: tuple[int, ...] = (IN_COLS.index("knee_angle_r"), IN_COLS.index("knee_angle_l"))
#: every |angle| below this (pi plus a margin) is what radians look like
RADIANS_MAX_ABS: float = 3.3
#: ...and the knee must still move this much (units of the data) to call it radians
#: rather than a subject standing still: walking knees move ~1 rad per cycle
RADIANS_MIN_KNEE_PTP: float = 0.5
#: ...and by this factor more than the median range of hip adduction/rotation
RADIANS_KNEE_RATIO: float = 1.8
_FRONTAL_INDEX = tuple(IN_COLS.index(c) for c in IN_COLS if "adduction" in c or "rotation" in c)
_FRONTAL_LIST = list(_FRONTAL_INDEX)
_KNEE_LIST = list(KNEE_INDEX)
#: a knee below this (deg) is flexion in the gait2354 sign, not hyper-extension
GAIT2354_KNEE_MIN_DEG: float = -15.0
#: ...and more than this fraction of knee samples is negative
GAIT2354_NEG_FRACTION: float = 0.5
#: "ok" needs a knee that has moved this much (deg): a swing phase has been seen, so a
#: gait2354 knee would have shown its negative flexion
OK_MIN_KNEE_PTP_DEG: float = 25.0

_TO_DEG_HINT = "multiply the angles by 180/pi (OpenSim .mot/.sto: set inDegrees=no in the header)"
_GAIT2354_HINT = (
    "convert with --convert-gait2354 (or g2h_edge.gait.convention.convert_gait2354), "
    "which flips the sign of knee_angle_r and knee_angle_l"
)


def channel_extremes(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(qt, lo, hi, finite)`` of a block ``q`` (n, C), n > 0: its transposed copy (C, n),
    per-channel minimum and maximum (C,) in q's dtype, and whether every value is finite.
    Reducing the rows of the transposed copy is about three times cheaper than reducing
    ``q`` along axis 0; NaN and inf show in the extremes, so the element-wise scan runs only
    when they do (or when their float64 sum overflows). Used per cycle by the assembler's
    checks and the convention check."""
    qt = q.T.copy()
    lo, hi = qt.min(axis=1), qt.max(axis=1)
    finite = math.isfinite(float(lo.sum(dtype=np.float64) + hi.sum(dtype=np.float64))) or bool(
        np.isfinite(q).all()
    )
    return qt, lo, hi, finite


def _median(values: list) -> float:
    """np.median of a few floats without its overhead (same value: the middle one, or the
    mean of the two middle ones; NaN when any value is NaN, like np.median)."""
    if any(v != v for v in values):
        return float("nan")
    v = sorted(values)
    m = len(v) // 2
    return float(v[m]) if len(v) % 2 else float((v[m - 1] + v[m]) / 2.0)


def _as_frames(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != N_IN:
        raise ConventionError(f"expected angles of shape (n, {N_IN}), got {q.shape}", reason="bad_shape")
    return q


@dataclass
class _Stats:
    """Sufficient statistics of a window for the convention rules."""

    n: int = 0
    max_abs: float = 0.0
    q_min: np.ndarray = field(default_factory=lambda: np.full(N_IN, np.inf))
    q_max: np.ndarray = field(default_factory=lambda: np.full(N_IN, -np.inf))
    knee_neg: int = 0  # knee samples < 0 (both sides together)
    knee_count: int = 0

    def add(self, q: np.ndarray) -> None:
        if q.shape[0] and np.isfinite(q).all():
            self._add_finite(q)
            return
        finite = np.where(np.isfinite(q), q, np.nan)
        if not np.isfinite(finite).any():
            return
        knees = finite[:, list(KNEE_INDEX)]  # (n, 2)
        self.n += q.shape[0]
        self.max_abs = max(self.max_abs, float(np.nanmax(np.abs(finite))))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channel in a block
            self.q_min = np.fmin(self.q_min, np.nanmin(finite, axis=0))
            self.q_max = np.fmax(self.q_max, np.nanmax(finite, axis=0))
            self.knee_neg += int(np.sum(knees < 0))
        self.knee_count += int(np.sum(np.isfinite(knees)))

    def _add_finite(self, q: np.ndarray) -> None:
        """:meth:`add` for an all-finite block (a checked cycle): the same statistics
        without the NaN-aware reductions (a few times cheaper on a 180 x 10 cycle)."""
        qt, lo, hi, _ = channel_extremes(q)
        self._add_extremes(qt, lo, hi)

    def _add_extremes(self, qt: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Fold in an all-finite block from :func:`channel_extremes`: ``qt`` (10, n), its
        per-channel minimum ``lo`` and maximum ``hi`` (10,)."""
        lo, hi = lo.astype(np.float64, copy=False), hi.astype(np.float64, copy=False)
        self.n += qt.shape[1]
        # max |q| == max(-min, max): abs is exact, so this equals nanmax(abs(q))
        self.max_abs = max(self.max_abs, float(-lo.min()), float(hi.max()))
        self.q_min = np.fmin(self.q_min, lo)
        self.q_max = np.fmax(self.q_max, hi)
        k_r, k_l = qt[KNEE_INDEX[0]], qt[KNEE_INDEX[1]]  # rows: no fancy-index copy
        self.knee_neg += int(np.count_nonzero(k_r < 0)) + int(np.count_nonzero(k_l < 0))
        self.knee_count += 2 * qt.shape[1]

    def verdict(self) -> tuple[str, str]:
        """("ok"|"undecided"|reason, message)."""
        if self.n == 0 or self.knee_count == 0:
            return "undecided", "no finite frames yet"
        ptp = self.q_max - self.q_min  # (10,), inf if unseen
        knee_ptp = float(np.max(ptp[_KNEE_LIST]))
        frontal = _median(ptp[_FRONTAL_LIST].tolist())
        if self.max_abs < RADIANS_MAX_ABS:
            # walking (not sway or noise): the knee moves far more than hip add/rotation
            if knee_ptp >= RADIANS_MIN_KNEE_PTP and knee_ptp >= RADIANS_KNEE_RATIO * frontal:
                return "radians_as_degrees", (
                    f"the angles look like radians, not degrees: every |angle| <= "
                    f"{self.max_abs:.2f} while the knee moves by {knee_ptp:.2f} (walking in "
                    f"degrees reaches ~60 deg at the knee); {_TO_DEG_HINT}"
                )
            return "undecided", "all angles small and the knee barely moves"
        neg_frac = self.knee_neg / self.knee_count
        knee_low = float(np.min(self.q_min[list(KNEE_INDEX)]))
        if knee_low < GAIT2354_KNEE_MIN_DEG and neg_frac > GAIT2354_NEG_FRACTION:
            return "knee_sign_gait2354", (
                f"the knee angle is mostly negative ({100 * neg_frac:.0f}% of samples < 0, "
                f"minimum {knee_low:.1f} deg): this is the gait2354/gait2392 OpenSim convention "
                f"(knee negative in flexion), the models expect Rajagopal 2016 (knee positive "
                f"in flexion, 0..~70 deg); {_GAIT2354_HINT}"
            )
        if knee_ptp < OK_MIN_KNEE_PTP_DEG:
            return "undecided", "no swing-phase knee flexion seen yet"
        return "ok", "degrees, Rajagopal knee sign"


def assess_convention(q) -> tuple[str, str]:
    """Judge a window of frames ``q`` (n, 10) in IN_COLS order.

    Returns ``(verdict, message)`` with verdict ``"ok"``, ``"undecided"`` (not enough
    movement to tell yet) or a reason code (``"radians_as_degrees"``,
    ``"knee_sign_gait2354"``). Non-finite values are ignored here (other checks own them).
    """
    st = _Stats()
    st.add(_as_frames(q))
    return st.verdict()


def check_convention(q, *, rate_hz: float | None = None) -> None:
    """Raise :class:`ConventionError` when ``q`` (n, 10) degrees is in a wrong convention.

    ``reason`` is ``"radians_as_degrees"`` or ``"knee_sign_gait2354"`` and the message says
    what was detected and how to convert. Windows without enough evidence pass (see
    :func:`assess_convention`); ``rate_hz`` is accepted for API symmetry and not needed by
    the current rules (they use amplitudes only, so they work at any rate).
    """
    del rate_hz
    verdict, msg = assess_convention(q)
    if verdict not in ("ok", "undecided"):
        raise ConventionError(msg, reason=verdict)


def check_cycle_convention(x: np.ndarray) -> None:
    """:func:`check_convention` for one all-finite checked cycle ``x`` (n, 10) (float32 or
    float64): the same statistics, verdict and error, from the per-channel extremes of the
    transposed cycle (the runtime calls this once per cycle; a few times cheaper)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != N_IN or x.shape[0] == 0:
        check_convention(x)  # its errors and its verdict for an empty window
        return
    xt, lo, hi, finite = channel_extremes(x)
    if not finite:  # not a checked cycle: the NaN-aware reference
        check_convention(x)
        return
    st = _Stats()
    st._add_extremes(xt, lo, hi)  # the same values as _add_finite on a float64 copy
    verdict, msg = st.verdict()
    if verdict not in ("ok", "undecided"):
        raise ConventionError(msg, reason=verdict)


def convert_gait2354(q) -> np.ndarray:
    """Return a copy of ``q`` (..., 10) with the gait2354 knee sign flipped to Rajagopal's."""
    out = np.array(q, dtype=np.result_type(np.asarray(q).dtype, np.float32), copy=True)
    if out.shape[-1] != N_IN:
        raise ConventionError(
            f"expected {N_IN} channels in the last axis, got {out.shape}", reason="bad_shape"
        )
    out[..., list(KNEE_INDEX)] *= -1
    return out


class ConventionMonitor:
    """Incremental convention check for one stream.

    ``update(q)`` folds a block of frames (n, 10) into running statistics and returns the
    verdict so far; once a wrong convention is detected it raises :class:`ConventionError`
    (and keeps raising on later updates). Cost: one pass over the new frames.
    """

    def __init__(self) -> None:
        self.stats_ = _Stats()
        self.verdict_: str = "undecided"
        self.message_: str = "no frames yet"

    def update(self, q) -> str:
        """Add frames; return "ok" or "undecided"; raise ConventionError when wrong."""
        if self.verdict_ not in ("ok", "undecided"):
            raise ConventionError(self.message_, reason=self.verdict_)
        self.stats_.add(_as_frames(q))
        self.verdict_, self.message_ = self.stats_.verdict()
        if self.verdict_ not in ("ok", "undecided"):
            raise ConventionError(self.message_, reason=self.verdict_)
        return self.verdict_

    def reset(self) -> None:
        self.__init__()
