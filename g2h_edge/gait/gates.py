"""The gates of the online IC detector, as pure functions (see :mod:`g2h_edge.gait.detector`).

:func:`fit_peak` places a reach maximum in sub-frame time; :class:`PeakMeasures` holds what
the gates look at for one maximum; :func:`gate_peak` names the first gate that refuses it.
docs/gait_events.md gives the rules, their defaults and the crafted trace that each gate is
tested on (tests/gait/test_gates.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from g2h_edge.gait.config import ICDetectorConfig

__all__ = ["GATES", "PeakMeasures", "gate_peak", "fit_peak", "poly_fit"]

#: the gates a confirmed reach maximum must pass, in the order they are checked
GATES = (
    "swing",
    "start_lead",
    "start_edge",
    "start_curvature",
    "start_drop",
    "lead",
    "other_leg",
    "knee",
    "stride",
    "step",
)


def poly_fit(x, y, quadratic: bool):
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


def fit_peak(t, y, t_peak: float, half_s: float, t_max: float | None = None, *, clip: bool = True):
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
    ab = poly_fit(x, y[w], True)
    if ab is None or not ab[0] < 0:
        return t_peak, (0.0 if ab is None else float(ab[0]))
    xv = -ab[1] / (2.0 * ab[0])
    if clip:
        xv = min(max(xv, float(x[0])), float(x[-1]))
    return t_peak + xv, float(ab[0])


class PeakMeasures(NamedTuple):
    """What the gates look at, measured at one confirmed reach maximum of one side."""

    #: this foot's reach minus the other foot's, at the maximum (thigh lengths)
    lead_reach: float
    #: rise of the reach from the stance minimum before it (or, at the start of a stream,
    #: from the lowest reach since the stream began)
    swing_rise_reach: float
    #: a stance minimum was seen before this maximum (else: start of a stream)
    stance_seen: bool
    #: slope of the other foot's reach around the maximum (thigh lengths / s)
    other_speed_reach_s: float
    #: knee angle at the maximum (deg)
    knee_deg: float
    #: how long before the sampled maximum the fitted parabola's vertex lies (s)
    vertex_lead_s: float
    #: the fitted parabola's curvature (< 0 for a peak; 0 when no fit)
    curvature: float
    #: fall of the reach from the maximum to the last sample within fit_half_s after it
    drop_after_reach: float


def gate_peak(m: PeakMeasures, config: ICDetectorConfig) -> str | None:
    """The name of the first gate (:data:`GATES`, timing gates excepted) that refuses the
    maximum measured in ``m``, or None when it passes them all."""
    c = config
    if m.swing_rise_reach < c.min_swing_reach:
        if m.stance_seen:
            return "swing"
        # start of a stream, swing not seen: the peak itself must be convincing
        if m.lead_reach < c.start_min_lead_reach:
            return "start_lead"
        if m.vertex_lead_s > c.start_edge_s:
            return "start_edge"
        if not m.curvature < 0:
            return "start_curvature"
        if m.drop_after_reach > c.start_max_drop_reach:
            return "start_drop"
    if m.lead_reach < c.min_lead_reach:
        return "lead"
    if m.other_speed_reach_s > c.max_other_speed_reach_s:
        return "other_leg"
    if m.knee_deg > c.max_knee_ic_deg:
        return "knee"
    return None
