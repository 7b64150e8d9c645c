"""Zero-shot external evaluation of a bundle (the paper's ONFH protocol).

Every cycle of the file is predicted by the bundle as it is: its own input standardisation
(fitted on its training pool), never refitted on the external data, no fine-tuning. Targets
are divided by body mass; the same subject-level metrics, per-cadence rows, per-channel R2
and figures as the benchmark are written to ``out_dir``:

``<name>_external_metrics_by_speed_mean.csv`` (the reference's by-speed columns),
``<name>_external_metrics_by_subject.csv``, ``<name>_external_r2_per_channel.csv``,
``<name>_waveforms.png``, ``<name>_external_bars_by_cadence.png``,
``<name>_external_subject_boxplots.png``, ``<name>_external_summary.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError
from g2h_edge.train import figures, report
from g2h_edge.train.benchmark import per_speed_metrics, write_model_extras
from g2h_edge.train.dataset import check_for_training, per_kg_targets
from g2h_edge.train.loop import predict
from g2h_edge.train.metrics import pooled_metrics, speed_table
from g2h_edge.train.modelling import plain, utc_now

__all__ = ["EvaluationResult", "evaluate_bundle", "evaluate_engine", "SIDES_EVAL"]

#: ``side`` values: "R" cycles as they are; "L" left-hip cycles (left IC to left IC, left
#: hip targets) whose inputs are mirrored here (_r and _l swapped) for the right-hip model
SIDES_EVAL = ("R", "L")


@dataclass
class EvaluationResult:
    name: str
    speed_rows: list[dict]
    overall: dict
    files: list[Path] = field(default_factory=list)


def _check_match(bundle, data) -> None:
    if tuple(bundle.in_cols) != tuple(data.in_cols):
        raise DataError(
            f"the bundle's inputs {list(bundle.in_cols)} differ from the file's {list(data.in_cols)}"
        )
    if tuple(bundle.out_cols) != tuple(data.out_cols):
        raise DataError(
            f"bundle {bundle.name!r} predicts {bundle.task} outputs "
            f"{list(bundle.out_cols)} but the file holds {list(data.out_cols)}: "
            "evaluate a bundle of the file's task"
        )


def _inputs(data, side: str) -> np.ndarray:
    from g2h_edge.schema import mirror_sides

    if side not in SIDES_EVAL:
        raise DataError(f"side {side!r} is not one of {list(SIDES_EVAL)}", reason="bad_side")
    x = np.asarray(data.X, np.float32)  # (N, T, 10) deg
    return np.ascontiguousarray(mirror_sides(x) if side == "L" else x)


def evaluate_bundle(
    bundle,
    data,
    out_dir,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    source: str = "in-memory",
    bundle_source: str = "",
    side: str = "R",
) -> EvaluationResult:
    """Evaluate ``bundle`` (a g2h_edge.models.Bundle) on ``data`` (Gait2HipData with Y);
    ``side="L"``: the file holds left-hip cycles, mirrored here before prediction."""
    check_for_training(data)
    _check_match(bundle, data)
    pred = predict(bundle.module(), _inputs(data, side), batch_size, device)
    return _score(pred, bundle, data, out_dir, source=source, bundle_source=bundle_source, side=side)


def evaluate_engine(
    engine,
    data,
    out_dir,
    *,
    batch_size: int = 64,
    source: str = "in-memory",
    bundle_source: str = "",
    side: str = "R",
) -> EvaluationResult:
    """As :func:`evaluate_bundle` for any loaded engine (ONNX, TensorRT, an ensemble...)."""
    from g2h_edge.io.predict import predict_cycles

    check_for_training(data)
    _check_match(engine, data)
    pred = predict_cycles(engine, _inputs(data, side), batch_size)
    return _score(pred, engine, data, out_dir, source=source, bundle_source=bundle_source, side=side)


def _score(pred, bundle, data, out_dir, *, source: str, bundle_source: str, side: str) -> EvaluationResult:
    """Metrics, figures and records of predictions ``pred`` (N, T, K) per kg."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = per_kg_targets(data.Y, data.weight_kg)  # (N, T, K) per kg
    sid = np.asarray(data.subject_id).astype(str)
    spd = np.asarray(data.speed_label).astype(str)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(bundle.name)) or "model"
    rows = speed_table(y, pred, sid, spd)
    per_speed = per_speed_metrics(y, pred, sid, spd)
    res = EvaluationResult(name, rows, pooled_metrics(y, pred))
    res.files.append(
        report.write_csv(out / f"{name}_external_metrics_by_speed_mean.csv", rows, report.SPEED_COLUMNS)
    )
    synthetic = bool(bundle.synthetic or data.synthetic)
    res.files += write_model_extras(
        out, name, y, pred, data.out_cols, per_speed, bundle.unit, synthetic, kind="external"
    )
    per_model = {name: per_speed}
    res.files.append(
        figures.bars_by_cadence(
            out / f"{name}_external_bars_by_cadence.png",
            per_model,
            [],
            title=f"{name} external",
            synthetic=synthetic,
        )
    )
    res.files.append(
        figures.subject_boxplots(
            out / f"{name}_external_subject_boxplots.png",
            per_model,
            title=f"{name} external",
            synthetic=synthetic,
        )
    )
    md = report.summary_markdown(
        name,
        bundle.unit,
        [{"model": name, "subjects": per_speed}],
        [],
        synthetic=synthetic,
        source=source,
        kind="external (zero-shot)",
    )
    (out / f"{name}_external_summary.md").write_text(md)
    res.files.append(out / f"{name}_external_summary.md")
    record = {
        "bundle": bundle_source,
        "bundle_name": name,
        "data": source,
        "side": side,
        "inputs": "mirrored (_r/_l swapped) left-hip cycles" if side == "L" else "as is",
        "created": utc_now(),
        "standardisation": "bundle's own (not refitted)",
        "overall_pooled": res.overall,
        "by_speed": rows,
        "synthetic_model": bool(bundle.synthetic),
        "synthetic_data": bool(data.synthetic),
    }
    (out / f"{name}_external_run.json").write_text(json.dumps(plain(record), indent=2))
    res.files.append(out / f"{name}_external_run.json")
    return res
