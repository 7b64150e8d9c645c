"""Engines as the server uses them: loading, the checks that refuse a model, latency stats."""

from __future__ import annotations

import numpy as np

from g2h_edge.errors import ConfigError, ModelError
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.schema import IN_COLS, T

__all__ = ["load_engines", "check_engine", "warm_sizes", "latency_summary"]


def load_engines(config: ServerConfig) -> list:
    """Load and check every engine of the config (synthetic models need allow_synthetic)."""
    from g2h_edge.engines.ensemble import load_any

    engines = []
    try:
        for path in config.engines:  # a file, an ensemble manifest or "A.pt,B.pt"
            engines.append(
                load_any(
                    path,
                    threads=config.engine_threads,
                    torch_precision=config.torch_precision,
                    torch_compile=config.torch_compile,
                    trust_native=config.trust_native,
                )
            )
            check_engine(engines[-1], path, config.allow_synthetic)
    except BaseException:
        for eng in engines:
            eng.close()
        raise
    return engines


def check_engine(eng, path: str, allow_synthetic: bool) -> None:
    """Refuse engines the runtime cannot serve (wrong inputs or length, synthetic)."""
    if tuple(eng.in_cols) != IN_COLS:
        raise ModelError(
            f"engine {path} expects inputs {list(eng.in_cols)}, the runtime feeds {list(IN_COLS)}",
            reason="bad_inputs",
        )
    if int(eng.T) != T:
        raise ModelError(
            f"engine {path} expects {eng.T} frames per cycle, the runtime resamples to {T}",
            reason="bad_length",
        )
    if eng.synthetic and not allow_synthetic:
        raise ConfigError(
            f"engine {path} ({eng.name}) was trained on SYNTHETIC data: its "
            "outputs are not physiology. Pass --allow-synthetic to serve it "
            "anyway (demos, tests).",
            reason="synthetic_model",
        )


def latency_summary(lat: np.ndarray) -> dict:
    """n, p50, p99 and max of latencies in ms (``{"n": 0}`` when empty)."""
    if lat.size == 0:
        return {"n": 0}
    p50, p99 = np.percentile(lat, [50, 99])
    return {
        "n": int(lat.size),
        "p50": round(float(p50), 4),
        "p99": round(float(p99), 4),
        "max": round(float(lat.max()), 4),
    }


def warm_sizes(max_batch: int) -> tuple[int, ...]:
    """The batch sizes to warm an engine up for: 1, 2, 4, ... up to min(max_batch, 64), and
    max_batch itself (a compiled torch engine compiles them at start-up)."""
    sizes = {1 << i for i in range(7) if 1 << i <= max_batch}
    return tuple(sorted(sizes | {max_batch}))
