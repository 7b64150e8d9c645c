"""Angle-convention checks: radians and gait2354 knee sign refused, real and synthetic accepted."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import ConventionError
from g2h_edge.gait.convention import ConventionMonitor, assess_convention, check_convention, convert_gait2354
from g2h_edge.io.synth import make_cohort, make_stream
from g2h_edge.io.trial import read_trial
from g2h_edge.schema import IN_COLS

KNEES = [IN_COLS.index("knee_angle_r"), IN_COLS.index("knee_angle_l")]


@pytest.fixture(scope="module")
def cycles():
    return make_cohort("jm", 3, seed=11, trials_per_condition=2).X  # (18, 180, 10)


def _flip(q):
    q = np.array(q, copy=True)
    q[..., KNEES] *= -1
    return q


@pytest.mark.parametrize(
    "transform,reason,hint",
    [
        (np.deg2rad, "radians_as_degrees", "180/pi"),
        (_flip, "knee_sign_gait2354", "--convert-gait2354"),
        (lambda q: _flip(np.deg2rad(q)), "radians_as_degrees", "180/pi"),  # units first
    ],
    ids=["radians", "gait2354", "both"],
)
def test_wrong_conventions_refused_per_cycle(cycles, transform, reason, hint):
    for x in cycles:
        with pytest.raises(ConventionError, match=hint) as info:
            check_convention(transform(x))
        assert info.value.reason == reason


def test_synthetic_cycles_and_streams_accepted(cycles):
    for x in cycles:
        check_convention(x)
    for cad in (78.0, 115.0, 135.0):
        check_convention(make_stream(5.0, 100.0, seed=1, cadence_spm=cad, noise_deg=0.5).q)


def test_standing_still_is_undecided_not_refused():
    rng = np.random.default_rng(0)
    q = 0.3 * rng.standard_normal((300, 10)) + 2.0  # all angles ~2 deg, no knee motion
    assert assess_convention(q)[0] == "undecided"
    check_convention(q)


def test_convert_gait2354_flips_only_knees(cycles):
    x = cycles[0]
    y = convert_gait2354(x)
    np.testing.assert_array_equal(y[:, KNEES], -x[:, KNEES])
    others = [i for i in range(10) if i not in KNEES]
    np.testing.assert_array_equal(y[:, others], x[:, others])
    np.testing.assert_array_equal(convert_gait2354(y), x)
    with pytest.raises(ConventionError, match="10 channels"):
        convert_gait2354(x[:, :9])


def test_bad_shape():
    with pytest.raises(ConventionError, match=r"shape \(n, 10\)"):
        check_convention(np.zeros((5, 9)))


@pytest.mark.parametrize("rate_hz", [50.0, 200.0, 1000.0])
def test_monitor_catches_radians_stream_early(rate_hz):
    tr = make_stream(4.0, rate_hz, seed=2)
    mon = ConventionMonitor()
    block = max(1, int(rate_hz * 0.05))  # 50 ms blocks, as a server receives them
    caught_at = None
    for i in range(0, tr.n, block):
        try:
            mon.update(np.deg2rad(tr.q[i : i + block]))
        except ConventionError as exc:
            caught_at = tr.t[min(i + block, tr.n) - 1]
            assert exc.reason == "radians_as_degrees"
            break
    assert caught_at is not None and caught_at < 1.2 * 120 / 115  # within about a cycle
    with pytest.raises(ConventionError):  # stays refused
        mon.update(tr.q[:5])


def test_monitor_accepts_a_good_stream_and_flags_gait2354():
    tr = make_stream(4.0, 200.0, seed=5)
    ok, bad = ConventionMonitor(), ConventionMonitor()
    verdicts = [ok.update(tr.q[i : i + 10]) for i in range(0, tr.n, 10)]
    assert verdicts[-1] == "ok" and set(verdicts) <= {"ok", "undecided"}
    seen = []
    with pytest.raises(ConventionError, match="mostly negative"):
        for i in range(0, tr.n, 10):
            seen.append(bad.update(_flip(tr.q[i : i + 10])))
    assert "ok" not in seen  # never declared fine before the swing showed the sign
    assert len(seen) < 2 * 200 * (120 / 115) / 10  # caught within two cycles


@pytest.mark.parametrize("flip", [False, True])
def test_real_trials_in_monitor_never_ok_when_wrong(data_dir, flip):
    for f in sorted((data_dir / "schreiber2019").glob("*_angles.csv")):
        q = read_trial(f, check=False).q
        q = _flip(q) if flip else q
        mon, seen, raised = ConventionMonitor(), [], False
        try:
            for i in range(0, len(q), 5):  # 50 ms blocks at 100 Hz
                seen.append(mon.update(q[i : i + 5]))
        except ConventionError as exc:
            raised = exc.reason == "knee_sign_gait2354"
        assert raised == flip, f.name
        assert ("ok" not in seen) if flip else (seen[-1] == "ok"), f.name


def test_real_trials_accepted(data_dir):
    # includes 2014014 / 2014019 with a ~9 deg hip-flexion offset
    files = sorted((data_dir / "schreiber2019").glob("*_angles.csv"))
    assert len(files) == 12
    for f in files:
        q = read_trial(f, check=False).q
        check_convention(q)
        assert assess_convention(q)[0] == "ok"
        with pytest.raises(ConventionError, match="radians"):
            check_convention(np.deg2rad(q))


def test_real_gait2354_trial_refused(data_dir):
    q = read_trial(data_dir / "opensim_gait2354" / "subject01_walk1_angles.csv", check=False).q
    with pytest.raises(ConventionError, match="knee angle is mostly negative") as info:
        check_convention(q)
    assert info.value.reason == "knee_sign_gait2354"
    check_convention(convert_gait2354(q))
