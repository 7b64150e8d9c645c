"""g2h_edge.gait: pure-numpy gait-cycle handling.

- :class:`OnlineICDetector` / :class:`ICDetectorConfig` / :func:`detect_ics`: causal
  initial-contact detection from the joint angles alone (both sides, any chunking);
- :class:`CycleAssembler` / :class:`Cycle` / :class:`CycleConfig`: per-stream ring buffer,
  IC-to-IC cycle checks and time normalisation;
- :func:`resample_cycle`: linear resampling of one cycle to 180 frames (sub-frame ICs);
- :mod:`g2h_edge.gait.gates`: the detector's gates as pure functions;
- :mod:`g2h_edge.gait.convention`: unit / knee-sign checks (owned by the io component).

The detector's accuracy against known ICs is measured by the tool
``python -m g2h_edge.bench.detector DATA_DIR`` (:mod:`g2h_edge.bench.detector`).
"""

from g2h_edge.gait.assembler import Cycle, CycleAssembler
from g2h_edge.gait.config import CycleConfig, ICDetectorConfig, from_mapping
from g2h_edge.gait.detector import OnlineICDetector, detect_ics, fit_peak, foot_reach
from g2h_edge.gait.gates import GATES, PeakMeasures, gate_peak
from g2h_edge.gait.resample import resample_cycle

__all__ = [
    "OnlineICDetector",
    "ICDetectorConfig",
    "detect_ics",
    "foot_reach",
    "fit_peak",
    "GATES",
    "PeakMeasures",
    "gate_peak",
    "Cycle",
    "CycleAssembler",
    "CycleConfig",
    "from_mapping",
    "resample_cycle",
]
