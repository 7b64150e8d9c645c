"""g2h_edge.sources: publishers of protocol-v1 frames: replay of recorded trials
(:mod:`g2h_edge.sources.replay`) and the live adapters, not imported here: Lab Streaming
Layer (:mod:`.lsl`, ``lsl`` extra), Xsens MVN UDP (:mod:`.mvn`), Qualisys QTM RT
(:mod:`.qtm`, ``qtm`` extra), all mapping channels through :mod:`g2h_edge.io.mapping` and the
last two publishing through :mod:`.publisher`."""

from g2h_edge.sources.replay import (
    RECOMMENDED_FRAMES_PER_MESSAGE,
    ReplayConfig,
    ReplayStats,
    load_trial_file,
    replay,
)

__all__ = ["ReplayConfig", "ReplayStats", "replay", "load_trial_file", "RECOMMENDED_FRAMES_PER_MESSAGE"]
