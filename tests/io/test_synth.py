"""Synthetic cohort, labels and streams: schema, statistics, phase relations, events."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import ConfigError
from g2h_edge.io.npz import validate_gait2hip
from g2h_edge.io.synth import (
    MU_X,
    SD_X,
    cycles_to_stream,
    join_cycles,
    make_cohort,
    make_stream,
    synthetic_labels,
)
from g2h_edge.schema import IN_COLS, JM_COLS, MF_COLS, SPEED_LABELS, T

PCT = np.linspace(0.0, 100.0, T)
CH = {c: i for i, c in enumerate(IN_COLS)}


@pytest.fixture(scope="module")
def mf():
    return make_cohort("mf", 20, seed=3, trials_per_condition=2)


def test_schema_and_layout(mf):
    validate_gait2hip(mf)
    assert mf.X.shape == (20 * 3 * 2, T, 10) and mf.Y.shape == (120, T, 14)
    assert mf.X.dtype == np.float32 and mf.Y.dtype == np.float32
    assert mf.out_cols == MF_COLS and mf.task == "mf" and mf.synthetic
    assert list(dict.fromkeys(mf.subject_id)) == [f"H{i:02d}" for i in range(1, 21)]
    assert mf.speed_label[:6].tolist() == ["slow", "slow", "med", "med", "fast", "fast"]
    for sid in np.unique(mf.subject_id):  # one height/mass per subject
        rows = mf.subject_id == sid
        assert np.unique(mf.weight_kg[rows]).size == 1 and np.unique(mf.height_m[rows]).size == 1
    assert 1.5 <= mf.height_m.min() and mf.height_m.max() <= 1.98
    assert 40 <= mf.weight_kg.min() and mf.weight_kg.max() <= 130
    assert np.unique(mf.weight_kg).size >= 15  # masses differ
    assert make_cohort("jm", 120, seed=0, trials_per_condition=1).subject_id[-1] == "H120"


def test_deterministic_per_seed():
    a = make_cohort("jm", 2, seed=5, trials_per_condition=1)
    b = make_cohort("jm", 2, seed=5, trials_per_condition=1)
    c = make_cohort("jm", 2, seed=6, trials_per_condition=1)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)
    assert np.abs(a.X - c.X).max() > 1.0


def test_channel_statistics_match_published_pool(mf):
    x = mf.X.reshape(-1, 10).astype(np.float64)
    np.testing.assert_array_less(np.abs(x.mean(0) - MU_X), 0.1 * SD_X + 0.5)
    np.testing.assert_allclose(x.std(0), SD_X, rtol=0.1)
    # the published numbers themselves (brief: mu_x / sd_x of the training pool)
    np.testing.assert_allclose(MU_X, [16.6, 2.8, -8.0, 21.0, -6.3, 1.2, 23.1, 5.6, 31.9, 8.9])
    np.testing.assert_allclose(SD_X, [22.3, 6.2, 7.2, 22.7, 6.5, 5.8, 20.0, 7.5, 18.6, 8.2])


def _mean_cycle(d, label="med"):
    return d.X[d.speed_label == label].mean(0)  # (T, 10)


def test_walking_shape(mf):
    m = _mean_cycle(mf)
    knee = m[:, CH["knee_angle_r"]]
    swing = np.argmax(knee)
    assert 65 <= PCT[swing] <= 78 and 50 <= knee[swing] <= 72
    load = np.argmax(knee[: T // 3])  # loading-response peak
    assert 8 <= PCT[load] <= 22 and 12 <= knee[load] <= 25
    assert knee[load] > knee[0] + 5 and knee[load] > knee[int(0.4 * T)] + 5
    hip = m[:, CH["hip_flexion_r"]]
    assert PCT[np.argmax(hip)] >= 85 or PCT[np.argmax(hip)] <= 5  # max near IC
    assert 40 <= PCT[np.argmin(hip)] <= 60  # extension in late stance
    ankle = m[:, CH["ankle_angle_r"]]
    assert 55 <= PCT[np.argmin(ankle)] <= 70  # push-off plantarflexion
    assert 35 <= PCT[np.argmax(ankle)] <= 55  # stance dorsiflexion
    assert np.abs(mf.X[:, 0] - mf.X[:, -1]).max() < 1.5  # IC to IC inclusive


def test_left_is_right_half_a_cycle_later(mf):
    m = _mean_cycle(mf)[:-1]  # one period (179 frames)
    for joint in ("hip_flexion", "hip_adduction", "knee_angle", "ankle_angle"):
        r, left = m[:, CH[joint + "_r"]], m[:, CH[joint + "_l"]]
        lag = int(np.argmax([np.corrcoef(np.roll(r, s), left)[0, 1] for s in range(179)]))
        assert abs(lag - 89.5) <= 3, (joint, lag)


def test_variation_between_subjects_and_cadences(mf):
    knee = mf.X[..., CH["knee_angle_r"]]
    rng_by = {s: np.ptp(knee[mf.speed_label == s], axis=1).mean() for s in SPEED_LABELS}
    assert rng_by["slow"] < rng_by["med"] < rng_by["fast"]
    hip_mean = [mf.X[mf.subject_id == s][..., 0].mean() for s in np.unique(mf.subject_id)]
    assert np.std(hip_mean) > 5.0
    a = mf.X[(mf.subject_id == "H01") & (mf.speed_label == "med")]
    assert 0.05 < np.abs(a[0] - a[1]).mean() < 3.0  # trials differ a little


def test_labels_ranges_and_determinism(mf):
    y = mf.y_per_kg()
    assert y.min() >= 0 and 8 <= y.max() <= 16  # N/kg
    assert (y.max(axis=(0, 1)) > 0.5).all()  # every muscle active
    np.testing.assert_array_equal(synthetic_labels(mf.X, mf.weight_kg, "mf"), mf.Y)
    y2 = synthetic_labels(mf.X, 2 * mf.weight_kg, "mf")
    np.testing.assert_allclose(y2, 2 * mf.Y, rtol=1e-6)
    jm = make_cohort("jm", 4, seed=1, trials_per_condition=1)
    yj = jm.y_per_kg()
    assert jm.out_cols == JM_COLS and -1.0 <= yj.min() < -0.3 and 0.3 < yj.max() <= 1.0


def test_labels_depend_on_kinematics(mf):
    y = synthetic_labels(mf.X, mf.weight_kg, "jm") / mf.weight_kg[:, None, None]
    assert y.std(axis=1).mean() > 0.05  # vary within a cycle
    shifted = mf.X.copy()
    shifted[..., CH["knee_angle_r"]] += 10.0
    y_s = synthetic_labels(shifted, mf.weight_kg, "jm") / mf.weight_kg[:, None, None]
    assert not np.allclose(y, y_s, atol=1e-3)


@pytest.mark.parametrize(
    "args,match",
    [
        (dict(task="xx", n_subjects=2, seed=0), "unknown task"),
        (dict(task="mf", n_subjects=0, seed=0), "n_subjects"),
        (dict(task="mf", n_subjects=2, seed=0, trials_per_condition=0), "trials_per_condition"),
    ],
)
def test_bad_cohort_args(args, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        make_cohort(**args)


@pytest.mark.parametrize("rate_hz", [50.0, 100.0, 250.0, 1000.0])
def test_stream_events_are_true(rate_hz):
    tr = make_stream(12.0, rate_hz, seed=9, cadence_spm=105.0, noise_deg=0.0)
    assert tr.rate_hz == rate_hz and tr.n == int(12.0 * rate_hz)
    np.testing.assert_allclose(np.diff(tr.t), 1 / rate_hz, rtol=1e-9)
    r, left = tr.events["R"], tr.events["L"]
    period = 120 / 105.0
    d = np.diff(r)
    assert np.all(np.abs(d / period - 1) < 0.2) and d.std() > 0.005  # cycle-to-cycle variation
    assert 0.1 < r[0] < 0.3 and r[-1] > 12.0 - period
    mids = r[:-1] + d / 2  # L halfway between R ICs
    np.testing.assert_allclose(left[(left > r[0]) & (left < r[-1])], mids, atol=1e-9)
    knee = tr.q[:, CH["knee_angle_r"]]
    for ic in r[1:-1]:
        # terminal-swing knee minimum just before the IC, swing peak ~70 % after the previous
        w = (tr.t > ic - 0.15 * period) & (tr.t < ic + 0.1 * period)
        t_min = tr.t[w][np.argmin(knee[w])]
        assert -0.08 < t_min - ic < 0.01
    assert np.abs(np.diff(tr.q, axis=0)).max() < 600.0 / rate_hz + 0.01  # continuous


def test_stream_options():
    a = make_stream(3.0, 200.0, seed=1)
    b = make_stream(3.0, 200.0, seed=1, noise_deg=1.0)
    assert 0.8 < np.std(b.q - a.q) < 1.2
    assert make_stream(3.0, 200.0, seed=1, body_mass_kg=81.0).body_mass_kg == 81.0
    fast, slow = (
        make_stream(20.0, 100.0, seed=1, cadence_spm=135.0),
        make_stream(20.0, 100.0, seed=1, cadence_spm=78.0),
    )
    assert np.diff(fast.events["R"]).mean() == pytest.approx(120 / 135, rel=0.05)
    assert np.diff(slow.events["R"]).mean() == pytest.approx(120 / 78, rel=0.05)
    for kw, match in [
        (dict(rate_hz=20.0), "rate_hz"),
        (dict(rate_hz=2000.0), "rate_hz"),
        (dict(duration_s=0.1), "duration_s"),
        (dict(start_phase=1.5), "start_phase"),
    ]:
        args = dict(duration_s=2.0, rate_hz=100.0) | kw
        with pytest.raises(ConfigError, match=match):
            make_stream(**args)


def _resample(tr, t0, t1):
    """Linear IC-to-IC resampling (what the runtime does), for the round-trip check."""
    tt = np.linspace(t0, t1, T)
    return np.stack([np.interp(tt, tr.t, tr.q[:, c]) for c in range(10)], axis=1)


@pytest.mark.parametrize("rate_hz,continuous", [(100.0, True), (500.0, True), (200.0, False)])
def test_cycles_to_stream_round_trip(rate_hz, continuous):
    d = make_cohort("mf", 2, seed=2, trials_per_condition=2)
    tr = cycles_to_stream(d, rate_hz, continuous=continuous)
    ref = join_cycles(d.X) if continuous else d.X
    r = tr.events["R"]
    assert len(r) == d.n + 1 and len(tr.events["L"]) == d.n
    expected = np.array([120 / {"slow": 78, "med": 115, "fast": 135}[s] for s in d.speed_label])
    np.testing.assert_allclose(np.diff(r), expected)
    inner = slice(2, T - 2) if not continuous else slice(None)  # steps at joins if not
    for i in range(d.n):
        err = np.abs(_resample(tr, r[i], r[i + 1]) - ref[i])[inner].max()
        assert err < 4000.0 / rate_hz**2 + 0.05, (i, err)
    if continuous:
        assert np.abs(np.diff(tr.q, axis=0)).max() < 1500.0 / rate_hz
    assert tr.t[0] == 0 and r[0] == pytest.approx(0.3) and tr.t[-1] >= r[-1] + 0.29


def test_join_cycles_is_continuous():
    d = make_cohort("mf", 3, seed=4, trials_per_condition=1)
    j = join_cycles(d.X)
    np.testing.assert_allclose(j[:-1, -1], d.X[1:, 0], atol=1e-4)
    np.testing.assert_array_equal(j[:, 0], d.X[:, 0])
    np.testing.assert_array_equal(j[-1], d.X[-1])
