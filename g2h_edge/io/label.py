"""Training labels from a lab's own OpenSim results: IK angles + ID moments / SO forces
-> the Gait2Hip NPZ schema (``g2h-edge label``).

:func:`label_trial` reads the inverse-kinematics ``.mot`` (the ten Rajagopal coordinates,
through the mapping layer), the IC events (``--events`` .json/.c3d, a c3d's EVENT group or
``<stem>_events.json``), cuts cycles IC to IC with the server's checks
(:func:`g2h_edge.io.cycles.cut_cycles`), and resamples the targets over the same
[t_start, t_end]:

- ``jm``: OpenSim inverse dynamics ``.sto`` columns ``hip_flexion_<s>_moment``,
  ``hip_adduction_<s>_moment``, ``hip_rotation_<s>_moment`` in N·m (``id_per_kg=True``
  multiplies a per-kg file by the body mass).
- ``mf``: static optimisation ``*_force.sto`` (N), Rajagopal 2016 muscles summed into the
  14 outputs by :data:`RAJAGOPAL_TO_MF` (documented in docs/data_formats.md).

A left cycle gets mirrored inputs and the ``_l`` targets under the ``_r`` names (the
right-hip model's view of the left hip). Moments keep OpenSim's sign: the net internal
moment in the direction of the coordinate (hip flexor, adductor, internal-rotator moments
positive). :func:`write_labels` writes (or appends to) the NPZ.

The OpenSim-running path (:mod:`g2h_edge.io.opensim_run`, ``opensim`` extra) produces the
.mot/.sto files with OpenSim's own tools and then calls :func:`label_trial`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.gait.resample import resample_cycle
from g2h_edge.io.cycles import cut_cycles
from g2h_edge.io.mapping import MappingConfig, normalise_label
from g2h_edge.io.npz import Gait2HipData, read_gait2hip_npz, write_gait2hip_npz
from g2h_edge.io.tables import read_mot_table
from g2h_edge.io.trial import read_trial
from g2h_edge.schema import JM_COLS, SPEED_LABELS, TASKS

__all__ = ["RAJAGOPAL_TO_MF", "LabelConfig", "LabelResult", "label_trial", "write_labels", "target_columns"]

#: Gait2Hip muscle output -> Rajagopal 2016 muscles (right side names) whose forces are
#: summed; the _l side uses the same names with _l
RAJAGOPAL_TO_MF: dict[str, tuple[str, ...]] = {
    "addbrev_r": ("addbrev_r",),
    "addlong_r": ("addlong_r",),
    "addmag_r": ("addmagDist_r", "addmagIsch_r", "addmagMid_r", "addmagProx_r"),
    "grac_r": ("grac_r",),
    "iliopsoas_r": ("iliacus_r", "psoas_r"),
    "recfem_r": ("recfem_r",),
    "sart_r": ("sart_r",),
    "glmax_r": ("glmax1_r", "glmax2_r", "glmax3_r"),
    "bflh_r": ("bflh_r",),
    "hamstring_r": ("semimem_r", "semiten_r"),
    "glmed_r": ("glmed1_r", "glmed2_r", "glmed3_r"),
    "glmin_r": ("glmin1_r", "glmin2_r", "glmin3_r"),
    "tfl_r": ("tfl_r",),
    "piri_r": ("piri_r",),
}


@dataclass(frozen=True)
class LabelConfig:
    """One trial to label (paths as str or Path; units in names)."""

    ik_path: str
    task: str  # "jm" or "mf"
    targets_path: str  # ID .sto (jm) or SO force .sto (mf)
    subject_id: str
    speed_label: str
    height_m: float
    body_mass_kg: float | None = None  # None: from the events file / c3d
    mapping: MappingConfig = MappingConfig()
    id_per_kg: bool = False

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task {self.task!r} must be one of {sorted(TASKS)}", reason="bad_option")
        if self.speed_label not in SPEED_LABELS:
            raise ConfigError(
                f"speed {self.speed_label!r} must be one of {list(SPEED_LABELS)}", reason="bad_option"
            )
        if not str(self.subject_id).strip():
            raise ConfigError("subject id must not be empty", reason="bad_option")
        if self.id_per_kg and self.task != "jm":
            raise ConfigError("id_per_kg applies to joint moments (task jm) only", reason="bad_option")


@dataclass
class LabelResult:
    data: Gait2HipData
    side: tuple[str, ...]
    t_start: np.ndarray
    t_end: np.ndarray
    rejects: list
    frames_in: int


def target_columns(task: str, side: str) -> dict[str, tuple[str, ...]]:
    """Output name -> source columns to sum, for the hip ``side`` ('R'/'L')."""
    suffix = "_r" if side == "R" else "_l"
    if task == "jm":
        return {c: (c.replace("_r_moment", suffix + "_moment"),) for c in JM_COLS}
    return {out: tuple(m[:-2] + suffix for m in src) for out, src in RAJAGOPAL_TO_MF.items()}


def _targets(path: Path):
    """(t (n,), {normalised label: column (n,)}) of an OpenSim .sto."""
    if path.suffix.lower() not in (".sto", ".mot"):
        raise DataError(
            f"{path}: targets must be an OpenSim .sto (inverse dynamics or static optimisation force file)",
            reason="unsupported_format",
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file", reason="not_found")
    tab, _ = read_mot_table(path, require_units=False)
    cols = {normalise_label(h.rsplit("/", 1)[-1]): tab.data[:, i] for i, h in enumerate(tab.labels)}
    if "time" not in cols:
        raise DataError(f"{path}: no time column", reason="missing_column")
    return cols.pop("time"), cols


def _side_targets(t, cols, task, side, label) -> np.ndarray:
    """(n, K) targets of one hip, columns summed per :func:`target_columns`."""
    out = []
    for name, src in target_columns(task, side).items():
        missing = [s for s in src if normalise_label(s) not in cols]
        if missing:
            raise DataError(
                f"{label}: missing column(s) {missing} for output {name} "
                f"({'inverse dynamics' if task == 'jm' else 'Rajagopal muscle'} "
                "names expected)",
                reason="missing_column",
            )
        out.append(np.sum([cols[normalise_label(s)] for s in src], axis=0))
    y = np.stack(out, axis=1)
    if not np.isfinite(y).all():
        raise DataError(f"{label}: non-finite target values", reason="nan")
    return y


def label_trial(cfg: LabelConfig) -> LabelResult:
    """Cycles and targets of one trial (see module doc)."""
    trial = read_trial(cfg.ik_path, mapping=cfg.mapping)
    mass = cfg.body_mass_kg if cfg.body_mass_kg is not None else trial.body_mass_kg
    if mass is None:
        raise DataError(
            f"{cfg.ik_path}: the body mass is unknown: pass --body-mass KG (or "
            "body_mass_kg in the events JSON)",
            reason="no_body_mass",
        )
    cut = cut_cycles(trial)
    if cut.n == 0:
        raise DataError(
            f"{cfg.ik_path}: no cycle passed the checks (rejects: {cut.reject_counts()})", reason="no_cycles"
        )
    tpath = Path(cfg.targets_path)
    tt, cols = _targets(tpath)
    ys = []
    for side, t0, t1 in zip(cut.side, cut.t_start, cut.t_end):
        y = _side_targets(tt, cols, cfg.task, side, str(tpath))
        ys.append(resample_cycle(tt, y, t0, t1))
    Y = np.stack(ys).astype(np.float32)
    if cfg.id_per_kg:
        Y = (Y * mass).astype(np.float32)
    n = cut.n
    data = Gait2HipData(
        X=cut.X,
        Y=Y,
        subject_id=np.full(n, str(cfg.subject_id)),
        height_m=np.full(n, cfg.height_m, np.float32),
        weight_kg=np.full(n, mass, np.float32),
        speed_label=np.full(n, cfg.speed_label),
        out_cols=TASKS[cfg.task],
        task=cfg.task,
        synthetic=False,
    )
    return LabelResult(data, cut.side, cut.t_start, cut.t_end, cut.rejects, cut.frames_in)


def write_labels(path, new: Gait2HipData, *, append: bool = False) -> Gait2HipData:
    """Write ``new`` to ``path`` (validated), or append it to the cycles already there."""
    path = Path(path)
    if append and path.is_file():
        old = read_gait2hip_npz(path)
        if old.task != new.task:
            raise DataError(
                f"{path} holds task {old.task!r}, these labels are {new.task!r}", reason="columns"
            )
        cat = lambda a, b: np.concatenate([a, b])
        new = Gait2HipData(
            cat(old.X, new.X),
            cat(old.Y, new.Y),
            cat(old.subject_id, new.subject_id),
            cat(old.height_m, new.height_m),
            cat(old.weight_kg, new.weight_kg),
            cat(old.speed_label, new.speed_label),
            out_cols=new.out_cols,
            task=new.task,
            synthetic=bool(old.synthetic or new.synthetic),
        )
    write_gait2hip_npz(path, new)
    return new
