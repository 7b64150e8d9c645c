"""Channel names, output names, units and sizes: the one place for the task's constants.

Facts from the Gait2Hip-60 benchmark (arXiv 2605.30374) and its public code.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "T",
    "IN_COLS",
    "N_IN",
    "MF_COLS",
    "JM_COLS",
    "TASKS",
    "TARGET_UNIT",
    "RAW_UNIT",
    "CADENCE_STEPS_PER_MIN",
    "SPEED_LABELS",
    "MIRROR_INDEX",
    "SIDES",
    "HOLDOUT_SEED",
    "GLOBAL_SEED",
    "mirror_sides",
    "out_cols_for",
    "task_for_out_cols",
    "cycle_duration_s",
]

#: frames per time-normalised gait cycle (right IC to next right IC, inclusive)
T: int = 180

#: model input channels, degrees, in this order (OpenSim Rajagopal 2016 convention:
#: knee_angle positive in flexion; left coordinates mirrored like the right ones)
IN_COLS: tuple[str, ...] = (
    "hip_flexion_r",
    "hip_adduction_r",
    "hip_rotation_r",
    "hip_flexion_l",
    "hip_adduction_l",
    "hip_rotation_l",
    "knee_angle_r",
    "ankle_angle_r",
    "knee_angle_l",
    "ankle_angle_l",
)
N_IN: int = len(IN_COLS)

#: right-hip muscle-force outputs (N/kg)
MF_COLS: tuple[str, ...] = (
    "addbrev_r",
    "addlong_r",
    "addmag_r",
    "grac_r",
    "iliopsoas_r",
    "recfem_r",
    "sart_r",
    "glmax_r",
    "bflh_r",
    "hamstring_r",
    "glmed_r",
    "glmin_r",
    "tfl_r",
    "piri_r",
)
#: right-hip joint-moment outputs (Nm/kg)
JM_COLS: tuple[str, ...] = (
    "hip_flexion_r_moment",
    "hip_adduction_r_moment",
    "hip_rotation_r_moment",
)

#: task key -> output columns
TASKS: dict[str, tuple[str, ...]] = {"mf": MF_COLS, "jm": JM_COLS}
#: task key -> per-kg unit of the model's outputs
TARGET_UNIT: dict[str, str] = {"mf": "N/kg", "jm": "Nm/kg"}
#: task key -> unit of the raw (not mass-normalised) targets in the dataset files
RAW_UNIT: dict[str, str] = {"mf": "N", "jm": "Nm"}

#: metronome cadences of the three speed conditions (steps per minute)
CADENCE_STEPS_PER_MIN: dict[str, float] = {"slow": 78.0, "med": 115.0, "fast": 135.0}
SPEED_LABELS: tuple[str, ...] = ("slow", "med", "fast")

#: seeds of the published protocol
HOLDOUT_SEED: int = 42
GLOBAL_SEED: int = 2025

SIDES: tuple[str, ...] = ("R", "L")


#: input index permutation that swaps _r and _l channels (the left hip is predicted by the
#: right-hip model from mirrored inputs)
def _other_side(name: str) -> str:
    stem, side = name[:-2], name[-2:]
    return stem + {"_r": "_l", "_l": "_r"}[side]


MIRROR_INDEX: tuple[int, ...] = tuple(IN_COLS.index(_other_side(c)) for c in IN_COLS)


def mirror_sides(q: np.ndarray) -> np.ndarray:
    """Swap right and left channels of ``q`` (..., 10); returns a new array."""
    q = np.asarray(q)
    if q.shape[-1] != N_IN:
        raise ValueError(f"expected {N_IN} channels in the last axis, got shape {q.shape}")
    return q[..., list(MIRROR_INDEX)]


def out_cols_for(task: str) -> tuple[str, ...]:
    """Output columns of a task key ('mf' or 'jm')."""
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: use one of {sorted(TASKS)}") from None


def task_for_out_cols(cols) -> str:
    """Task key whose output columns equal ``cols`` (order included)."""
    cols = tuple(str(c) for c in cols)
    for key, names in TASKS.items():
        if cols == names:
            return key
    raise ValueError(f"output columns {list(cols)} match neither task {sorted(TASKS)}")


def cycle_duration_s(speed_label: str) -> float:
    """Duration of one gait cycle (two steps) at a condition's metronome cadence."""
    return 120.0 / CADENCE_STEPS_PER_MIN[speed_label]
