"""g2h_edge.gait: pure-numpy gait-cycle handling.

- :class:`CycleAssembler` / :class:`Cycle` / :class:`CycleConfig`: per-stream ring buffer,
  IC-to-IC cycle checks and time normalisation;
- :func:`resample_cycle`: linear resampling of one cycle to 180 frames (sub-frame ICs);
- :class:`OnlineICDetector` / :class:`ICDetectorConfig` / :func:`detect_ics`: causal
  initial-contact detection from the joint angles alone.
"""
from g2h_edge.gait.assembler import Cycle, CycleAssembler
from g2h_edge.gait.config import CycleConfig, ICDetectorConfig, from_mapping
from g2h_edge.gait.resample import resample_cycle

__all__ = [
    "Cycle", "CycleAssembler", "CycleConfig", "ICDetectorConfig", "from_mapping",
    "resample_cycle",
]
