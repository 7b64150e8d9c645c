"""Input cycles for export verification, int8 calibration and accuracy reports.

- :func:`parity_like_cycles`: smooth synthetic cycles around a model's training statistics
  (the same idea as the published ``parity.npz``: a few harmonics of the gait cycle per
  channel, amplitude about one standard deviation, plus one constant cycle at the mean).
- :func:`real_cycles`: real walking (``../shared/data/schreiber2019`` layout) segmented at the
  hand-marked force-plate foot strikes, right cycle as is and left cycle with mirrored inputs,
  each linearly resampled to T frames, with the OpenSim hip moments of that hip (Nm/kg).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError
from g2h_edge.schema import IN_COLS, JM_COLS, MIRROR_INDEX, N_IN

__all__ = ["parity_like_cycles", "RealCycles", "real_cycles", "resample"]


def parity_like_cycles(mean, std, n: int, T: int, *, seed: int = 0) -> np.ndarray:
    """``n`` smooth cycles (n, T, 10) float32 in degrees; the last one is constant at ``mean``.

    Each channel is mean + std * sum of 3 harmonics of the cycle with random amplitudes
    (about N(0, 0.6) each) and phases, so values stay in the training range.
    """
    if n < 1 or T < 2:
        raise ValueError(f"need n >= 1 and T >= 2, got n={n}, T={T}")
    mean = np.asarray(mean, np.float64).reshape(1, 1, N_IN)
    std = np.asarray(std, np.float64).reshape(1, 1, N_IN)
    rng = np.random.default_rng(seed)
    phase = np.linspace(0.0, 2.0 * np.pi, T).reshape(1, T, 1, 1)  # (1, T, 1, 1)
    k = np.arange(1, 4).reshape(1, 1, 1, 3)  # harmonics 1..3
    amp = rng.normal(0.0, 0.6, size=(n, 1, N_IN, 3)) / k  # (n, 1, 10, 3)
    off = rng.uniform(0.0, 2.0 * np.pi, size=(n, 1, N_IN, 3))
    wave = (amp * np.sin(k * phase + off)).sum(-1)  # (n, T, 10)
    x = mean + std * wave
    x[-1] = mean[0]  # a constant cycle at the mean (the all-zeros standardised input)
    return x.astype(np.float32)


def resample(t: np.ndarray, q: np.ndarray, t0: float, t1: float, T: int) -> np.ndarray:
    """Linear resampling of q (n, C) at T times from t0 to t1 inclusive -> (T, C) float32."""
    tt = np.linspace(t0, t1, T)
    return np.stack([np.interp(tt, t, q[:, c]) for c in range(q.shape[1])], 1).astype(np.float32)


@dataclass(frozen=True)
class RealCycles:
    """Real gait cycles: ``x`` (N, T, 10) degrees, ``y`` (N, T, 3) OpenSim hip moments
    (Nm/kg) of the same hip, ``side`` ("R"|"L" per cycle), ``trial`` (source file stems)."""

    x: np.ndarray
    y: np.ndarray
    side: tuple[str, ...]
    trial: tuple[str, ...]


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as fh:
        header = fh.readline().strip().split(",")
        rows = [
            [float(v) if v not in ("True", "False") else float(v == "True") for v in line.strip().split(",")]
            for line in fh
            if line.strip()
        ]
    return header, np.asarray(rows, np.float64)


def real_cycles(data_dir, T: int = 180) -> RealCycles:
    """Segment every schreiber2019 trial in ``data_dir`` at its foot strikes (R and L)."""
    folder = Path(data_dir) / "schreiber2019"
    files = sorted(folder.glob("*_angles.csv"))
    if not files:
        raise DataError(f"no *_angles.csv trials in {folder}", reason="missing_file")
    xs, ys, sides, trials = [], [], [], []
    for angles in files:
        stem = angles.name[: -len("_angles.csv")]
        header, a = _read_csv(angles)
        q = a[:, [header.index(c) for c in IN_COLS]]  # (n, 10) degrees
        mh, m = _read_csv(folder / f"{stem}_hipmoments.csv")
        events = json.loads((folder / f"{stem}_events.json").read_text())
        for side in ("R", "L"):
            strikes = events.get(f"foot_strike_{side}", [])
            if len(strikes) < 2:
                continue
            suffix = "_r_moment" if side == "R" else "_l_moment"
            mcols = [mh.index(c.replace("_r_moment", suffix)) for c in JM_COLS]
            x = resample(a[:, 0], q, strikes[0], strikes[1], T)
            if side == "L":
                x = x[:, list(MIRROR_INDEX)]  # the right-hip model sees the left as right
            xs.append(x)
            ys.append(resample(m[:, 0], m[:, mcols], strikes[0], strikes[1], T))
            sides.append(side)
            trials.append(stem)
    return RealCycles(np.stack(xs), np.stack(ys), tuple(sides), tuple(trials))
