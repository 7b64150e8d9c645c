"""g2h_edge.sources: publishers of protocol-v1 frames: replay of recorded trials
(:mod:`g2h_edge.sources.replay`) and the live Lab Streaming Layer adapter
(:mod:`g2h_edge.sources.lsl`, needs the ``lsl`` extra; not imported here)."""
from g2h_edge.sources.replay import (
                                     RECOMMENDED_FRAMES_PER_MESSAGE,
                                     ReplayConfig,
                                     ReplayStats,
                                     load_trial_file,
                                     replay,
)

__all__ = ["ReplayConfig", "ReplayStats", "replay", "load_trial_file",
           "RECOMMENDED_FRAMES_PER_MESSAGE"]
