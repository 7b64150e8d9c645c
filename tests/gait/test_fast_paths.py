"""The runtime's cheaper per-cycle paths give the same results as the reference functions,
bit for bit: the cycle resampling without its checks, the convention check of one checked
cycle, the equal-bin phase means of the quality scores. A divergence would change what the
server publishes, so each pair is compared on many inputs, including the edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import ConventionError, GaitError
from g2h_edge.gait.assembler import CycleAssembler
from g2h_edge.gait.convention import check_convention, check_cycle_convention, convert_gait2354
from g2h_edge.gait.quality import _bin_means, assess_cycle, check_summary, input_summary, ood_phase_z
from g2h_edge.gait.resample import _grid, interp_cycle, resample_cycle
from g2h_edge.io.synth import make_cohort, make_stream
from g2h_edge.schema import IN_COLS


def test_grid_is_linspace_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        t0 = float(rng.uniform(-1e4, 1e4))
        t1 = t0 + float(10.0 ** rng.uniform(-6, 3))
        n = int(rng.integers(2, 400))
        assert np.array_equal(_grid(t0, t1, n), np.linspace(t0, t1, n))


def test_interp_cycle_is_resample_cycle_bit_for_bit():
    rng = np.random.default_rng(1)
    for k in range(300):
        m = int(rng.integers(2, 400))
        t = np.cumsum(rng.uniform(1e-4, 0.05, m)) + rng.uniform(-100, 100)
        q = rng.normal(0, 40, (m, 10)).astype(np.float32 if k % 2 else np.float64)
        a, b = sorted(rng.uniform(t[0], t[-1], 2))
        if k % 7 == 0:
            a, b = t[0], t[-1]  # ICs exactly on the first and last samples
        if not b > a:
            continue
        ref = resample_cycle(t, q, a, b, 180)
        got = interp_cycle(t, q, a, b, 180, np.diff(t))
        assert got.dtype == ref.dtype == np.float32
        assert np.array_equal(got, ref)


@pytest.fixture(scope="module")
def cycles():
    return make_cohort("jm", 3, seed=11, trials_per_condition=2).X  # (18, 180, 10)


def _outcome(fn, x):
    try:
        fn(x)
    except ConventionError as exc:
        return exc.reason, str(exc)
    return None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cycle_convention_check_agrees_with_the_reference(cycles, dtype):
    variants = [
        lambda x: x,
        np.deg2rad,
        convert_gait2354,
        lambda x: convert_gait2354(np.deg2rad(x)),
        lambda x: x * 0.01,  # standing still: undecided, passes
        lambda x: x - 40.0,  # everything negative, knees too
    ]
    refused = 0
    for x in cycles:
        for f in variants:
            v = np.asarray(f(x), dtype=dtype)
            ref = _outcome(check_convention, v)
            assert _outcome(check_cycle_convention, v) == ref
            refused += ref is not None
    assert refused >= 3 * len(cycles)  # the wrong conventions were really refused


def test_cycle_convention_check_of_empty_or_misshapen_input_is_the_reference():
    assert _outcome(check_cycle_convention, np.zeros((0, 10))) is None
    for bad in (np.zeros((5, 9)), np.zeros(10)):
        with pytest.raises(ConventionError) as info:
            check_cycle_convention(bad)
        assert info.value.reason == "bad_shape"


def test_cycle_convention_check_with_non_finite_values_falls_back(cycles):
    x = np.deg2rad(cycles[0]).astype(np.float32)
    x[5, 2] = np.nan
    x[7, 4] = np.inf
    assert _outcome(check_cycle_convention, x) == _outcome(check_convention, x)
    assert _outcome(check_cycle_convention, x) is not None  # still radians, NaN ignored


def test_equal_bin_means_are_the_slice_means():
    rng = np.random.default_rng(2)
    for T, bins in ((180, 18), (180, 10), (90, 18), (181, 18), (36, 36)):
        x = rng.normal(0, 30, (3, T, 10)) * rng.uniform(0.01, 100)
        edges = np.linspace(0, T, bins + 1).round().astype(int)
        ref = np.stack([x[..., a:b, :].mean(-2) for a, b in zip(edges[:-1], edges[1:])], -2)
        assert np.array_equal(_bin_means(x, bins), ref)


def test_phase_score_follows_a_new_summary_object(cycles):
    s1 = input_summary(cycles)
    s2 = input_summary(cycles + 20.0)  # another model's summary
    x = cycles[0]
    z1, z2 = ood_phase_z(x, s1)[0], ood_phase_z(x, s2)[0]
    assert z2 > z1
    assert ood_phase_z(x, s1)[0] == z1  # the remembered check, same answer
    with pytest.raises(Exception, match="input_summary"):
        ood_phase_z(x, {"n_bins": 18, "mean": [[0.0] * 10] * 18, "sd": [[0.0] * 10] * 18})
    assert check_summary(s1)["n_bins"] == 18


def test_assess_cycle_mean_shared_by_offset_and_ood(cycles):
    mean = cycles.mean((0, 1))
    std = cycles.std((0, 1))
    x = cycles[0].copy()
    x[:, IN_COLS.index("hip_flexion_r")] += 40.0
    out = assess_cycle(x, mean=mean, std=std, duration_s=1.1)
    assert "offset:hip_flexion_r" in out["flags"] and out["ood_channel"] == "hip_flexion_r"
    z = np.abs(x.astype(np.float64).mean(0) - mean) / std
    assert out["ood_z"] == round(float(z.max()), 4)


def _assembler_with(q):
    tr = make_stream(4.0, 100.0, seed=3, body_mass_kg=70.0)
    a = CycleAssembler()
    a.push(tr.t, q(np.asarray(tr.q, np.float32).copy()))
    a.on_ic(0.5, "R")
    return a


@pytest.mark.parametrize(
    "bad,value,reason",
    [((50, 3), np.nan, "nan"), ((60, 1), np.inf, "nan"), ((60, 1), -np.inf, "nan")],
)
def test_non_finite_cycle_still_names_channel_and_time(bad, value, reason):
    def spoil(q):
        q[bad] = value
        return q

    a = _assembler_with(spoil)
    with pytest.raises(GaitError) as info:
        a.on_ic(1.6, "R")
    assert info.value.reason == reason
    assert IN_COLS[bad[1]] in str(info.value)


def test_huge_finite_angles_are_implausible_not_nan():
    # the per-channel extremes sum to inf in float32, but every value is finite
    def spoil(q):
        q[100:105, :] = 3.0e38
        return q

    a = _assembler_with(spoil)
    with pytest.raises(GaitError) as info:
        a.on_ic(1.6, "R")
    assert info.value.reason == "implausible_angles"
