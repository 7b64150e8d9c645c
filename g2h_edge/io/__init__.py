"""g2h_edge.io: trial and dataset readers/writers, synthetic data.

Gait2Hip NPZ (:mod:`.npz`), trials — OpenSim .mot/.sto, CSV (plain, Nexus, Visual3D;
:mod:`.tables`), c3d (:mod:`.c3d`, ``c3d`` extra) — through one mapping layer
(:mod:`.mapping`), offline cycles at events (:mod:`.cycles`), labels from OpenSim results
(:mod:`.label`, :mod:`.opensim_run`), synthetic cohorts and streams (:mod:`.synth`). The
``predict``/``synth``/``label`` commands live in :mod:`.cli`.
"""

from g2h_edge.io.cycles import TrialCycles, cut_cycles
from g2h_edge.io.mapping import MappingConfig
from g2h_edge.io.npz import Gait2HipData, read_gait2hip_npz, validate_gait2hip, write_gait2hip_npz
from g2h_edge.io.synth import cycles_to_stream, join_cycles, make_cohort, make_stream, synthetic_labels
from g2h_edge.io.trial import (
    Trial,
    read_events,
    read_events_file,
    read_trial,
    write_events_json,
    write_trial_csv,
)

__all__ = [
    "Gait2HipData",
    "read_gait2hip_npz",
    "write_gait2hip_npz",
    "validate_gait2hip",
    "Trial",
    "read_trial",
    "read_events",
    "read_events_file",
    "write_trial_csv",
    "write_events_json",
    "MappingConfig",
    "cut_cycles",
    "TrialCycles",
    "make_cohort",
    "synthetic_labels",
    "make_stream",
    "cycles_to_stream",
    "join_cycles",
]
