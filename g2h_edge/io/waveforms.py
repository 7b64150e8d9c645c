"""Smooth periodic joint-angle templates of one right gait cycle (synthetic data only).

Each channel's template is a textbook-shaped walking curve given by key points (percent of
the cycle from right initial contact, degrees), passed through a periodic cubic spline and
truncated to :data:`N_HARMONICS` Fourier harmonics, then standardised (zero mean, unit SD
over the cycle). Shapes, not data: they were written by hand from the usual sagittal/frontal
gait curves (knee: loading peak ~15-20 deg at ~12 %, swing peak ~60 deg at ~72 %, extension
minimum just before IC; hip flexion maximal in late swing near IC, extension ~-10 deg at
~52 %; ankle plantar-flexion after IC, dorsiflexion in mid stance, push-off ~62 %).
Left channels use the same templates shifted by half a cycle.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = [
    "N_HARMONICS",
    "KEY_POINTS",
    "template_coefficients",
    "eval_template",
    "phase_warp",
    "warp_for_stance",
]

N_HARMONICS = 8

#: joint -> ((percent, degrees), ...) of one cycle from right IC (0 %) to the next (100 %)
KEY_POINTS: dict[str, tuple[tuple[float, float], ...]] = {
    "hip_flexion": (
        (0, 25),
        (10, 20),
        (25, 8),
        (40, -7),
        (52, -13),
        (60, -8),
        (70, 8),
        (85, 24),
        (93, 27),
        (100, 25),
    ),
    "hip_adduction": (
        (0, -2),
        (10, 3),
        (20, 6),
        (40, 5),
        (50, 3),
        (60, -6),
        (70, -11),
        (80, -8),
        (90, -4),
        (100, -2),
    ),
    "hip_rotation": ((0, -4), (15, -5), (40, -1), (55, 0), (65, -5), (75, -3), (88, -8), (100, -4)),
    "knee_angle": (
        (0, 7),
        (5, 11),
        (13, 19),
        (22, 16),
        (35, 8),
        (45, 7),
        (55, 17),
        (62, 38),
        (72, 62),
        (82, 48),
        (92, 17),
        (97.5, 5),
        (100, 7),
    ),
    "ankle_angle": (
        (0, 0),
        (6, -5),
        (15, 2),
        (30, 6),
        (45, 10),
        (52, 10),
        (62, -13),
        (68, -10),
        (80, 2),
        (90, 2),
        (100, 0),
    ),
}


def _fourier_of_keypoints(points) -> np.ndarray:
    """(2*N_HARMONICS+1,) coefficients [a0, a1, b1, a2, b2, ...] of the standardised curve."""
    pct = np.array([p for p, _ in points], dtype=float) / 100.0
    val = np.array([v for _, v in points], dtype=float)
    spline = CubicSpline(pct, val, bc_type="periodic")
    m = 720
    phi = np.arange(m) / m
    spec = np.fft.rfft(spline(phi)) / m  # complex, (m//2+1,)
    coef = np.zeros(2 * N_HARMONICS + 1)
    coef[1::2] = 2 * spec[1 : N_HARMONICS + 1].real  # cos terms
    coef[2::2] = -2 * spec[1 : N_HARMONICS + 1].imag  # sin terms
    # standardise: zero mean (a0 = 0) and unit RMS over the cycle
    coef /= np.sqrt(0.5 * np.sum(coef[1:] ** 2))
    return coef


_COEF = {joint: _fourier_of_keypoints(pts) for joint, pts in KEY_POINTS.items()}


def template_coefficients(joint: str) -> np.ndarray:
    """Fourier coefficients (17,) of a joint's standardised template (a copy)."""
    return _COEF[joint].copy()


def eval_template(coef: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Evaluate a Fourier series (17,) or (..., 17) at ``phase`` (cycles, any shape)."""
    h = np.arange(1, N_HARMONICS + 1)  # (H,)
    ang = 2 * np.pi * np.asarray(phase)[..., None] * h  # (..., H)
    coef = np.asarray(coef)
    return coef[..., 0] + np.sum(coef[..., 1::2] * np.cos(ang) + coef[..., 2::2] * np.sin(ang), axis=-1)


def phase_warp(phase: np.ndarray, a) -> np.ndarray:
    """Monotone warp phi + a*sin(2*pi*phi)/(2*pi) (|a| < 1): moves toe-off, keeps ICs."""
    return phase + np.asarray(a) * np.sin(2 * np.pi * phase) / (2 * np.pi)


def warp_for_stance(stance: float | np.ndarray) -> np.ndarray:
    """Warp parameter that puts the templates' toe-off (60 %) at ``stance`` (fraction)."""
    s = np.asarray(stance, dtype=float)
    return (0.6 - s) * 2 * np.pi / np.sin(2 * np.pi * s)
