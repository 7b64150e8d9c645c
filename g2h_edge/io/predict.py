"""Offline prediction for time-normalised cycles (Gait2Hip NPZ) or whole trials.

``predict_file(PredictConfig(...))`` loads an engine (``g2h_edge.engines.load_engine``: .pt
torch bundles, .onnx, TensorRT plans), reads X (N, 180, 10) degrees with the schema and
convention checks, runs it in batches and writes NPZ or CSV (chosen by the extension).
A trial file (.csv/.mot/.sto/.c3d) is read through the mapping layer
(:mod:`g2h_edge.io.mapping`) and cut into cycles at its IC events with the server's checks
(:func:`g2h_edge.io.cycles.cut_cycles`); the left cycles are mirrored, and the result says
which cycles were rejected and why.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from g2h_edge.errors import ConfigError, DataError, ModelError
from g2h_edge.io.npz import Gait2HipData, read_gait2hip_npz
from g2h_edge.schema import IN_COLS, RAW_UNIT, T

__all__ = ["PredictConfig", "PredictResult", "predict_file", "predict_cycles", "write_predictions"]

SYNTHETIC_WARNING = (
    "WARNING: this model was trained on SYNTHETIC data; its outputs are not "
    "physiology and must not be used for any clinical or research conclusion."
)


@dataclass(frozen=True)
class PredictConfig:
    """Options of ``g2h-edge predict`` (paths as str or Path)."""

    model_path: Path
    input_path: Path
    output_path: Path
    raw_unit: bool = False
    allow_synthetic: bool = False
    convert_gait2354: bool = False
    batch_size: int = 256
    threads: int | None = None
    trust_native: bool = False  # load .pt2/.plan files this user did not build (native code)
    #: column mapping for trial-file inputs (None: the command's current mapping)
    mapping: object = None
    #: member files served as one ensemble (then ``model_path`` is only a label)
    ensemble: tuple = ()

    def __post_init__(self):
        for f in fields(self):
            if f.name.endswith("_path"):
                object.__setattr__(self, f.name, Path(getattr(self, f.name)))
        object.__setattr__(self, "ensemble", tuple(str(e) for e in self.ensemble))
        if len(self.ensemble) == 1:
            raise ConfigError(f"an ensemble needs at least 2 member files, got {list(self.ensemble)}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.output_path.suffix.lower() not in (".npz", ".csv"):
            raise ConfigError(f"output {self.output_path} must end in .npz or .csv")


@dataclass
class PredictResult:
    """What :func:`predict_file` produced."""

    y: np.ndarray  # (N, 180, K) float32 per kg
    y_raw: np.ndarray | None  # (N, 180, K) float32 N or Nm
    out_cols: tuple[str, ...]
    unit: str
    raw_unit: str | None
    model_name: str
    model_sha256: str
    backend: str
    synthetic: bool
    warnings: list[str]
    #: for trial-file inputs: the cut cycles (side, times, rejects), else None
    cycles: object = None
    quality: list[dict] | None = None  # per cycle: g2h_edge.gait.quality.assess_cycle
    y_sd: np.ndarray | None = None  # (N, 180, K) spread across ensemble members


def predict_cycles(engine, X: np.ndarray, batch_size: int = 256, *, with_spread: bool = False):
    """Run ``engine.infer`` over X (N, 180, 10) degrees in batches -> (N, 180, K) float32;
    ``with_spread``: (y, y_sd) where y_sd is the ensemble spread (None for one model)."""
    from g2h_edge.engines.ensemble import infer_with_spread

    X = np.ascontiguousarray(X, dtype=np.float32)
    parts = [infer_with_spread(engine, X[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)]
    y = np.concatenate([np.asarray(p[0], dtype=np.float32) for p in parts], axis=0)
    sd = None if parts[0][1] is None else np.concatenate([p[1] for p in parts], axis=0)
    if with_spread:
        return _checked(engine, X, y), sd
    return _checked(engine, X, y)


def _checked(engine, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    if y.shape[:2] != X.shape[:2] or y.shape[2] != len(engine.out_cols):
        raise ModelError(
            f"engine {engine.name!r} returned shape {y.shape} for input "
            f"{X.shape}; expected (N, {X.shape[1]}, {len(engine.out_cols)})"
        )
    if not np.isfinite(y).all():
        raise ModelError(f"engine {engine.name!r} produced non-finite outputs")
    return y


def _check_engine(engine, data: Gait2HipData) -> list[str]:
    if tuple(engine.in_cols) != IN_COLS:
        raise ModelError(f"model inputs {list(engine.in_cols)} differ from the schema {list(IN_COLS)}")
    if int(engine.T) != T:
        raise ModelError(f"model expects cycles of {engine.T} frames, the data has {T}")
    if data.task is not None and data.task != engine.task:
        # not fatal: the file's own targets are simply not what this model predicts
        return [f"note: the input's targets are task {data.task!r}, the model predicts {engine.task!r}"]
    return []


def predict_file(config: PredictConfig, engine=None) -> PredictResult:
    """Load model and inputs, predict, write ``config.output_path``; returns the result.

    A synthetic model is refused unless ``allow_synthetic`` (and then warned about).
    ``engine`` may be passed in (an already loaded Engine); it is then not closed here.
    """
    data, cycles = _read_input(config)
    if config.raw_unit and data.weight_kg is None:
        raise DataError(
            f"{config.input_path}: --raw-unit needs weight_kg (N,) in the input "
            f"file to turn per-kg outputs into N / Nm",
            reason="missing_key",
        )
    own = engine is None
    if own:
        from g2h_edge.engines.ensemble import load_any, load_ensemble  # heavy: lazily

        kw = dict(threads=config.threads, trust_native=config.trust_native)
        engine = (
            load_ensemble(config.ensemble, **kw) if config.ensemble else load_any(config.model_path, **kw)
        )
    try:
        warnings = []
        if engine.synthetic:
            if not config.allow_synthetic:
                raise ModelError(
                    f"{config.model_path} was trained on synthetic data (not "
                    f"physiology); pass --allow-synthetic to run it anyway",
                    reason="synthetic_model",
                )
            warnings.append(SYNTHETIC_WARNING)
        if data.synthetic:
            warnings.append("note: the input file is flagged synthetic (generated, not measured)")
        warnings += _check_engine(engine, data)
        y, y_sd = predict_cycles(engine, data.X, config.batch_size, with_spread=True)
        quality = _quality(engine, data.X, y_sd)
        task = engine.task
        y_raw = (y * data.weight_kg[:, None, None]).astype(np.float32) if config.raw_unit else None
        result = PredictResult(
            y=y,
            y_raw=y_raw,
            out_cols=tuple(engine.out_cols),
            unit=engine.unit,
            raw_unit=RAW_UNIT[task] if y_raw is not None else None,
            model_name=engine.name,
            model_sha256=engine.sha256,
            backend=engine.backend,
            synthetic=bool(engine.synthetic or data.synthetic),
            warnings=warnings,
            cycles=cycles,
            quality=quality,
            y_sd=y_sd,
        )
    finally:
        if own:
            engine.close()
    write_predictions(config.output_path, result, data)
    return result


TRIAL_SUFFIXES = (".csv", ".mot", ".sto", ".c3d")


def _read_input(config: PredictConfig):
    """(Gait2HipData, TrialCycles | None) from a cycles NPZ or a trial file."""
    if config.input_path.suffix.lower() not in TRIAL_SUFFIXES:
        return read_gait2hip_npz(
            config.input_path,
            require_meta=False,
            convert_gait2354=config.convert_gait2354,
            any_speed_label=True,
        ), None
    from g2h_edge.io.cycles import cut_cycles
    from g2h_edge.io.trial import read_trial

    trial = read_trial(config.input_path, convert_gait2354=config.convert_gait2354, mapping=config.mapping)
    cyc = cut_cycles(trial)
    if cyc.n == 0:
        raise DataError(
            f"{config.input_path}: no cycle passed the checks (rejects: {cyc.reject_counts()})",
            reason="no_cycles",
        )
    n = cyc.n
    mass = trial.body_mass_kg
    data = Gait2HipData(
        X=cyc.X,
        Y=None,
        subject_id=np.array([f"{config.input_path.stem}:{s}{i}" for i, s in enumerate(cyc.side)]),
        height_m=None,
        weight_kg=None if mass is None else np.full(n, mass, np.float32),
        speed_label=None,
    )
    return data, cyc


def _quality(engine, X, y_sd) -> list[dict]:
    """Per-cycle quality (no durations in a time-normalised file: no timing flags)."""
    from g2h_edge.gait.quality import assess_cycle

    meta = engine.metadata
    return [
        assess_cycle(
            x,
            mean=meta.get("mean"),
            std=meta.get("std"),
            summary=meta.get("input_summary"),
            y_sd=None if y_sd is None else y_sd[i],
        )
        for i, x in enumerate(X)
    ]


def _quality_arrays(quality: list[dict]) -> dict:
    """Per-cycle quality as NPZ arrays: flags joined by ';', scores as float (NaN absent)."""
    out = {"quality_flags": np.array([";".join(q["flags"]) for q in quality], dtype=str)}
    for key in ("ood_z", "ood_phase_z", "y_sd_mean", "y_sd_max"):
        if any(key in q for q in quality):
            out[key] = np.array([q.get(key, np.nan) for q in quality], np.float32)
    for key in ("ood_channel", "ood_phase_channel"):
        if any(key in q for q in quality):
            out[key] = np.array([q.get(key, "") for q in quality], dtype=str)
    return out


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(
            fd,
            "w" if path.suffix.lower() == ".csv" else "wb",
            **({"newline": ""} if path.suffix.lower() == ".csv" else {}),
        ) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_predictions(path, result: PredictResult, data: Gait2HipData) -> None:
    """NPZ: y, out_cols, unit, model, model_sha256, backend, synthetic, quality_flags,
    ood_z, ood_channel (+ y_raw, raw_unit, subject_id, speed_label when known; ood_phase_z
    with an input summary; y_sd, y_sd_mean, y_sd_max for an ensemble). CSV: long format,
    one row per (trial, frame), the per-cycle quality repeated on each row."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = {
            "y": result.y,
            "out_cols": np.array(result.out_cols, dtype=str),
            "unit": np.array(result.unit),
            "model": np.array(result.model_name),
            "model_sha256": np.array(result.model_sha256),
            "backend": np.array(result.backend),
            "synthetic": np.array(result.synthetic),
        }
        if result.y_raw is not None:
            arrays["y_raw"] = result.y_raw
            arrays["raw_unit"] = np.array(result.raw_unit)
        for key in ("subject_id", "speed_label"):
            if getattr(data, key) is not None:
                arrays[key] = np.asarray(getattr(data, key), dtype=str)
        if result.cycles is not None:  # trial input: which hip and when
            arrays["side"] = np.array(result.cycles.side, dtype=str)
            arrays["t_start"] = result.cycles.t_start
            arrays["t_end"] = result.cycles.t_end
        if result.quality is not None:
            arrays.update(_quality_arrays(result.quality))
        if result.y_sd is not None:
            arrays["y_sd"] = result.y_sd
        _atomic(path, lambda fh: np.savez_compressed(fh, **arrays))
        return
    _atomic(path, lambda fh: _write_csv(fh, result, data))


def _write_csv(fh, result: PredictResult, data: Gait2HipData) -> None:
    n, t, _ = result.y.shape
    meta = [k for k in ("subject_id", "speed_label") if getattr(data, k) is not None]
    header = ["trial", "frame", "cycle_pct"] + meta + list(result.out_cols)
    if result.y_raw is not None:
        header += [f"{c}_raw" for c in result.out_cols]
    if result.y_sd is not None:
        header += [f"{c}_sd" for c in result.out_cols]
    qa = _quality_arrays(result.quality) if result.quality is not None else {}
    qcols = [k for k in ("quality_flags", "ood_z", "ood_phase_z") if k in qa]
    header += qcols
    w = csv.writer(fh)
    w.writerow(header)
    pct = np.linspace(0.0, 100.0, t)
    for i in range(n):
        ids = [str(getattr(data, k)[i]) for k in meta]
        qv = [qa[k][i] if k == "quality_flags" else f"{qa[k][i]:.4g}" for k in qcols]
        for f in range(t):
            row = [i, f, f"{pct[f]:.4f}"] + ids + [f"{v:.6g}" for v in result.y[i, f]]
            if result.y_raw is not None:
                row += [f"{v:.6g}" for v in result.y_raw[i, f]]
            if result.y_sd is not None:
                row += [f"{v:.6g}" for v in result.y_sd[i, f]]
            w.writerow(row + qv)
