"""CycleAssembler: cycles, reject table, gap filling, ring-buffer bounds, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import ConfigError, GaitError
from g2h_edge.gait import CycleAssembler, CycleConfig, from_mapping, resample_cycle


def _walk(t):
    """Plausible smooth angles (n, 10) in degrees."""
    w = 2 * np.pi * t / 1.1
    hip_r, hip_l = 10 + 20 * np.cos(w), 10 + 20 * np.cos(w + np.pi)
    knee_r, knee_l = 30 - 28 * np.cos(w + 0.6), 30 - 28 * np.cos(w + np.pi + 0.6)
    z = np.zeros_like(t)
    return np.stack(
        [hip_r, z + 2, z - 3, hip_l, z + 1, z - 2, knee_r, 5 * np.sin(w), knee_l, 5 * np.sin(w + np.pi)],
        axis=1,
    ).astype(np.float32)


def _filled(rate=100.0, dur=4.0, cfg=None, chunk=7):
    a = CycleAssembler(cfg or CycleConfig())
    t = np.arange(0, dur, 1 / rate)
    q = _walk(t)
    for i in range(0, len(t), chunk):
        a.push(t[i : i + chunk], q[i : i + chunk])
    return a, t, q


def test_first_ic_opens_and_second_closes_a_cycle():
    a, t, q = _filled()
    assert a.on_ic(0.3217, "R") is None
    assert a.on_ic(0.8, "L") is None
    c = a.on_ic(1.4219, "R")
    assert (c.side, c.index, c.t_start, c.t_end) == ("R", 0, 0.3217, 1.4219)
    np.testing.assert_allclose(c.x, resample_cycle(t, q, 0.3217, 1.4219), atol=1e-6)
    assert c.quality["n_source_frames"] == 110
    assert c.quality["gap_filled_frames"] == 0
    assert c.quality["rate_hz"] == pytest.approx(100.0)
    assert c.quality["ic_source"] == "detector"
    c2 = a.on_ic(2.52, "R", source="external")
    assert c2.index == 1 and c2.t_start == 1.4219 and c2.quality["ic_source"] == "external"


def test_small_gaps_are_filled_and_counted():
    a = CycleAssembler(CycleConfig(max_gap_s=0.1))
    t = np.arange(0, 3, 0.01)
    keep = np.ones(len(t), bool)
    keep[50:53] = False  # 3 dropped frames -> a 40 ms gap
    keep[120] = False  # 1 dropped frame
    t, q = t[keep], _walk(t[keep])
    a.push(t, q)
    a.on_ic(0.2, "R")
    c = a.on_ic(1.3, "R")
    assert c.quality["gap_filled_frames"] == 4
    assert c.quality["max_gap_s"] == pytest.approx(0.04)
    full_t = np.arange(0, 3, 0.01)
    np.testing.assert_allclose(c.x, resample_cycle(t, q, 0.2, 1.3), atol=1e-6)
    # the fill is linear interpolation between the gap's neighbours: close to the truth
    assert np.max(np.abs(c.x - resample_cycle(full_t, _walk(full_t), 0.2, 1.3))) < 1.0


@pytest.mark.parametrize(
    "t0, t1, reason, match",
    [
        (0.5, 0.9, "cycle_too_short", "shorter than min_cycle_s"),
        (0.2, 3.0, "cycle_too_long", "longer than max_cycle_s"),
        (0.3, 1.5, "gap", "ms gap after"),
        (1.5, 2.6, "nan", "non-finite angles \\(knee_angle_r"),
        (2.7, 3.8, "implausible_angles", "implausible ankle_angle_l"),
    ],
)
def test_reject_table(t0, t1, reason, match):
    t = np.arange(0, 4, 0.01)
    q = _walk(t)
    keep = np.ones(len(t), bool)
    keep[100:115] = False  # 150 ms hole around 1.0 s
    q[200, 6] = np.nan  # knee_angle_r NaN at 2.0 s
    q[330, 9] = 95.0  # ankle_angle_l of 95 deg at 3.3 s
    a = CycleAssembler(CycleConfig())
    a.push(t[keep], q[keep])
    assert a.on_ic(t0, "L") is None
    with pytest.raises(GaitError, match=match) as ei:
        a.on_ic(t1, "L")
    err = ei.value
    assert err.reason == reason
    assert (err.side, err.index, err.t_start, err.t_end) == ("L", 0, t0, t1)
    # the rejected IC still opens the next cycle of that side
    assert a.last_ic_["L"] == t1


@pytest.mark.parametrize(
    "others, reason, match",
    [
        ([0.7, 1.3], "missed_ic", "holds 2 ICs of the other side"),  # a double cycle
        ([0.35], "step_asymmetry", "other side's IC at 7 %"),
        ([2.05], "step_asymmetry", "other side's IC at 88 %"),
    ],
)
def test_contralateral_ic_checks(others, reason, match):
    a, _, _ = _filled(dur=3.0)
    a.on_ic(0.2, "R")
    for tc in others:
        a.on_ic(tc, "L")
    with pytest.raises(GaitError, match=match) as ei:
        a.on_ic(2.3, "R")
    assert ei.value.reason == reason


def test_contralateral_ic_phase_in_quality():
    a, _, _ = _filled(dur=3.0)
    a.on_ic(0.2, "R")
    c = a.on_ic(1.3, "R")
    assert c.quality["step_fraction"] is None  # no left IC known
    a.on_ic(1.85, "L")
    c = a.on_ic(2.4, "R")
    assert c.quality["step_fraction"] == pytest.approx(0.5)
    off = CycleAssembler(CycleConfig(min_step_fraction=0.0))  # check disabled
    off.push(*_filled(dur=3.0)[1:])
    off.on_ic(0.2, "R")
    off.on_ic(0.3, "L")
    assert off.on_ic(1.3, "R").quality["step_fraction"] is None


def test_gait2354_knee_sign_is_implausible():
    t = np.arange(0, 3, 0.01)
    q = _walk(t)
    q[:, [6, 8]] *= -1  # old convention: knee negative in flexion
    a = CycleAssembler()
    a.push(t, q)
    a.on_ic(0.1, "R")
    with pytest.raises(GaitError, match="implausible knee_angle_r") as ei:
        a.on_ic(1.2, "R")
    assert ei.value.reason == "implausible_angles"


@pytest.mark.parametrize(
    "calls, match, reason",
    [
        ([(0.5, "R"), (0.5, "R")], "not after the previous one", "ic_not_increasing"),
        ([(0.5, "R"), (float("nan"), "R")], "not after the previous one", "ic_not_increasing"),
        ([(5.0, "R")], "after the last frame", "ic_after_data"),
        ([(0.5, "X")], "side must be one of", "bad_side"),
    ],
)
def test_bad_ic_calls(calls, match, reason):
    a, _, _ = _filled(dur=2.0)
    for tc, side in calls[:-1]:
        a.on_ic(tc, side)
    with pytest.raises(GaitError, match=match) as ei:
        a.on_ic(*calls[-1])
    assert ei.value.reason == reason


def test_buffer_overrun_and_bounds():
    cfg = CycleConfig(buffer_s=3.0, max_cycle_s=2.5)
    a = CycleAssembler(cfg)
    t = np.arange(0, 20, 0.005)  # 200 Hz, 20 s
    q = _walk(t)
    a.push(t[:10], q[:10])
    a.on_ic(0.01, "R")
    for i in range(10, len(t), 13):
        a.push(t[i : i + 13], q[i : i + 13])
        span = a.buffered()[0]
        assert span[-1] - span[0] <= cfg.buffer_s + 0.005 + 1e-9
        assert len(a) <= cfg.max_buffer_frames
    assert a.t_.shape[0] <= 4 * (cfg.buffer_s * 200 + 13)  # capacity stays bounded
    with pytest.raises(GaitError, match="longer than max_cycle_s"):
        a.on_ic(19.0, "R")
    a2 = CycleAssembler(cfg)
    a2.push(t[:10], q[:10])
    a2.on_ic(0.02, "L")
    a2.push(t[10:700], q[10:700])  # 3.5 s buffered > buffer_s
    with pytest.raises(GaitError, match="no longer buffered") as ei:
        a2.on_ic(2.4, "L")
    assert ei.value.reason == "buffer_overrun"


def test_frame_cap_and_time_order():
    a = CycleAssembler(CycleConfig(max_buffer_frames=100))
    t = np.arange(0, 5, 0.001)
    q = _walk(t)
    for i in range(0, 1000, 50):
        a.push(t[i : i + 50], q[i : i + 50])
        assert len(a) <= 100
    with pytest.raises(GaitError, match="increase strictly") as ei:
        a.push(t[500:510], q[500:510])
    assert ei.value.reason == "time_not_increasing"
    with pytest.raises(GaitError, match="exceed max_buffer_frames"):
        a.push(t[1000:1200], q[1000:1200])
    with pytest.raises(GaitError, match="q \\(n, 10\\)"):
        a.push(t[1000:1005], q[1000:1005, :9])


def test_ic_before_first_frame():
    a, t, q = _filled(dur=2.0)
    a.on_ic(-0.01, "R")
    with pytest.raises(GaitError, match="before the stream's first frame") as ei:
        a.on_ic(1.1, "R")
    assert ei.value.reason == "before_first_frame"


@pytest.mark.parametrize(
    "values, match",
    [
        ({"max_gap_s": "0.1"}, "must be a number"),
        ({"min_cycle_s": -1.0}, "must be > 0"),
        ({"min_cycle_s": 1.0, "max_cycle_s": 0.9}, "must exceed min_cycle_s"),
        ({"buffer_s": 2.0}, "so a whole cycle fits"),
        ({"n_frames": 1}, "n_frames must be >= 2"),
        ({"min_step_fraction": 0.5}, "min_step_fraction must be within"),
        ({"n_frames": 180.0}, "must be an integer"),
        ({"angle_limits_deg": ((0, 1),)}, "needs 10 pairs"),
        ({"max_gap": 0.1}, "unknown CycleConfig key"),
    ],
)
def test_config_errors(values, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(CycleConfig, values)
