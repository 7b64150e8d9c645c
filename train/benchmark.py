"""The whole benchmark for one task file: every architecture, then comparisons and figures.

Files written in ``out_dir`` (Model in LSTM/Transformer/Mamba, TASK in MF60/JM60):

- per model: ``<Model>_<TASK>_cv_<K>fold_baseline_metrics.csv`` and
  ``<Model>_<TASK>_test_metrics_by_speed_mean.csv`` (the reference's files and columns),
  ``<Model>_<TASK>_test_metrics_by_subject.csv``, ``<Model>_<TASK>_test_r2_per_channel.csv``,
  ``<Model>_<TASK>.pt`` (model bundle), ``<Model>_<TASK>_run.json`` (what was run, timings),
  ``<Model>_<TASK>_waveforms.png``;
- per task: ``<TASK>_split.json``, ``<TASK>_test_wilcoxon_holm.csv``, ``<TASK>_summary.md``,
  ``<TASK>_bars_by_cadence.png``, ``<TASK>_subject_boxplots.png``, ``<TASK>_outputs.json``
  (which finished models the task-level files describe; a rerun that changes nothing
  rewrites nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge.errors import ConfigError
from g2h_edge.schema import TARGET_UNIT
from g2h_edge.train import figures, report
from g2h_edge.train.config import ARCHS, MODEL_NAMES, TASK_NAMES, TrainConfig
from g2h_edge.train.dataset import check_for_training, per_kg_targets
from g2h_edge.train.loop import resolve_device
from g2h_edge.train.metrics import channel_r2, subject_metrics
from g2h_edge.train.modelling import data_digest
from g2h_edge.train.progress import Progress
from g2h_edge.train.protocol import ModelResult, run_model
from g2h_edge.train.split import group_folds, holdout_split
from g2h_edge.train.stats import wilcoxon_pairs

__all__ = [
    "BenchmarkResult",
    "run_benchmark",
    "parse_archs",
    "per_speed_metrics",
    "compare_models",
    "COMPARED_METRICS",
]

#: subject-level metrics compared between models (Wilcoxon + Holm)
COMPARED_METRICS: tuple[str, ...] = ("RMSE", "MAE", "R2", "R2_channel_mean")


@dataclass
class BenchmarkResult:
    out_dir: Path
    task: str
    models: list[ModelResult]
    files: list[Path] = field(default_factory=list)
    wilcoxon: list[dict] = field(default_factory=list)


def parse_archs(text: str) -> list[str]:
    """ "lstm,transformer,mamba" -> list; unknown names are a :class:`ConfigError`."""
    archs = [a.strip().lower() for a in str(text).split(",") if a.strip()]
    bad = [a for a in archs if a not in ARCHS]
    if not archs or bad:
        raise ConfigError(f"--models {text!r}: use a comma-separated subset of {','.join(ARCHS)}")
    return list(dict.fromkeys(archs))


def per_speed_metrics(y, pred, sid, speed) -> dict:
    """{"overall": SubjectMetrics, "fast": ..., "med": ..., "slow": ...} on the same subjects."""
    subjects = tuple(np.unique(sid).tolist())
    out = {"overall": subject_metrics(y, pred, sid, subjects)}
    for s in np.unique(speed).tolist():
        out[s] = subject_metrics(y, pred, sid, subjects, speed, s)
    return out


def compare_models(per_model: dict[str, dict]) -> list[dict]:
    """Wilcoxon + Holm between every pair of models, per metric and cadence."""
    if len(per_model) < 2:
        return []
    rows = []
    speeds = list(next(iter(per_model.values())))
    for metric in COMPARED_METRICS:
        for s in speeds:
            vals = {m: d[s].as_dict()[metric] for m, d in per_model.items()}
            for r in wilcoxon_pairs(vals):
                rows.append({"metric": metric, "speed": s, **r})
    return rows


def _write_split(path: Path, data, split, folds: int) -> None:
    sid = np.asarray(data.subject_id).astype(str)
    pool_sid = sid[split.pool_idx]
    fold_subjects = [sorted(set(pool_sid[va].tolist())) for _, va in group_folds(pool_sid, folds)]
    path.write_text(
        json.dumps(
            {
                "test_subjects": list(split.test_subjects),
                "pool_subjects": sorted(split.pool_subjects),
                "cv_val_subjects": fold_subjects,
            },
            indent=2,
        )
    )


def run_benchmark(
    data,
    archs,
    out_dir,
    cfg: TrainConfig | None = None,
    *,
    source: str = "in-memory",
    source_sha256: str | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Run the published protocol for ``archs`` on ``data`` (a Gait2HipData) into ``out_dir``."""
    cfg = cfg or TrainConfig()
    resolve_device(cfg.device)  # fail before any work if CUDA is missing
    task = check_for_training(data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = holdout_split(data.subject_id, cfg.test_ratio, cfg.split_seed)
    digest = data_digest(data)
    tname = TASK_NAMES[task]
    res = BenchmarkResult(out, task, [])
    _write_split(out / f"{tname}_split.json", data, split, cfg.folds)
    res.files.append(out / f"{tname}_split.json")
    bars = Progress(enabled=progress)
    for arch in archs:
        res.models.append(
            run_model(
                data,
                arch,
                split,
                out,
                cfg,
                digest=digest,
                source=source,
                source_sha256=source_sha256,
                bars=bars,
            )
        )
    bars.close()

    y_test = per_kg_targets(data.Y, data.weight_kg)[split.test_idx]
    sid = np.asarray(data.subject_id).astype(str)[split.test_idx]
    spd = np.asarray(data.speed_label).astype(str)[split.test_idx]
    per_model = {MODEL_NAMES[m.arch]: per_speed_metrics(y_test, m.y_pred_test, sid, spd) for m in res.models}
    res.wilcoxon = compare_models(per_model)
    state = {"models": [[m.label, m.info.get("fingerprint")] for m in res.models]}
    record = out / f"{tname}_outputs.json"
    planned = _task_files(out, tname, res.models, cfg.folds)
    if _outputs_current(record, state, planned):
        res.files += planned  # every model reused and every file there: done
        return res
    for m in res.models:
        write_model_extras(
            out,
            m.label,
            y_test,
            m.y_pred_test,
            data.out_cols,
            per_model[MODEL_NAMES[m.arch]],
            TARGET_UNIT[task],
            data.synthetic,
        )
    report.write_csv(out / f"{tname}_test_wilcoxon_holm.csv", res.wilcoxon, report.WILCOXON_COLUMNS)
    rows = [
        {
            "model": MODEL_NAMES[m.arch],
            "final_epoch": m.final_epoch,
            "cv_r2": [r["val_subject_mean_R2"] for r in m.cv_rows],
            "subjects": per_model[MODEL_NAMES[m.arch]],
        }
        for m in res.models
    ]
    (out / f"{tname}_summary.md").write_text(
        report.summary_markdown(
            tname, TARGET_UNIT[task], rows, res.wilcoxon, synthetic=data.synthetic, source=source
        )
    )
    figures.bars_by_cadence(
        out / f"{tname}_bars_by_cadence.png", per_model, res.wilcoxon, title=tname, synthetic=data.synthetic
    )
    figures.subject_boxplots(
        out / f"{tname}_subject_boxplots.png", per_model, title=tname, synthetic=data.synthetic
    )
    record.write_text(json.dumps(state, indent=2))
    res.files += planned
    return res


def _task_files(out: Path, tname: str, models: list[ModelResult], folds: int) -> list[Path]:
    """Every file a benchmark of ``models`` leaves in ``out``."""
    files = [
        out / f"{tname}_{n}"
        for n in (
            "split.json",
            "test_wilcoxon_holm.csv",
            "summary.md",
            "bars_by_cadence.png",
            "subject_boxplots.png",
            "outputs.json",
        )
    ]
    for m in models:
        name = MODEL_NAMES[m.arch]
        files += [
            m.bundle_path,
            out / f"{m.label}_run.json",
            out / report.cv_csv_name(name, tname, folds),
            out / report.speed_csv_name(name, tname),
            out / f"{m.label}_waveforms.png",
            out / f"{m.label}_test_metrics_by_subject.csv",
            out / f"{m.label}_test_r2_per_channel.csv",
        ]
    return files


def _outputs_current(record: Path, state: dict, files: list[Path]) -> bool:
    """True when the task-level outputs were written for exactly these finished models."""
    try:
        same = json.loads(record.read_text()) == state
    except (OSError, ValueError):
        return False
    return same and all(f.is_file() for f in files)


def write_model_extras(
    out: Path,
    label: str,
    y_true,
    y_pred,
    out_cols,
    per_speed: dict,
    unit: str,
    synthetic: bool,
    kind: str = "test",
) -> list[Path]:
    """Per-subject and per-channel CSVs and the waveform figure of one model."""
    files = [
        report.write_csv(
            out / f"{label}_{kind}_metrics_by_subject.csv",
            report.subject_rows(per_speed),
            report.SUBJECT_COLUMNS,
        )
    ]
    rows, cols = report.channel_rows(out_cols, channel_r2(y_true, y_pred), per_speed)
    files.append(report.write_csv(out / f"{label}_{kind}_r2_per_channel.csv", rows, cols))
    files.append(
        figures.waveforms(
            out / f"{label}_waveforms.png",
            y_true,
            y_pred,
            out_cols,
            unit,
            title=f"{label} ({kind} cycles)",
            synthetic=synthetic,
        )
    )
    return files
