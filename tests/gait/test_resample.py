"""resample_cycle: exact on linear signals, matches np.interp, sub-frame ICs, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import GaitError
from g2h_edge.gait import resample_cycle


def _signals(t):
    # (m, 10): linear ramps with different slopes and offsets plus sinusoids
    cols = [2.0 * t + 1.0, -3.5 * t, 10.0 + 0.0 * t, 40.0 * t - 7.0, 0.25 * t]
    cols += [np.sin(2 * np.pi * f * t) * 30.0 for f in (0.5, 0.9, 1.3, 1.7, 2.1)]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("rate_hz", [50.0, 100.0, 1000.0])
def test_linear_signals_are_exact_at_subframe_ics(rate_hz):
    t = np.arange(0, 2.0, 1.0 / rate_hz) + 0.0037
    q = _signals(t)
    t0, t1 = 0.1234567, 1.3456789  # not on the frame grid
    x = resample_cycle(t, q, t0, t1, n=180)
    assert x.shape == (180, 10) and x.dtype == np.float32
    tq = np.linspace(t0, t1, 180)
    np.testing.assert_allclose(x[:, :5], _signals(tq)[:, :5], rtol=0, atol=2e-5)
    # endpoints are the ICs themselves (inclusive interval)
    np.testing.assert_allclose(x[0, 0], 2.0 * t0 + 1.0, atol=1e-5)
    np.testing.assert_allclose(x[-1, 3], 40.0 * t1 - 7.0, atol=1e-4)


def test_matches_np_interp_per_channel_on_irregular_times():
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.004, 0.02, size=300))
    q = _signals(t) + rng.normal(0, 1.0, size=(300, 10))
    t0, t1 = t[10] + 0.0011, t[250] - 0.0023
    x = resample_cycle(t, q, t0, t1, n=180)
    tq = np.linspace(t0, t1, 180)
    ref = np.stack([np.interp(tq, t, q[:, c]) for c in range(10)], axis=1)
    np.testing.assert_allclose(x, ref.astype(np.float32), rtol=1e-6, atol=1e-5)


def test_sinusoid_error_is_bounded_by_linear_interpolation_error():
    rate = 100.0
    t = np.arange(0, 2.0, 1 / rate)
    q = _signals(t)
    t0, t1 = 0.0551, 1.1579
    x = resample_cycle(t, q, t0, t1)
    truth = _signals(np.linspace(t0, t1, 180))
    # linear interpolation error <= h^2/8 * max|f''| = h^2/8 * 30 (2 pi f)^2
    for c, f in zip(range(5, 10), (0.5, 0.9, 1.3, 1.7, 2.1)):
        bound = (1 / rate) ** 2 / 8 * 30 * (2 * np.pi * f) ** 2 + 1e-4
        assert np.max(np.abs(x[:, c] - truth[:, c])) <= bound


def test_interval_on_exact_samples_returns_the_samples():
    t = np.arange(0, 180) / 100.0
    q = _signals(t)
    x = resample_cycle(t, q, t[0], t[-1], n=180)
    np.testing.assert_allclose(x, q.astype(np.float32), atol=1e-5)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.arange(5.0), np.zeros((4, 10)), 0.0, 1.0), "t \\(m,\\) and q"),
        ((np.arange(1.0), np.zeros((1, 10)), 0.0, 0.0), "at least 2 samples"),
        ((np.arange(5.0), np.zeros((5, 10)), 2.0, 2.0), "must be after its start"),
        ((np.array([0, 1, 1, 2.0]), np.zeros((4, 10)), 0.0, 1.5), "strictly increasing"),
        ((np.arange(5.0), np.zeros((5, 10)), -0.5, 2.0), "not covered"),
        ((np.arange(5.0), np.zeros((5, 10)), 1.0, 4.5), "not covered"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(GaitError, match=match):
        resample_cycle(*args)
