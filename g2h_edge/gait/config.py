"""Frozen configuration dataclasses of the gait component (units in the field names).

``ICDetectorConfig`` tunes the online initial-contact detector, ``CycleConfig`` the cycle
assembler's checks. Both validate types and ranges on construction and can be built from a
plain mapping with :func:`from_mapping` (unknown keys are a :class:`ConfigError`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from g2h_edge.errors import ConfigError
from g2h_edge.schema import IN_COLS, T

__all__ = ["ICDetectorConfig", "CycleConfig", "DEFAULT_ANGLE_LIMITS_DEG", "from_mapping"]

#: physiological plausibility limits per input channel (degrees, inclusive). Generous on
#: purpose: they catch radians, wrong knee sign (gait2354 walks reach -60 deg), swapped
#: channels and corrupt samples, not unusual but real gait.
DEFAULT_ANGLE_LIMITS_DEG: tuple[tuple[float, float], ...] = (
    (-60.0, 130.0), (-50.0, 50.0), (-70.0, 70.0),   # hip_flexion/adduction/rotation_r
    (-60.0, 130.0), (-50.0, 50.0), (-70.0, 70.0),   # same, left
    (-25.0, 160.0), (-70.0, 70.0),                  # knee_angle_r, ankle_angle_r
    (-25.0, 160.0), (-70.0, 70.0),                  # knee_angle_l, ankle_angle_l
)


def _check_fields(obj) -> None:
    """Type- and range-check every field of a frozen config dataclass."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.type in ("float", float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{type(obj).__name__}.{f.name} must be a number, "
                                  f"got {value!r} ({type(value).__name__})")
            if not math.isfinite(float(value)):
                raise ConfigError(f"{type(obj).__name__}.{f.name} must be finite, got {value!r}")
            object.__setattr__(obj, f.name, float(value))
        elif f.type in ("int", int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{type(obj).__name__}.{f.name} must be an integer, "
                                  f"got {value!r} ({type(value).__name__})")


def _positive(obj, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{type(obj).__name__}.{name} must be > 0, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class ICDetectorConfig:
    """Online initial-contact (IC) detector settings. Times in seconds, angles in degrees.

    The detector looks for the knee's terminal-swing extension minimum, gated by a preceding
    swing flexion peak, hip flexion near its cycle maximum and plausible step timing, then
    subtracts ``ic_offset_s`` (the knee minimum leads the foot strike) and reports the IC.
    """

    #: the knee extension minimum precedes the foot strike by this much (real trials: ~0.03 s)
    ic_offset_s: float = 0.03
    #: low-pass smoothing time constant applied before searching minima (0 disables)
    smooth_s: float = 0.0
    #: a minimum is confirmed once the knee has risen this much above it ...
    confirm_rise_deg: float = 2.0
    #: ... or this long after it (bounded delay), whichever comes first
    max_delay_s: float = 0.12
    #: the swing-phase knee flexion peak before an IC must reach this angle
    min_swing_knee_deg: float = 35.0
    #: and the knee must drop at least this much from that peak to the IC minimum
    min_knee_drop_deg: float = 25.0
    #: the swing peak must lie at most this long before the minimum
    max_peak_to_ic_s: float = 0.8
    #: hip flexion at the minimum must be above this fraction of the recent hip range
    #: (0 = max extension, 1 = max flexion); IC happens near maximum hip flexion
    min_hip_phase: float = 0.6
    #: time window over which the hip range is tracked (about two strides)
    hip_window_s: float = 3.0
    #: ICs of the same side closer than this are refused (shortest plausible stride)
    min_stride_s: float = 0.55
    #: an IC closer than this to the other side's last IC is refused (shortest step)
    min_step_s: float = 0.2
    #: strike detection at the very start of a stream: accept a knee minimum with a
    #: flexed hip even without a seen swing peak
    allow_start_ic: bool = True

    def __post_init__(self):
        _check_fields(self)
        _positive(self, "confirm_rise_deg", "max_delay_s", "min_swing_knee_deg",
                  "max_peak_to_ic_s", "hip_window_s", "min_stride_s", "min_step_s")
        if self.smooth_s < 0:
            raise ConfigError(f"ICDetectorConfig.smooth_s must be >= 0, got {self.smooth_s!r}")
        if not 0.0 <= self.min_hip_phase <= 1.0:
            raise ConfigError("ICDetectorConfig.min_hip_phase must be within [0, 1], "
                              f"got {self.min_hip_phase!r}")
        if not isinstance(self.allow_start_ic, bool):
            raise ConfigError("ICDetectorConfig.allow_start_ic must be a bool, "
                              f"got {self.allow_start_ic!r}")


@dataclass(frozen=True)
class CycleConfig:
    """Cycle assembly and checks. Times in seconds, angles in degrees."""

    #: ring buffer capacity per stream (must exceed the longest accepted cycle)
    buffer_s: float = 6.0
    #: hard cap on buffered frames, whatever the rate (memory bound per stream)
    max_buffer_frames: int = 20000
    #: plausible cycle (IC to IC of the same side) durations, inclusive
    min_cycle_s: float = 0.6
    max_cycle_s: float = 2.5
    #: a time gap between two consecutive samples inside a cycle longer than this rejects it;
    #: shorter gaps (dropped frames) are filled by linear interpolation and counted
    max_gap_s: float = 0.1
    #: frames of the resampled cycle
    n_frames: int = T
    #: per-channel (low, high) limits in IN_COLS order
    angle_limits_deg: tuple[tuple[float, float], ...] = field(
        default=DEFAULT_ANGLE_LIMITS_DEG)

    def __post_init__(self):
        _check_fields(self)
        _positive(self, "buffer_s", "max_buffer_frames", "min_cycle_s", "max_gap_s")
        if self.max_cycle_s <= self.min_cycle_s:
            raise ConfigError(f"CycleConfig.max_cycle_s ({self.max_cycle_s}) must exceed "
                              f"min_cycle_s ({self.min_cycle_s})")
        if self.buffer_s <= self.max_cycle_s:
            raise ConfigError(f"CycleConfig.buffer_s ({self.buffer_s}) must exceed "
                              f"max_cycle_s ({self.max_cycle_s}) so a whole cycle fits")
        if self.n_frames < 2:
            raise ConfigError(f"CycleConfig.n_frames must be >= 2, got {self.n_frames}")
        lim = self.angle_limits_deg
        try:
            lim = tuple((float(lo), float(hi)) for lo, hi in lim)
        except (TypeError, ValueError):
            raise ConfigError("CycleConfig.angle_limits_deg must be 10 (low, high) pairs, "
                              f"got {self.angle_limits_deg!r}") from None
        if len(lim) != len(IN_COLS) or any(not lo < hi for lo, hi in lim):
            raise ConfigError(f"CycleConfig.angle_limits_deg needs {len(IN_COLS)} pairs with "
                              f"low < high (IN_COLS order), got {self.angle_limits_deg!r}")
        object.__setattr__(self, "angle_limits_deg", lim)


C = TypeVar("C")


def from_mapping(cls: type[C], values: Mapping[str, Any] | None) -> C:
    """Build a config dataclass from a mapping; unknown keys raise :class:`ConfigError`."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - dataclass signature errors
        raise ConfigError(f"bad {cls.__name__}: {exc}") from None
