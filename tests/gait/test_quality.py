"""Per-cycle quality flags and out-of-distribution scores, each with a crafted cycle."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.gait.quality import (
    QualityConfig,
    assess_cycle,
    cycle_quality,
    input_summary,
    ood_phase_z,
    ood_z,
    quality_flags,
)
from g2h_edge.schema import IN_COLS

CH = {c: i for i, c in enumerate(IN_COLS)}
#: a model's input mean (like a bundle's; the published pool's left/right means differ)
REF_MEAN = np.array([16.6, 2.8, -8.0, 21.0, -6.3, 1.2, 23.0, 5.6, 31.9, 8.9])
REF_STD = np.array([22.3, 6.2, 7.2, 22.7, 6.5, 5.8, 20.0, 7.5, 18.5, 8.2])


def _bump(ph, centre, width):
    return np.exp(-((((ph - centre + 0.5) % 1.0 - 0.5) / width) ** 2))


def clean_cycle(T: int = 180, seed: int | None = None) -> np.ndarray:
    """A walking-like right cycle (deg): hip flexion 30 deg at IC and about -10 at 55 %,
    knee peak 60 deg at 72 %, ankle dorsiflexion at mid-stance and plantarflexion at
    push-off; the left leg is the right one half a cycle later."""
    ph = np.linspace(0.0, 1.0, T)
    rng = np.random.default_rng(seed)
    a = 1.0 if seed is None else rng.uniform(0.9, 1.1)
    right = {
        "hip_flexion": 10 + 20 * a * np.cos(2 * np.pi * ph),
        "hip_adduction": 2 + 5 * np.sin(2 * np.pi * ph),
        "hip_rotation": -4 + 4 * np.sin(2 * np.pi * ph + 1.0),
        "knee_angle": 5 + 15 * _bump(ph, 0.15, 0.07) + 55 * a * _bump(ph, 0.72, 0.12),
        "ankle_angle": 10 * _bump(ph, 0.42, 0.12) - 18 * _bump(ph, 0.63, 0.06),
    }
    x = np.zeros((T, len(IN_COLS)))
    for stem, v in right.items():
        x[:, CH[stem + "_r"]] = v
        x[:, CH[stem + "_l"]] = np.roll(v, T // 2)
    if seed is not None:
        x += rng.normal(0.0, 0.3, x.shape)
    return x.astype(np.float32)


def _with(fn):
    x = clean_cycle()
    fn(x)
    return x


def test_clean_cycle_has_no_flag():
    assert (
        quality_flags(clean_cycle(), duration_s=1.05, neighbour_durations_s=(1.0, 1.1), ref_mean=REF_MEAN)
        == []
    )


@pytest.mark.parametrize(
    "name, edit, kwargs, flag",
    [
        (
            "flipped right ankle",
            lambda x: x.__setitem__((slice(None), CH["ankle_angle_r"]), -x[:, CH["ankle_angle_r"]]),
            {},
            "ankle_flip_r",
        ),
        (
            "flipped left ankle",
            lambda x: x.__setitem__((slice(None), CH["ankle_angle_l"]), -x[:, CH["ankle_angle_l"]]),
            {},
            "ankle_flip_l",
        ),
        (
            "flipped left hip rotation",
            lambda x: x.__setitem__((slice(None), CH["hip_rotation_l"]), -x[:, CH["hip_rotation_l"]]),
            {},
            "hip_rotation_mismatch",
        ),
        (
            "+25 deg right hip flexion",
            lambda x: x.__setitem__((slice(None), CH["hip_flexion_r"]), x[:, CH["hip_flexion_r"]] + 25),
            {},
            "asymmetry:hip_flexion",
        ),
        (
            "+40 deg on both hips",
            lambda x: x.__setitem__(
                (slice(None), [CH["hip_flexion_r"], CH["hip_flexion_l"]]),
                x[:, [CH["hip_flexion_r"], CH["hip_flexion_l"]]] + 40,
            ),
            {},
            "offset:hip_flexion_r",
        ),
        ("0.63 s cycle", lambda x: None, {"duration_s": 0.63}, "short_cycle"),
        ("3 s cycle", lambda x: None, {"duration_s": 3.0}, "long_cycle"),
        (
            "1.0 s among 1.6 s neighbours",
            lambda x: None,
            {"duration_s": 1.0, "neighbour_durations_s": (1.6, 1.6, 1.7)},
            "duration_vs_neighbours",
        ),
        (
            "20 deg knee jump",
            lambda x: x.__setitem__((slice(90, None), CH["knee_angle_r"]), x[90:, CH["knee_angle_r"]] + 20),
            {},
            "jump:knee_angle_r",
        ),
    ],
)
def test_each_flag_fires_on_its_crafted_cycle(name, edit, kwargs, flag):
    x = _with(edit)
    kw = {"duration_s": 1.0, **kwargs}
    flags = quality_flags(x, ref_mean=REF_MEAN, **kw)
    assert flag in flags, (name, flags)
    assert len(flags) <= 2, (name, flags)  # the fault, not a cascade of side effects


def test_flip_of_the_right_ankle_is_not_blamed_on_the_left():
    x = _with(lambda x: x.__setitem__((slice(None), CH["ankle_angle_r"]), -x[:, CH["ankle_angle_r"]]))
    assert "ankle_flip_l" not in quality_flags(x)


def test_jump_threshold_scales_with_duration():
    """A 5 deg step is a jump in a 0.2 s cycle but ordinary motion in a 1.2 s one."""
    x = _with(lambda x: x.__setitem__((slice(90, None), CH["knee_angle_r"]), x[90:, CH["knee_angle_r"]] + 5))
    cfg = QualityConfig(min_duration_s=0.1)
    assert "jump:knee_angle_r" in quality_flags(x, duration_s=0.2, config=cfg)
    assert "jump:knee_angle_r" not in quality_flags(x, duration_s=1.2, config=cfg)


def test_ood_scores_rise_with_a_shifted_input():
    """ood_z is coarse (the bundle's sd mixes within- and between-cycle spread): +40 deg
    on one hip is needed to beat this cycle's largest channel; the per-phase score sees
    the shift at once."""
    x = clean_cycle()
    shifted = x.copy()
    shifted[:, CH["hip_flexion_r"]] += 40
    z0, _ = ood_z(x, REF_MEAN, REF_STD)
    z1, ch = ood_z(shifted, REF_MEAN, REF_STD)
    assert z1 > z0 and ch == "hip_flexion_r"
    summary = input_summary(np.stack([clean_cycle(seed=s) for s in range(12)]))
    p0, _ = ood_phase_z(clean_cycle(seed=99), summary)
    p1, ch = ood_phase_z(shifted, summary)
    assert p1 > 5 * p0 and ch == "hip_flexion_r"


def test_assess_and_cycle_quality_merge_everything():
    x = clean_cycle()
    y_sd = np.full((180, 3), 0.02, np.float32)
    summary = input_summary(np.stack([clean_cycle(seed=s) for s in range(5)]))
    q = assess_cycle(x, mean=REF_MEAN, std=REF_STD, summary=summary, y_sd=y_sd)
    assert q["flags"] == [] and q["y_sd_mean"] == pytest.approx(0.02)
    assert {"ood_z", "ood_channel", "ood_phase_z", "ood_phase_channel"} <= set(q)
    meta = {"mean": REF_MEAN.tolist(), "std": REF_STD.tolist()}
    merged = cycle_quality(
        meta, x, {"duration_s": 0.5, "ic_source": "detector"}, neighbour_durations_s=(1.0,)
    )
    assert merged["ic_source"] == "detector" and "short_cycle" in merged["flags"]
    assert "duration_vs_neighbours" in merged["flags"] and "ood_phase_z" not in merged
    broken = cycle_quality({"input_summary": {"n_bins": 18}}, x, {"duration_s": 1.0})
    assert broken["flags"] == ["quality_check_failed"] and "must hold" in broken["quality_error"]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: quality_flags(np.zeros((180, 9))), DataError, r"one cycle \(T>=18, 10\)"),
        (lambda: quality_flags(np.zeros(180)), DataError, "got shape"),
        (lambda: ood_phase_z(clean_cycle(), {"n_bins": 18}), DataError, "must hold"),
        (
            lambda: ood_phase_z(
                clean_cycle(),
                {"n_bins": 18, "mean": np.zeros((18, 10)).tolist(), "sd": np.zeros((18, 10)).tolist()},
            ),
            DataError,
            "sd > 0",
        ),
        (lambda: input_summary(np.zeros((1, 180, 10))), DataError, "at least 2 cycles"),
        (lambda: QualityConfig.from_dict({"jump_deg_s": 3}), ConfigError, "unknown"),
        (lambda: QualityConfig(neighbour_ratio=0.9), ConfigError, "inconsistent"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.shared
def test_real_cycles_and_their_faulted_copies(data_dir):
    """On the 24 real cycles no sign/jump/timing flag fires; every faulted copy is flagged."""
    from g2h_edge.bench.accuracy import FAULTS, inject_fault
    from g2h_edge.export.cycles import real_cycles

    real = real_cycles(data_dir)
    for x in real.x:
        flags = quality_flags(x, duration_s=1.0, ref_mean=REF_MEAN)
        assert not [f for f in flags if not f.startswith("offset:")], flags
        for kind in FAULTS:
            assert quality_flags(inject_fault(x, kind), duration_s=1.0), kind
