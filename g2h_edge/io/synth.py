"""Synthetic Gait2Hip data: a cohort of cycles, its labels, and continuous streams.

NOT physiology. Kinematics are smooth walking-shaped waveforms (:mod:`.waveforms`) whose
channel means and spreads match the published training-pool statistics; labels are a
fixed, documented function of the kinematics (docs/synthetic.md) so that models can learn
them and pipelines can be tested end to end. Everything made here is flagged synthetic.

Angle model of channel c (joint j, side s) at gait phase phi (cycles from right IC)::

    q_c(phi) = MU_X[c] + off[subj, c] + AMP[c] * gain[subj, c] * cad_gain(cadence, j)
               * z_j(warp(phi - 0.5 * [s == L], a(stance))) + trial perturbation
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2h_edge.errors import ConfigError
from g2h_edge.io.npz import Gait2HipData
from g2h_edge.io.trial import Trial
from g2h_edge.io.waveforms import N_HARMONICS, phase_warp, template_coefficients, warp_for_stance
from g2h_edge.schema import CADENCE_STEPS_PER_MIN, IN_COLS, N_IN, RAW_UNIT, SPEED_LABELS, T, out_cols_for

__all__ = [
    "MU_X",
    "SD_X",
    "AMP",
    "make_cohort",
    "synthetic_labels",
    "make_stream",
    "cycles_to_stream",
    "join_cycles",
    "SyntheticSubject",
    "draw_subject",
    "subject_cycles",
    "LABEL_SEED",
]

#: published training-pool input mean / SD (degrees, IN_COLS order), Gait2Hip-60 checkpoints
MU_X = np.array([16.6, 2.8, -8.0, 21.0, -6.3, 1.2, 23.1, 5.6, 31.9, 8.9])
SD_X = np.array([22.3, 6.2, 7.2, 22.7, 6.5, 5.8, 20.0, 7.5, 18.6, 8.2])
#: within-cycle SD of each channel (deg); the rest of SD_X is between-subject offset
AMP = np.array([15.5, 5.0, 3.0, 15.5, 5.0, 3.0, 19.5, 6.5, 18.0, 6.5])
_JOINT = [c[:-2] for c in IN_COLS]
_IS_LEFT = np.array([c.endswith("_l") for c in IN_COLS])
_SAGITTAL = np.array([j in ("hip_flexion", "knee_angle", "ankle_angle") for j in _JOINT])
_COEF = np.stack([template_coefficients(j) for j in _JOINT])  # (10, 17)
_BASE = np.array([78.0, 115.0, 135.0])  # cadences (steps/min)
_STANCE = np.array([0.63, 0.61, 0.59])  # stance fraction
_CAD_GAIN = np.array([0.85, 1.0, 1.08])  # sagittal amplitude

LABEL_SEED = 20260530


def _cadence_params(cadence_spm: float) -> tuple[float, float]:
    """(stance fraction, sagittal amplitude gain) at a cadence, interpolated."""
    return (float(np.interp(cadence_spm, _BASE, _STANCE)), float(np.interp(cadence_spm, _BASE, _CAD_GAIN)))


@dataclass(frozen=True)
class SyntheticSubject:
    """Per-subject constants of the angle model."""

    offset_deg: np.ndarray  # (10,)
    gain: np.ndarray  # (10,)
    stance_shift: float  # added to the cadence's stance fraction
    height_m: float
    weight_kg: float


def _offset_sd() -> np.ndarray:
    # total variance = AMP^2 * E[gain^2 cad_gain^2] + offset variance
    e_g2 = 1.0 + 0.08**2
    e_c2 = np.where(_SAGITTAL, np.mean(_CAD_GAIN**2), 1.0)
    return np.sqrt(np.maximum(SD_X**2 - AMP**2 * e_g2 * e_c2, 1.0))


def draw_subject(rng: np.random.Generator) -> SyntheticSubject:
    """One synthetic subject (offsets/gains shared, partly, between sides)."""
    sd = _offset_sd()
    joints = list(dict.fromkeys(_JOINT))  # 5 joints, shared by both sides
    common = dict(zip(joints, rng.standard_normal(len(joints))))
    shared = np.array([common[j] for j in _JOINT])
    off = sd * (0.8 * shared + 0.6 * rng.standard_normal(N_IN))
    gain = np.exp(0.08 * rng.standard_normal(N_IN))
    h = float(np.clip(rng.normal(1.72, 0.09), 1.50, 1.98))
    w = float(np.clip(rng.normal(23.5, 2.8), 18.0, 32.0) * h * h)
    return SyntheticSubject(off, gain, float(rng.normal(0.0, 0.01)), h, round(w, 1))


def _balance(subjects: list[SyntheticSubject]) -> list[SyntheticSubject]:
    """Re-centre offsets (mean 0, target SD) and gains (mean 1) over the cohort."""
    if len(subjects) < 2:
        return subjects
    off = np.stack([s.offset_deg for s in subjects])
    gain = np.stack([s.gain for s in subjects])
    off = (off - off.mean(0)) / off.std(0) * _offset_sd()
    gain = gain / gain.mean(0)
    return [
        SyntheticSubject(o, g, s.stance_shift, s.height_m, s.weight_kg)
        for o, g, s in zip(off, gain, subjects)
    ]


def _angles(
    phase: np.ndarray, subj: SyntheticSubject, cadence_spm: np.ndarray, pert: np.ndarray | None = None
) -> np.ndarray:
    """Angles (n, 10) at ``phase`` (n,) cycles; cadence (n,); pert (n, 10, 17) or None."""
    stance = np.interp(cadence_spm, _BASE, _STANCE)  # (n,)
    cgain = np.interp(cadence_spm, _BASE, _CAD_GAIN)  # (n,)
    a = warp_for_stance(stance + subj.stance_shift)  # (n,)
    # Fourier basis once per side (R, L), then gathered per channel: (n, 10, 17)
    ph = np.stack([phase_warp(np.mod(phase - s, 1.0), a) for s in (0.0, 0.5)], axis=1)
    ang = 2 * np.pi * ph[..., None] * np.arange(1, N_HARMONICS + 1)  # (n, 2, H)
    basis = np.empty(ph.shape + (_COEF.shape[1],))
    basis[..., 0] = 1.0
    basis[..., 1::2], basis[..., 2::2] = np.cos(ang), np.sin(ang)
    coef = _COEF[None] if pert is None else _COEF[None] + pert  # (n|1, 10, 17)
    z = np.einsum(
        "ncj,ncj->nc", basis[:, _IS_LEFT.astype(int)], np.broadcast_to(coef, (phase.shape[0],) + _COEF.shape)
    )  # (n, 10)
    g = subj.gain * np.where(_SAGITTAL, cgain[:, None], 1.0)  # (n, 10)
    return MU_X + subj.offset_deg + AMP * g * z


def _perturbation(rng: np.random.Generator, scale: float = 0.06) -> np.ndarray:
    """Random low-harmonic change of the standardised templates: (10, 17)."""
    p = np.zeros((N_IN, _COEF.shape[1]))
    p[:, 1:7] = scale * rng.standard_normal((N_IN, 6))  # harmonics 1..3
    return p


def subject_cycles(
    subj: SyntheticSubject, cadence_spm: float, rng: np.random.Generator, n_trials: int
) -> np.ndarray:
    """``n_trials`` right cycles (n_trials, 180, 10), IC to IC inclusive."""
    phase = np.tile(np.linspace(0.0, 1.0, T), n_trials)  # (n_trials*T,)
    pert = np.repeat(np.stack([_perturbation(rng) for _ in range(n_trials)]), T, axis=0)
    q = _angles(phase, subj, np.full(phase.shape, float(cadence_spm)), pert)
    return q.reshape(n_trials, T, N_IN).astype(np.float32)


def make_cohort(
    task: str,
    n_subjects: int,
    seed: int,
    trials_per_condition: int = 4,
) -> Gait2HipData:
    """A synthetic cohort in the exact Gait2Hip schema (rows: subject, speed, trial)."""
    out_cols = out_cols_for(task)
    if not isinstance(n_subjects, int) or n_subjects < 1:
        raise ConfigError(f"n_subjects must be a positive integer, got {n_subjects!r}")
    if not isinstance(trials_per_condition, int) or trials_per_condition < 1:
        raise ConfigError(f"trials_per_condition must be >= 1, got {trials_per_condition!r}")
    rng = np.random.default_rng(seed)
    subjects = _balance([draw_subject(rng) for _ in range(n_subjects)])
    width = max(2, len(str(n_subjects)))
    X, sid, h, w, spd = [], [], [], [], []
    for i, subj in enumerate(subjects):
        for label in SPEED_LABELS:
            X.append(subject_cycles(subj, CADENCE_STEPS_PER_MIN[label], rng, trials_per_condition))
            k = trials_per_condition
            sid += [f"H{i + 1:0{width}d}"] * k
            h += [subj.height_m] * k
            w += [subj.weight_kg] * k
            spd += [label] * k
    X = np.concatenate(X)
    weight = np.array(w, dtype=np.float32)
    return Gait2HipData(
        X=X,
        Y=synthetic_labels(X, weight, task),
        subject_id=np.array(sid),
        height_m=np.array(h, dtype=np.float32),
        weight_kg=weight,
        speed_label=np.array(spd),
        in_cols=IN_COLS,
        out_cols=out_cols,
        task=task,
        synthetic=True,
    )


# ----------------------------------------------------------------------------- labels
#: per-kg output scales (N/kg or Nm/kg) of the synthetic labels
_MF_SCALE = np.array([1.5, 3.0, 5.0, 1.0, 8.0, 6.0, 1.5, 7.0, 5.0, 8.0, 12.0, 5.0, 3.0, 2.0])
_JM_SCALE = np.array([0.9, 0.7, 0.2])
_LAG = T // 10  # 18 frames = 10 % of the cycle
_N_FEAT = 3 * N_IN


def _label_weights(k: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Sparse (30, k) weights (4 features per output, unit L2 norm) and biases (k,)."""
    rng = np.random.default_rng(LABEL_SEED + (0 if task == "mf" else 1))
    W = np.zeros((_N_FEAT, k))
    for j in range(k):
        feats = rng.choice(_N_FEAT, size=4, replace=False)
        wj = rng.standard_normal(4)
        W[feats, j] = wj / np.linalg.norm(wj)
    return W, 0.3 * rng.standard_normal(k)


def label_features(X: np.ndarray) -> np.ndarray:
    """(N, 180, 30): z-scored angles, the same 10 % of a cycle earlier, and d/dphase."""
    z = (np.asarray(X, dtype=np.float64) - MU_X) / SD_X  # (N, T, 10)
    core = z[:, :-1]  # one period: (N, T-1, 10)
    lag = np.roll(core, _LAG, axis=1)  # value 10 % earlier
    vel = (np.roll(core, -1, axis=1) - np.roll(core, 1, axis=1)) * (T - 1) / (4 * np.pi)
    f = np.concatenate([core, lag, vel], axis=-1)  # (N, T-1, 30)
    return np.concatenate([f, f[:, :1]], axis=1)  # close the cycle


def synthetic_labels(X: np.ndarray, weight_kg: np.ndarray, task: str) -> np.ndarray:
    """Deterministic synthetic targets (N, 180, K) in raw units (N or Nm), float32.

    u = features(X) @ W + b (see :func:`label_features`, W sparse from LABEL_SEED);
    muscle forces: scale_k * softplus(2u - 1) / softplus(3) (>= 0, N/kg);
    joint moments: scale_k * tanh(u) (signed, Nm/kg); then times weight_kg.
    """
    cols = out_cols_for(task)
    X = np.asarray(X)
    if X.ndim != 3 or X.shape[1:] != (T, N_IN):
        raise ConfigError(f"X must be (N, {T}, {N_IN}), got {X.shape}")
    weight = np.asarray(weight_kg, dtype=np.float64).reshape(-1)
    if weight.shape != (X.shape[0],):
        raise ConfigError(f"weight_kg must have shape ({X.shape[0]},), got {weight.shape}")
    W, b = _label_weights(len(cols), task)
    u = label_features(X) @ W + b  # (N, T, K)
    if task == "mf":
        per_kg = _MF_SCALE * np.logaddexp(0.0, 2 * u - 1) / np.logaddexp(0.0, 3.0)
    else:
        per_kg = _JM_SCALE * np.tanh(u)
    assert RAW_UNIT[task] in ("N", "Nm")
    return (per_kg * weight[:, None, None]).astype(np.float32)


# ----------------------------------------------------------------------------- streams
def _check_rate(rate_hz: float) -> float:
    if not isinstance(rate_hz, (int, float)) or not 50.0 <= float(rate_hz) <= 1000.0:
        raise ConfigError(f"rate_hz must be within 50..1000 Hz, got {rate_hz!r}")
    return float(rate_hz)


def make_stream(
    duration_s: float,
    rate_hz: float,
    seed: int = 0,
    cadence_spm: float = 115.0,
    *,
    noise_deg: float = 0.0,
    cycle_cv: float = 0.03,
    amp_cv: float = 0.04,
    start_phase: float = 0.8,
    body_mass_kg: float | None = None,
) -> Trial:
    """A continuous synthetic walk of one subject with known initial contacts.

    Cycle durations are 120/cadence_spm s with coefficient of variation ``cycle_cv``;
    amplitudes vary by ``amp_cv`` and the waveform shape a little from cycle to cycle, all
    interpolated along the phase so the angles stay continuous. Right ICs are the instants
    the phase crosses an integer, left ICs where it crosses k + 0.5 (left = right shifted by
    half a cycle). ``start_phase`` is the phase at t = 0 (0.8: the first right IC comes
    ~0.2 cycle in). Gaussian ``noise_deg`` is added per sample. Events in ``trial.events``.
    """
    rate = _check_rate(rate_hz)
    if not 0.0 <= float(start_phase) < 1.0:
        raise ConfigError(f"start_phase must be within [0, 1), got {start_phase!r}")
    if not 0.5 <= float(duration_s) <= 3600.0:
        raise ConfigError(f"duration_s must be within 0.5..3600 s, got {duration_s!r}")
    if not 40.0 <= float(cadence_spm) <= 200.0:
        raise ConfigError(f"cadence_spm must be within 40..200 steps/min, got {cadence_spm!r}")
    rng = np.random.default_rng(seed)
    subj = draw_subject(rng)
    mass = subj.weight_kg if body_mass_kg is None else float(body_mass_kg)
    t = np.arange(int(round(duration_s * rate))) / rate  # (n,)
    period = 120.0 / cadence_spm
    n_cyc = int(np.ceil(duration_s / period * 1.3)) + 3
    dur = period * np.clip(1 + cycle_cv * rng.standard_normal(n_cyc), 0.7, 1.3)
    # cycle k spans phase [k, k+1) and starts at time ic[k]; phase start_phase at t = 0
    ic = np.concatenate([[0.0], np.cumsum(dur)]) - start_phase * dur[0]
    k = np.clip(np.searchsorted(ic, t, side="right") - 1, 0, n_cyc - 1)  # (n,)
    frac = (t - ic[k]) / dur[k]  # (n,) in [0, 1)
    pert = np.stack([_perturbation(rng) for _ in range(n_cyc + 1)])  # (n_cyc+1, 10, 17)
    gains = np.exp(amp_cv * rng.standard_normal((n_cyc + 1, N_IN)))  # (n_cyc+1, 10)
    base = SyntheticSubject(np.zeros(N_IN), np.ones(N_IN), subj.stance_shift, subj.height_m, subj.weight_kg)
    q = np.empty((t.size, N_IN))
    for i in range(0, t.size, 20000):  # chunks bound the (n, 10, 17) temps
        c = slice(i, i + 20000)
        f, kc = frac[c], k[c]
        p_now = (1 - f)[:, None, None] * pert[kc] + f[:, None, None] * pert[kc + 1]
        g_now = (1 - f)[:, None] * gains[kc] + f[:, None] * gains[kc + 1]  # (n, 10)
        wave = _angles(f, base, np.full(f.shape, float(cadence_spm)), p_now) - MU_X
        q[c] = MU_X + subj.offset_deg + wave * subj.gain * g_now
    if noise_deg > 0:
        q = q + noise_deg * rng.standard_normal(q.shape)
    t_end = t[-1] if t.size else 0.0
    ev_r = ic[(ic >= 0) & (ic <= t_end)]
    mid = ic[:-1] + 0.5 * dur
    ev_l = mid[(mid >= 0) & (mid <= t_end)]
    return Trial(
        t=t,
        q=q.astype(np.float32),
        rate_hz=rate,
        events={"R": ev_r, "L": ev_l},
        body_mass_kg=mass,
        source=f"synthetic:make_stream(seed={seed}, cadence_spm={cadence_spm:g}, rate_hz={rate:g})",
    )


def join_cycles(X: np.ndarray) -> np.ndarray:
    """The cycles exactly as :func:`cycles_to_stream` embeds them: (N, 180, 10) float32.

    Cycle i gets a linear ramp over its phase (0 at its start, full at its end) that moves
    its last frame onto the first frame of cycle i + 1, so the stream is continuous; the last
    cycle is unchanged. Predictions of a streamed cycle should be compared with these.
    """
    X = np.asarray(X, dtype=np.float64)
    out = X.copy()
    ramp = np.linspace(0.0, 1.0, X.shape[1])[None, :, None]  # (1, T, 1)
    out[:-1] += ramp * (X[1:, :1] - X[:-1, -1:])
    return out.astype(np.float32)


def cycles_to_stream(
    data: Gait2HipData, rate_hz: float, *, lead_s: float = 0.3, tail_s: float = 0.3, continuous: bool = True
) -> Trial:
    """String the cycles of ``data`` into one continuous stream (angles linear in phase).

    Cycle i lasts 120/cadence(speed_label[i]) s (120/115 s when there are no speed labels) and starts at the right IC ``events["R"][i]``; right ICs are the cycle
    boundaries (N + 1 of them), left ICs are at each cycle's midpoint (a convention: cycles
    do not carry their left IC). ``continuous=True`` joins cycles with :func:`join_cycles`;
    False embeds them unchanged (steps at the joins). The stream starts ``lead_s`` before
    the first IC (the first cycle's end, wrapped) and runs ``tail_s`` after the last.
    """
    rate = _check_rate(rate_hz)
    X = join_cycles(data.X) if continuous else np.asarray(data.X, dtype=np.float32)
    n_cyc = X.shape[0]
    if data.speed_label is None:
        dur = np.full(n_cyc, 120.0 / 115.0)
    else:
        dur = np.array([120.0 / CADENCE_STEPS_PER_MIN[s] for s in data.speed_label])
    ic = lead_s + np.concatenate([[0.0], np.cumsum(dur)])  # (N+1,)
    t = np.arange(int(np.floor((ic[-1] + tail_s) * rate)) + 1) / rate
    k = np.clip(np.searchsorted(ic, t, side="right") - 1, 0, n_cyc - 1)
    frac = (t - ic[k]) / dur[k]
    shift = np.zeros((t.size, N_IN))  # keeps ends continuous
    before = t < ic[0]  # cycle 0's end, wrapped
    frac[before] = 1.0 + (t[before] - ic[0]) / dur[0]
    shift[before] = X[0, 0] - X[0, -1]
    after = t >= ic[-1]  # last cycle's start
    frac[after] = np.mod((t[after] - ic[-1]) / dur[-1], 1.0)
    shift[after] = X[-1, -1] - X[-1, 0]
    pos = frac * (T - 1)  # frame position
    i0 = np.clip(np.floor(pos).astype(int), 0, T - 2)
    w = (pos - i0)[:, None]
    q = (1 - w) * X[k, i0] + w * X[k, i0 + 1] + shift  # (n, 10)
    mass = None
    if data.weight_kg is not None and len(set(np.asarray(data.weight_kg).tolist())) == 1:
        mass = float(data.weight_kg[0])
    return Trial(
        t=t,
        q=q.astype(np.float32),
        rate_hz=rate,
        events={"R": ic, "L": ic[:-1] + 0.5 * dur},
        body_mass_kg=mass,
        source=f"cycles_to_stream({n_cyc} cycles, rate_hz={rate:g})",
    )
