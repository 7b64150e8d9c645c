"""g2h_edge.io: trial and dataset readers/writers, synthetic data.

Gait2Hip NPZ (:mod:`.npz`), OpenSim .mot/.sto and CSV trials (:mod:`.trial`), synthetic
cohorts and streams (:mod:`.synth`). The ``predict``/``synth`` commands live in :mod:`.cli`.
"""
from g2h_edge.io.npz import Gait2HipData, read_gait2hip_npz, validate_gait2hip, write_gait2hip_npz
from g2h_edge.io.synth import cycles_to_stream, join_cycles, make_cohort, make_stream, synthetic_labels
from g2h_edge.io.trial import Trial, read_events, read_trial, write_events_json, write_trial_csv

__all__ = [
    "Gait2HipData", "read_gait2hip_npz", "write_gait2hip_npz", "validate_gait2hip",
    "Trial", "read_trial", "read_events", "write_trial_csv", "write_events_json",
    "make_cohort", "synthetic_labels", "make_stream", "cycles_to_stream", "join_cycles",
]
