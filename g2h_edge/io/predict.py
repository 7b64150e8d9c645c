"""Offline prediction for inputs that are already time-normalised cycles (Gait2Hip NPZ).

``predict_file(PredictConfig(...))`` loads an engine (``g2h_edge.engines.load_engine``: .pt
torch bundles, .onnx, TensorRT plans), reads X (N, 180, 10) degrees with the schema and
convention checks, runs it in batches and writes NPZ or CSV (chosen by the extension).
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

SYNTHETIC_WARNING = ("WARNING: this model was trained on SYNTHETIC data; its outputs are not "
                     "physiology and must not be used for any clinical or research conclusion.")


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

    def __post_init__(self):
        for f in fields(self):
            if f.name.endswith("_path"):
                object.__setattr__(self, f.name, Path(getattr(self, f.name)))
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.output_path.suffix.lower() not in (".npz", ".csv"):
            raise ConfigError(f"output {self.output_path} must end in .npz or .csv")


@dataclass
class PredictResult:
    """What :func:`predict_file` produced."""

    y: np.ndarray                  # (N, 180, K) float32 per kg
    y_raw: np.ndarray | None       # (N, 180, K) float32 N or Nm
    out_cols: tuple[str, ...]
    unit: str
    raw_unit: str | None
    model_name: str
    model_sha256: str
    backend: str
    synthetic: bool
    warnings: list[str]


def predict_cycles(engine, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run ``engine.infer`` over X (N, 180, 10) degrees in batches -> (N, 180, K) float32."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    out = [np.asarray(engine.infer(X[i:i + batch_size]), dtype=np.float32)
           for i in range(0, X.shape[0], batch_size)]
    y = np.concatenate(out, axis=0)
    if y.shape[:2] != X.shape[:2] or y.shape[2] != len(engine.out_cols):
        raise ModelError(f"engine {engine.name!r} returned shape {y.shape} for input "
                         f"{X.shape}; expected (N, {X.shape[1]}, {len(engine.out_cols)})")
    if not np.isfinite(y).all():
        raise ModelError(f"engine {engine.name!r} produced non-finite outputs")
    return y


def _check_engine(engine, data: Gait2HipData) -> list[str]:
    if tuple(engine.in_cols) != IN_COLS:
        raise ModelError(f"model inputs {list(engine.in_cols)} differ from the schema "
                         f"{list(IN_COLS)}")
    if int(engine.T) != T:
        raise ModelError(f"model expects cycles of {engine.T} frames, the data has {T}")
    if data.task is not None and data.task != engine.task:
        # not fatal: the file's own targets are simply not what this model predicts
        return [f"note: the input's targets are task {data.task!r}, the model predicts "
                f"{engine.task!r}"]
    return []


def predict_file(config: PredictConfig, engine=None) -> PredictResult:
    """Load model and inputs, predict, write ``config.output_path``; returns the result.

    A synthetic model is refused unless ``allow_synthetic`` (and then warned about).
    ``engine`` may be passed in (an already loaded Engine); it is then not closed here.
    """
    data = read_gait2hip_npz(config.input_path, require_meta=False,
                             convert_gait2354=config.convert_gait2354)
    if config.raw_unit and data.weight_kg is None:
        raise DataError(f"{config.input_path}: --raw-unit needs weight_kg (N,) in the input "
                        f"file to turn per-kg outputs into N / Nm", reason="missing_key")
    own = engine is None
    if own:
        from g2h_edge.engines import load_engine  # heavy (torch / onnxruntime): lazily
        engine = load_engine(config.model_path, threads=config.threads)
    try:
        warnings = []
        if engine.synthetic:
            if not config.allow_synthetic:
                raise ModelError(f"{config.model_path} was trained on synthetic data (not "
                                 f"physiology); pass --allow-synthetic to run it anyway",
                                 reason="synthetic_model")
            warnings.append(SYNTHETIC_WARNING)
        if data.synthetic:
            warnings.append("note: the input file is flagged synthetic (generated, not measured)")
        warnings += _check_engine(engine, data)
        y = predict_cycles(engine, data.X, config.batch_size)
        task = engine.task
        y_raw = (y * data.weight_kg[:, None, None]).astype(np.float32) if config.raw_unit else None
        result = PredictResult(y=y, y_raw=y_raw, out_cols=tuple(engine.out_cols),
                               unit=engine.unit, raw_unit=RAW_UNIT[task] if y_raw is not None else None,
                               model_name=engine.name, model_sha256=engine.sha256,
                               backend=engine.backend,
                               synthetic=bool(engine.synthetic or data.synthetic),
                               warnings=warnings)
    finally:
        if own:
            engine.close()
    write_predictions(config.output_path, result, data)
    return result


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w" if path.suffix.lower() == ".csv" else "wb",
                       **({"newline": ""} if path.suffix.lower() == ".csv" else {})) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_predictions(path, result: PredictResult, data: Gait2HipData) -> None:
    """NPZ: y, out_cols, unit, model, model_sha256, backend, synthetic (+ y_raw, raw_unit,
    subject_id, speed_label when known). CSV: long format, one row per (trial, frame)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = {"y": result.y, "out_cols": np.array(result.out_cols, dtype=str),
                  "unit": np.array(result.unit), "model": np.array(result.model_name),
                  "model_sha256": np.array(result.model_sha256),
                  "backend": np.array(result.backend),
                  "synthetic": np.array(result.synthetic)}
        if result.y_raw is not None:
            arrays["y_raw"] = result.y_raw
            arrays["raw_unit"] = np.array(result.raw_unit)
        for key in ("subject_id", "speed_label"):
            if getattr(data, key) is not None:
                arrays[key] = np.asarray(getattr(data, key), dtype=str)
        _atomic(path, lambda fh: np.savez_compressed(fh, **arrays))
        return
    _atomic(path, lambda fh: _write_csv(fh, result, data))


def _write_csv(fh, result: PredictResult, data: Gait2HipData) -> None:
    n, t, _ = result.y.shape
    meta = [k for k in ("subject_id", "speed_label") if getattr(data, k) is not None]
    header = ["trial", "frame", "cycle_pct"] + meta + list(result.out_cols)
    if result.y_raw is not None:
        header += [f"{c}_raw" for c in result.out_cols]
    w = csv.writer(fh)
    w.writerow(header)
    pct = np.linspace(0.0, 100.0, t)
    for i in range(n):
        ids = [str(getattr(data, k)[i]) for k in meta]
        for f in range(t):
            row = [i, f, f"{pct[f]:.4f}"] + ids + [f"{v:.6g}" for v in result.y[i, f]]
            if result.y_raw is not None:
                row += [f"{v:.6g}" for v in result.y_raw[i, f]]
            w.writerow(row)
