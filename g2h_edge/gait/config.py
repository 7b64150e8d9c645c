"""Frozen configuration dataclasses of the gait component (units in the field names).

``ICDetectorConfig`` tunes the online initial-contact detector, ``CycleConfig`` the cycle
assembler's checks. Both validate types and ranges on construction and can be built from a
plain mapping with :func:`from_mapping` (unknown keys are a :class:`ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from g2h_edge.config import check_numeric_fields
from g2h_edge.config import config_from_mapping as from_mapping
from g2h_edge.errors import ConfigError
from g2h_edge.schema import IN_COLS, T

__all__ = ["ICDetectorConfig", "CycleConfig", "DEFAULT_ANGLE_LIMITS_DEG", "from_mapping"]

#: physiological plausibility limits per input channel (degrees, inclusive). Generous on
#: purpose: they catch radians, wrong knee sign (gait2354 walks reach -60 deg), swapped
#: channels and corrupt samples, not unusual but real gait.
DEFAULT_ANGLE_LIMITS_DEG: tuple[tuple[float, float], ...] = (
    (-60.0, 130.0),
    (-50.0, 50.0),
    (-70.0, 70.0),  # hip_flexion/adduction/rotation_r
    (-60.0, 130.0),
    (-50.0, 50.0),
    (-70.0, 70.0),  # same, left
    (-25.0, 160.0),
    (-70.0, 70.0),  # knee_angle_r, ankle_angle_r
    (-25.0, 160.0),
    (-70.0, 70.0),  # knee_angle_l, ankle_angle_l
)


def _positive(obj, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{type(obj).__name__}.{name} must be > 0, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class ICDetectorConfig:
    """Online initial-contact (IC) detector settings. Times in seconds, angles in degrees,
    ``*_reach`` in thigh lengths (see :func:`g2h_edge.gait.detector.foot_reach`).

    The detector tracks each foot's forward reach relative to the hip, computed from hip
    flexion and knee angle (a planar two-segment leg). Its terminal-swing maximum precedes
    the foot strike by ``ic_offset_s``; candidates are gated by the preceding swing
    excursion, the lead over the other foot, the other leg's state, an extended knee and
    plausible step timing, and at the start of a stream by the shape of the peak itself
    (:data:`g2h_edge.gait.gates.GATES`; docs/gait_events.md gives each gate's test trace).
    """

    #: the reach maximum precedes the foot strike by this much (real trials: median 0.030 s)
    ic_offset_s: float = 0.030
    #: a maximum is confirmed once the reach has dropped this much below it ...
    confirm_drop_reach: float = 0.05
    #: ... but never earlier than ic_offset_s + this margin after it (the IC is then past)
    confirm_margin_s: float = 0.01
    #: ... or once it has stood for this long (bounded delay after the maximum)
    max_delay_s: float = 0.1
    #: half width of the least-squares parabola fitted around the maximum (sub-frame time)
    fit_half_s: float = 0.03
    #: stance -> swing: the reach must rise this much above its stance minimum
    swing_rise_reach: float = 0.3
    #: gate: the reach must have risen this much from the stance minimum (toe-off) before
    min_swing_reach: float = 0.8
    #: gate: at the maximum the foot must lead the other foot by this much
    min_lead_reach: float = 0.6
    #: gate (the other leg's state): at this foot's reach peak the other foot is in terminal
    #: stance, still moving back; its reach may rise at most this fast (thigh lengths/s;
    #: real trials: -5.6..-1.8; synthetic walks at 78 steps/min up to -0.24, more at 50 Hz)
    max_other_speed_reach_s: float = 1.0
    #: gate: the knee must be extended below this angle at the maximum
    max_knee_ic_deg: float = 35.0
    #: gate: ICs of the same side closer than this are refused (shortest stride)
    min_stride_s: float = 0.5
    #: gate: an IC closer than this to the other side's last IC is refused (shortest step)
    min_step_s: float = 0.2
    #: a maximum on the very first sample of a stream is accepted only if the fitted peak
    #: lies at most this long before it (the stream began at the peak, not in stance)
    start_edge_s: float = 0.02
    #: ... and the reach may fall at most this much over the fit_half_s after it (a stream
    #: that begins in loading response starts on a steep fall, not at the flat peak)
    start_max_drop_reach: float = 0.08
    #: a maximum not preceded by a seen swing (start of a stream) must lead the other foot
    #: by this much (stricter than min_lead_reach; real first strikes: >= 1.12)
    start_min_lead_reach: float = 0.95
    #: a time gap longer than this between updates restarts detection (state is stale)
    reset_gap_s: float = 0.25

    def __post_init__(self):
        check_numeric_fields(self)
        _positive(
            self,
            "confirm_drop_reach",
            "max_delay_s",
            "fit_half_s",
            "swing_rise_reach",
            "min_swing_reach",
            "max_knee_ic_deg",
            "min_stride_s",
            "reset_gap_s",
            "start_max_drop_reach",
        )
        for name in ("ic_offset_s", "confirm_margin_s", "min_step_s", "start_edge_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ICDetectorConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.ic_offset_s + self.confirm_margin_s > self.max_delay_s:
            raise ConfigError(
                f"ICDetectorConfig.max_delay_s ({self.max_delay_s}) must be at "
                "least ic_offset_s + confirm_margin_s "
                f"({self.ic_offset_s + self.confirm_margin_s})"
            )


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
    #: the other side's IC inside a cycle must lie within [f, 1 - f] of it (0 disables);
    #: two of them inside one cycle mean an IC of this side was missed (a double cycle)
    min_step_fraction: float = 0.3
    #: frames of the resampled cycle
    n_frames: int = T
    #: per-channel (low, high) limits in IN_COLS order
    angle_limits_deg: tuple[tuple[float, float], ...] = field(default=DEFAULT_ANGLE_LIMITS_DEG)

    def __post_init__(self):
        check_numeric_fields(self)
        _positive(self, "buffer_s", "max_buffer_frames", "min_cycle_s", "max_gap_s")
        if self.max_cycle_s <= self.min_cycle_s:
            raise ConfigError(
                f"CycleConfig.max_cycle_s ({self.max_cycle_s}) must exceed min_cycle_s ({self.min_cycle_s})"
            )
        if self.buffer_s <= self.max_cycle_s:
            raise ConfigError(
                f"CycleConfig.buffer_s ({self.buffer_s}) must exceed "
                f"max_cycle_s ({self.max_cycle_s}) so a whole cycle fits"
            )
        if self.n_frames < 2:
            raise ConfigError(f"CycleConfig.n_frames must be >= 2, got {self.n_frames}")
        if not 0.0 <= self.min_step_fraction < 0.5:
            raise ConfigError(
                f"CycleConfig.min_step_fraction must be within [0, 0.5), got {self.min_step_fraction!r}"
            )
        lim = self.angle_limits_deg
        try:
            lim = tuple((float(lo), float(hi)) for lo, hi in lim)
        except (TypeError, ValueError):
            raise ConfigError(
                f"CycleConfig.angle_limits_deg must be 10 (low, high) pairs, got {self.angle_limits_deg!r}"
            ) from None
        if len(lim) != len(IN_COLS) or any(not lo < hi for lo, hi in lim):
            raise ConfigError(
                f"CycleConfig.angle_limits_deg needs {len(IN_COLS)} pairs with "
                f"low < high (IN_COLS order), got {self.angle_limits_deg!r}"
            )
        object.__setattr__(self, "angle_limits_deg", lim)
