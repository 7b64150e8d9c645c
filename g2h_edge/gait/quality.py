"""Per-cycle quality: out-of-distribution scores and heuristic flags (pure numpy).

Every function takes one model-input cycle ``x`` (T, 10) in degrees, ``schema.IN_COLS``
order, time-normalised from an initial contact of the predicted hip to the next one (a left
cycle is already mirrored, so its predicted hip is in the ``_r`` slots). Nothing here knows
about sockets or engines; the runtime and ``predict`` call :func:`assess_cycle`.

Scores (higher = further from what the model was trained on):

- ``ood_z``: per channel, the cycle mean against the bundle's input mean/std (every model has
  these), as ``|mean_t x - mu| / sd``; the score is the largest over channels, ``ood_channel``
  names it. Coarse: ``sd`` mixes within-cycle and between-subject spread.
- ``ood_phase_z``: with an :func:`input_summary` (per-phase mean/sd of the training cycles,
  stored in bundles trained or adapted here), the RMS over phase bins of the z-scores of the
  cycle's bin means, largest over channels (``ood_phase_channel``).

Flags (strings, empty list = nothing noticed), thresholds in :class:`QualityConfig`; the
defaults were checked to fire on none of the 24 real cycles of ``shared/data/schreiber2019``:

- ``ankle_flip_r`` / ``ankle_flip_l``: the ankle is more plantarflexed at mid-stance
  (30-50 % of that leg's cycle) than at push-off (55-70 %): the reverse of walking, the
  signature of a sign flip. The other leg's cycle is taken 50 % later.
- ``hip_rotation_mismatch``: right and (half-cycle shifted) left hip rotation are
  anti-correlated, i.e. one side's sign is flipped (walking gives +0.5..+1).
- ``offset:<channel>``: the cycle mean of a channel is further than ``offset_deg`` from the
  model's input mean (a constant calibration/segment offset).
- ``asymmetry:<joint>``: right and left cycle means of a joint differ by more than a
  per-joint threshold (8-12 deg, times ``asymmetry_scale``), both as they are and after
  removing the model's own right-left difference of input means (a one-sided offset; the
  published pool's left-right means differ by up to 9 deg).
- ``short_cycle`` / ``long_cycle``: duration outside ``min_duration_s``..``max_duration_s``.
- ``duration_vs_neighbours``: duration / median of the stream's previous cycle durations
  outside ``1/neighbour_ratio``..``neighbour_ratio`` (a missed or false initial contact).
- ``jump:<channel>``: a frame-to-frame change faster than ``jump_deg_per_s`` (a marker swap,
  a gap bridged across a discontinuity). Real walking peaks near 500 deg/s.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from g2h_edge.config import check_numeric_fields, config_from_mapping
from g2h_edge.errors import ConfigError, DataError
from g2h_edge.schema import IN_COLS, N_IN

__all__ = [
    "QualityConfig",
    "input_summary",
    "check_summary",
    "ood_z",
    "ood_phase_z",
    "quality_flags",
    "assess_cycle",
    "cycle_quality",
    "N_BINS",
]

#: phase bins of an input summary (18 bins: 10 frames of a 180-frame cycle each)
N_BINS = 18
_CH = {c: i for i, c in enumerate(IN_COLS)}
#: bilateral joints (channel stem, right-left asymmetry threshold in deg): the defaults sit
#: above the largest right-left difference of cycle means seen in the real trials (~7 deg)
_PAIRS = (
    ("hip_flexion", 10.0),
    ("hip_adduction", 10.0),
    ("hip_rotation", 12.0),
    ("knee_angle", 10.0),
    ("ankle_angle", 8.0),
)


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the heuristic flags (degrees, seconds, ratios)."""

    ankle_flip_margin_deg: float = 3.0
    hip_rotation_min_corr: float = -0.3
    offset_deg: float = 25.0
    asymmetry_scale: float = 1.0
    min_duration_s: float = 0.7
    max_duration_s: float = 2.2
    neighbour_ratio: float = 1.3
    jump_deg_per_s: float = 1200.0
    default_duration_s: float = 1.0

    def __post_init__(self):
        check_numeric_fields(self)
        if (
            self.neighbour_ratio <= 1.0
            or self.min_duration_s >= self.max_duration_s
            or min(
                self.offset_deg,
                self.asymmetry_scale,
                self.jump_deg_per_s,
                self.default_duration_s,
                self.min_duration_s,
            )
            <= 0
        ):
            raise ConfigError(f"QualityConfig thresholds are inconsistent: {self}")

    @classmethod
    def from_dict(cls, d) -> QualityConfig:
        """Build from a mapping; unknown keys are a ConfigError."""
        return config_from_mapping(cls, d)


def _cycle(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_IN or x.shape[0] < N_BINS:
        raise DataError(
            f"a quality check needs one cycle (T>={N_BINS}, {N_IN}) in degrees, got shape {x.shape}",
            reason="shape",
        )
    return x


def _bin_means(x: np.ndarray, n_bins: int) -> np.ndarray:
    """(..., T, C) -> (..., n_bins, C): mean over equal phase bins."""
    T = x.shape[-2]
    if T % n_bins == 0:  # equal bins (180 frames, 18 bins): one reduction, same sums
        return x.reshape(x.shape[:-2] + (n_bins, T // n_bins, x.shape[-1])).mean(-2)
    edges = np.linspace(0, T, n_bins + 1).round().astype(int)
    return np.stack([x[..., a:b, :].mean(-2) for a, b in zip(edges[:-1], edges[1:])], -2)


def input_summary(X, n_bins: int = N_BINS) -> dict:
    """Per-phase summary of training cycles X (N, T, 10) degrees, as plain lists:
    ``{"n_bins", "n_cycles", "mean": n_bins x 10, "sd": n_bins x 10}`` (sd across cycles of
    the bin means, floored at 0.5 deg so a constant channel cannot divide by ~0)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[2] != N_IN or X.shape[0] < 2:
        raise DataError(
            f"an input summary needs at least 2 cycles (N, T, {N_IN}), got shape {X.shape}", reason="shape"
        )
    b = _bin_means(X, n_bins)  # (N, bins, 10)
    return {
        "n_bins": int(n_bins),
        "n_cycles": int(X.shape[0]),
        "mean": b.mean(0).round(4).tolist(),
        "sd": np.maximum(b.std(0), 0.5).round(4).tolist(),
    }


#: the last summaries validated (id -> (summary, checked)): the runtime asks for the same
#: engine's summary at every cycle; the object is kept, so its id cannot be reused
_CHECKED: dict[int, tuple] = {}


def _checked_summary(summary) -> dict:
    """:func:`check_summary`, remembered for the same summary object (bundle and ONNX
    metadata never change after loading; a summary edited in place is not checked again:
    pass a new object)."""
    hit = _CHECKED.get(id(summary))
    if hit is not None and hit[0] is summary:
        return hit[1]
    checked = check_summary(summary)
    if len(_CHECKED) >= 16:
        _CHECKED.clear()
    _CHECKED[id(summary)] = (summary, checked)
    return checked


def check_summary(summary) -> dict:
    """Validate an input summary (as stored in a bundle); returns it with numpy arrays."""
    try:
        n = int(summary["n_bins"])
        mean = np.asarray(summary["mean"], np.float64)
        sd = np.asarray(summary["sd"], np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"input_summary must hold n_bins, mean and sd: {exc}", reason="bad_summary") from None
    if mean.shape != (n, N_IN) or sd.shape != (n, N_IN) or not np.isfinite(mean).all() or not (sd > 0).all():
        raise DataError(
            f"input_summary mean/sd must be finite ({n}, {N_IN}) arrays with sd > "
            f"0, got {mean.shape}/{sd.shape}",
            reason="bad_summary",
        )
    return {"n_bins": n, "mean": mean, "sd": sd, "n_cycles": int(summary.get("n_cycles", 0))}


def ood_z(x, mean, std, *, cycle_mean=None) -> tuple[float, str]:
    """Largest over channels of |cycle mean - mean| / std, and that channel's name
    (``cycle_mean``: ``x.mean(0)`` when the caller has it)."""
    m = _cycle(x).mean(0) if cycle_mean is None else cycle_mean
    z = np.abs(m - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    i = int(np.argmax(z))
    return float(z[i]), IN_COLS[i]


def ood_phase_z(x, summary) -> tuple[float, str]:
    """Largest over channels of the RMS over phase bins of the bin-mean z-scores."""
    s = _checked_summary(summary)
    b = _bin_means(_cycle(x), s["n_bins"])  # (bins, 10)
    z = np.sqrt((((b - s["mean"]) / s["sd"]) ** 2).mean(0))  # (10,)
    i = int(np.argmax(z))
    return float(z[i]), IN_COLS[i]


@lru_cache(maxsize=64)
def _window(T: int, lo: float, hi: float, shift: int) -> np.ndarray:
    """Frame indices of the phase window lo..hi % (inclusive) of a cycle starting ``shift``
    frames into this T-frame cycle (cached: the runtime asks for the same few windows)."""
    ph = np.linspace(0.0, 100.0, T)
    return (np.flatnonzero((ph >= lo) & (ph <= hi)) + shift) % T


def _phase_mean(v: np.ndarray, lo: float, hi: float, shift: int = 0) -> float:
    w = _window(v.size, lo, hi, shift)
    return float(np.add.reduce(v.take(w)) / w.size)  # == v[w].mean(), without its dispatch


def _corr(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u - u.mean(), v - v.mean()
    den = np.sqrt((u * u).sum() * (v * v).sum())
    return float((u * v).sum() / den) if den > 1e-9 else 0.0


def _sign_flags(x: np.ndarray, cfg: QualityConfig) -> list[str]:
    flags, half = [], x.shape[0] // 2
    for side, ch, shift in (("r", "ankle_angle_r", 0), ("l", "ankle_angle_l", half)):
        a = x[:, _CH[ch]]  # that leg's own cycle starts ``shift`` frames in
        if _phase_mean(a, 30, 50, shift) - _phase_mean(a, 55, 70, shift) < -cfg.ankle_flip_margin_deg:
            flags.append(f"ankle_flip_{side}")
    rot_l = x[:, _CH["hip_rotation_l"]]
    rot_l = np.concatenate((rot_l[-half:], rot_l[:-half])) if half else rot_l  # == np.roll(rot_l, half)
    rot = _corr(x[:, _CH["hip_rotation_r"]], rot_l)
    if rot < cfg.hip_rotation_min_corr:
        flags.append("hip_rotation_mismatch")
    return flags


def _offset_flags(x: np.ndarray, ref_mean, cfg: QualityConfig, m=None) -> list[str]:
    m = x.mean(0) if m is None else m  # (10,) cycle means
    flags = []
    if ref_mean is not None:
        ref_mean = np.asarray(ref_mean, np.float64)
        d = np.abs(m - ref_mean)
        flags += [f"offset:{IN_COLS[i]}" for i in np.flatnonzero(d > cfg.offset_deg)]
    m = m.tolist()  # plain floats: the same float64 arithmetic, no numpy scalars
    if ref_mean is not None:
        ref_mean = ref_mean.tolist()
    for joint, thr in _PAIRS:
        r, lf = _CH[joint + "_r"], _CH[joint + "_l"]
        d = [abs(m[r] - m[lf])]
        if ref_mean is not None:  # the training pool's own right-left difference
            d.append(abs(m[r] - m[lf] - (ref_mean[r] - ref_mean[lf])))
        if min(d) > thr * cfg.asymmetry_scale:
            flags.append(f"asymmetry:{joint}")
    return flags


def _timing_flags(x: np.ndarray, duration_s, neighbours, cfg: QualityConfig) -> list[str]:
    flags = []
    if duration_s is not None:
        if duration_s < cfg.min_duration_s:
            flags.append("short_cycle")
        elif duration_s > cfg.max_duration_s:
            flags.append("long_cycle")
        nb = [float(d) for d in (neighbours or ()) if d and d > 0]
        if nb:
            ratio = duration_s / statistics.median(nb)
            if not 1.0 / cfg.neighbour_ratio <= ratio <= cfg.neighbour_ratio:
                flags.append("duration_vs_neighbours")
    dt = (duration_s or cfg.default_duration_s) / (x.shape[0] - 1)
    rate = np.abs(np.diff(x, axis=0)).max(0) / dt  # (10,) deg/s
    flags += [f"jump:{IN_COLS[i]}" for i in np.flatnonzero(rate > cfg.jump_deg_per_s)]
    return flags


def quality_flags(
    x,
    *,
    duration_s: float | None = None,
    neighbour_durations_s=(),
    ref_mean=None,
    config: QualityConfig | None = None,
) -> list[str]:
    """Heuristic flags of one cycle (see the module doc); ``ref_mean`` is the model's input
    mean (10,) for the ``offset`` flags, ``neighbour_durations_s`` the stream's previous
    cycle durations of the same side."""
    return _flags(_cycle(x), duration_s, neighbour_durations_s, ref_mean, config)


_DEFAULT_CONFIG = QualityConfig()


def _flags(x, duration_s, neighbours, ref_mean, config, cycle_mean=None) -> list[str]:
    cfg = config or _DEFAULT_CONFIG
    return (
        _sign_flags(x, cfg)
        + _offset_flags(x, ref_mean, cfg, cycle_mean)
        + _timing_flags(x, duration_s, neighbours, cfg)
    )


def assess_cycle(
    x,
    *,
    mean=None,
    std=None,
    summary=None,
    y_sd=None,
    duration_s: float | None = None,
    neighbour_durations_s=(),
    config: QualityConfig | None = None,
) -> dict:
    """Everything known about one cycle's trustworthiness, as plain values:
    ``flags`` (list of str), ``ood_z``/``ood_channel`` (with mean/std),
    ``ood_phase_z``/``ood_phase_channel`` (with an input summary), ``y_sd_mean`` and
    ``y_sd_max`` (with an ensemble's per-frame spread ``y_sd`` (T, K))."""
    x = _cycle(x)
    m = x.mean(0)  # (10,) cycle means, shared by the offset flags and ood_z
    out: dict = {"flags": _flags(x, duration_s, neighbour_durations_s, mean, config, m)}
    if mean is not None and std is not None:
        z, ch = ood_z(x, mean, std, cycle_mean=m)
        out["ood_z"], out["ood_channel"] = round(z, 4), ch
    if summary is not None:
        z, ch = ood_phase_z(x, summary)
        out["ood_phase_z"], out["ood_phase_channel"] = round(z, 4), ch
    if y_sd is not None:
        sd = np.asarray(y_sd, np.float64)
        out["y_sd_mean"] = round(float(sd.mean()), 6)
        out["y_sd_max"] = round(float(sd.max()), 6)
    return out


def cycle_quality(metadata: dict, x, quality: dict, *, y_sd=None, neighbour_durations_s=()) -> dict:
    """The runtime's hook: ``quality`` (the assembler's dict, with ``duration_s``) merged
    with :func:`assess_cycle` against a model's ``metadata`` (its ``mean``/``std`` and
    optional ``input_summary``) and an ensemble's spread ``y_sd`` (T, K) (or None)."""
    out = dict(quality)
    try:
        out.update(
            assess_cycle(
                x,
                mean=metadata.get("mean"),
                std=metadata.get("std"),
                summary=metadata.get("input_summary"),
                y_sd=y_sd,
                duration_s=quality.get("duration_s"),
                neighbour_durations_s=neighbour_durations_s,
            )
        )
    except (DataError, ValueError, TypeError) as exc:  # e.g. a malformed summary in ONNX
        # metadata: the prediction is still published, the failed check says why
        out.update(flags=["quality_check_failed"], quality_error=str(exc)[:200])
    return out
