"""Time-normalisation of one gait cycle: linear interpolation IC to IC, inclusive."""

from __future__ import annotations

import numpy as np

from g2h_edge.errors import GaitError
from g2h_edge.schema import T

__all__ = ["resample_cycle", "interp_cycle"]


def resample_cycle(t, q, t0: float, t1: float, n: int = T) -> np.ndarray:
    """Resample ``q`` (m, C) sampled at times ``t`` (m,) onto ``n`` instants from ``t0`` to
    ``t1`` inclusive (sub-frame IC times allowed), by linear interpolation in time.

    Equivalent to ``np.interp(np.linspace(t0, t1, n), t, q[:, c])`` for every channel ``c``,
    vectorised over channels. ``t`` must be strictly increasing and cover ``[t0, t1]``
    (no extrapolation). Returns ``(n, C)`` float32.
    """
    t = np.asarray(t, dtype=np.float64)
    q = np.asarray(q)
    if t.ndim != 1 or q.ndim != 2 or q.shape[0] != t.shape[0]:
        raise GaitError(
            f"resample_cycle needs t (m,) and q (m, C), got {t.shape} and {q.shape}", reason="bad_shape"
        )
    if t.shape[0] < 2:
        raise GaitError(f"resample_cycle needs at least 2 samples, got {t.shape[0]}", reason="too_few_frames")
    if n < 2:
        raise GaitError(f"resample_cycle needs n >= 2 output frames, got {n}", reason="bad_shape")
    t0, t1 = float(t0), float(t1)
    if not t1 > t0:
        raise GaitError(f"cycle end {t1!r} s must be after its start {t0!r} s", reason="bad_interval")
    dt = np.diff(t)
    if not np.all(dt > 0):
        raise GaitError("sample times must be strictly increasing", reason="time_not_increasing")
    tol = 1e-9 * max(1.0, abs(t1))
    if t0 < t[0] - tol or t1 > t[-1] + tol:
        raise GaitError(
            f"cycle [{t0:.6f}, {t1:.6f}] s is not covered by the samples "
            f"[{t[0]:.6f}, {t[-1]:.6f}] s (no extrapolation)",
            reason="out_of_range",
        )
    return interp_cycle(t, q, t0, t1, n, dt)


def _grid(t0: float, t1: float, n: int) -> np.ndarray:
    """``np.linspace(t0, t1, n)``, bit for bit (the same arange * step + start, last value
    set to t1), without linspace's generic-argument handling (a third of a small cycle's
    resampling cost)."""
    step = (t1 - t0) / (n - 1)
    if step == 0.0:  # denormal spans: linspace's own special case
        return np.linspace(t0, t1, n)
    y = np.arange(n, dtype=np.float64)
    y *= step
    y += t0
    y[-1] = t1
    return y


def interp_cycle(t: np.ndarray, q: np.ndarray, t0: float, t1: float, n: int, dt: np.ndarray) -> np.ndarray:
    """:func:`resample_cycle` without its checks, for callers that made them (the cycle
    assembler): ``t`` (m,) float64 strictly increasing and covering [t0, t1], ``dt`` its
    differences, ``q`` (m, C). Same arithmetic, so the same float32 result bit for bit."""
    tq = _grid(float(t0), float(t1), n)  # (n,)
    # index of the sample at or before each query instant, kept inside [0, m-2]
    i = t.searchsorted(tq, side="right")
    i -= 1
    np.minimum(np.maximum(i, 0, out=i), t.shape[0] - 2, out=i)  # == np.clip, cheaper
    w = tq - t.take(i)
    w /= dt.take(i)
    np.minimum(np.maximum(w, 0.0, out=w), 1.0, out=w)  # (n,)
    w = w[:, None]
    qf = q.astype(np.float64, copy=False)
    out = qf.take(i, axis=0) * (1.0 - w) + qf.take(i + 1, axis=0) * w  # (n, C)
    return out.astype(np.float32)
