"""The server's output messages built from its ready cycles (the one place a ``cycle``
message is put together: engine output, ensemble spread, quality checks and scores)."""

from __future__ import annotations

import numpy as np

from g2h_edge.gait.quality import cycle_quality
from g2h_edge.runtime.stream import ReadyCycle
from g2h_edge.wire import encode_cycle

__all__ = ["cycle_message"]


def cycle_message(
    r: ReadyCycle,
    eng,
    y: np.ndarray,
    latency_ms: float,
    cpu_ms: float | None = None,
    y_sd: np.ndarray | None = None,
) -> list[bytes]:
    """The ``cycle`` message of ready cycle ``r`` from engine ``eng``'s output ``y``
    (180, K) per kg, with the ensemble spread ``y_sd`` (180, K) when the engine is an
    ensemble (the one place a cycle message is built). Its ``quality`` adds the input
    checks and scores of :func:`g2h_edge.gait.quality.cycle_quality`."""
    quality = cycle_quality(eng.metadata, r.x, r.quality, y_sd=y_sd, neighbour_durations_s=r.neighbours_s)
    return encode_cycle(
        stream=r.stream,
        side=r.side,
        cycle=r.index,
        t_start=r.t_start,
        t_end=r.t_end,
        model=eng.name,
        sha256=eng.sha256,
        backend=eng.backend,
        outputs=eng.out_cols,
        unit=eng.unit,
        y=y,
        quality=quality,
        latency_ms=latency_ms,
        synthetic=bool(eng.synthetic),
        body_mass_kg=r.body_mass_kg,
        cpu_ms=cpu_ms,
        y_sd=y_sd,
    )
