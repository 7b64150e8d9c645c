"""The published protocol for one architecture: CV on the pool, final fit, test, bundle.

For one model (``run_model``):

1. K-fold GroupKFold on the pool subjects; in each fold the input standardiser is fitted on
   the fold's training rows only, the model is trained with early stopping on the fold's
   validation loss, and validation metrics are recorded (``*_cv_<K>fold_baseline_metrics.csv``);
2. final epoch = ``max(1, int(median(best epochs)))`` (as the reference);
3. the final model is trained on the whole pool (standardiser fitted on the pool) for that
   many epochs, saved as a bundle, reloaded, and the reloaded bundle predicts the test
   subjects (so the reported numbers are those of the file that is served);
4. a ``*_run.json`` written last marks the model finished; a rerun with the same data,
   configuration and hyper-parameters reuses it instead of retraining.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from g2h_edge.train import report
from g2h_edge.train.config import TrainConfig, config_fingerprint
from g2h_edge.train.dataset import fit_standardizer, per_kg_targets, standardize
from g2h_edge.train.loop import fit_early_stopping, fit_fixed_epochs, predict
from g2h_edge.train.metrics import pooled_metrics, speed_table, subject_mean, subject_metrics
from g2h_edge.train.modelling import make_bundle, model_factory, model_label, plain, resolve_hparams
from g2h_edge.train.progress import Progress
from g2h_edge.train.split import HoldoutSplit, group_folds

__all__ = ["ModelResult", "run_model", "cross_validate", "PROTOCOL_TEXT", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1
PROTOCOL_TEXT = (
    "Subject-holdout TEST + {k}-fold GroupKFold benchmark on POOL; MSE only; input "
    "z-score fitted on training folds / pool; targets per kg; final epoch = median "
    "best epoch; report subject-mean metrics (g2h-edge train protocol v1)"
)


@dataclass
class ModelResult:
    """One finished architecture: where its files are and its test predictions (per kg)."""

    arch: str
    label: str
    bundle_path: Path
    final_epoch: int
    best_epochs: list[int]
    cv_rows: list[dict]
    y_pred_test: np.ndarray  # (N_test, T, K) per kg, from the reloaded bundle
    info: dict = field(default_factory=dict)
    resumed: bool = False


def _files(out_dir: Path, label: str, folds: int) -> dict[str, Path]:
    model, task = label.split("_")
    return {
        "bundle": out_dir / f"{label}.pt",
        "cv": out_dir / report.cv_csv_name(model, task, folds),
        "speed": out_dir / report.speed_csv_name(model, task),
        "run": out_dir / f"{label}_run.json",
    }


def _fingerprint(arch: str, hp: dict, cfg: TrainConfig, digest: str) -> str:
    conf = {k: v for k, v in cfg.to_dict().items() if k not in ("device", "hparams")}
    return config_fingerprint(
        {"protocol": PROTOCOL_VERSION, "arch": arch, "hparams": hp, "config": conf, "data": digest}
    )


def cross_validate(
    make, x_pool, y_pool, groups, cfg: TrainConfig, bars: Progress, label: str
) -> tuple[list[dict], list[int], list[float]]:
    """K-fold GroupKFold on the pool: (CSV rows, best epochs, seconds per epoch)."""
    rows, best, secs = [], [], []
    folds = group_folds(groups, cfg.folds)
    for k, (tr, va) in enumerate(folds, start=1):
        mean, std = fit_standardizer(x_pool[tr])  # training rows of this fold only
        xt, xv = standardize(x_pool[tr], mean, std), standardize(x_pool[va], mean, std)
        with bars.epochs(f"{label} fold {k}/{len(folds)}", cfg.max_epochs) as cb:
            fit = fit_early_stopping(make, xt, y_pool[tr], xv, y_pool[va], cfg, on_epoch=cb)
        model = make()
        model.load_state_dict(fit.state_dict)
        pred = predict(model, xv, cfg.batch_size, cfg.device)  # (n_val, T, K)
        overall = pooled_metrics(y_pool[va], pred)
        sm = subject_metrics(y_pool[va], pred, groups[va])
        rows.append(
            {
                "fold": k,
                "n_train_trials": len(tr),
                "n_val_trials": len(va),
                "n_val_subjects": len(sm.subjects),
                "best_epoch": fit.best_epoch,
                "best_val_loss": fit.best_val_loss,
                "val_RMSE": overall["RMSE"],
                "val_MAE": overall["MAE"],
                "val_R2": overall["R2"],
                "val_subject_mean_RMSE": subject_mean(sm.rmse),
                "val_subject_mean_MAE": subject_mean(sm.mae),
                "val_subject_mean_R2": subject_mean(sm.r2_pooled),
                "val_subject_mean_R2_channel_mean": subject_mean(sm.r2_channel_mean),
                "epochs_run": fit.epochs_run,
                "mean_epoch_seconds": float(np.mean(fit.epoch_seconds)),
            }
        )
        best.append(fit.best_epoch)
        secs += fit.epoch_seconds
        bars.done_fold()
    return rows, best, secs


def _load_finished(files, fp: str, arch: str, label: str, x_test, cfg) -> ModelResult | None:
    """The finished model in ``files`` if its run record matches ``fp``, else None."""
    if not all(p.is_file() for p in files.values()):
        return None
    try:
        info = json.loads(files["run"].read_text())
    except (OSError, ValueError):
        return None
    if info.get("fingerprint") != fp:
        return None
    from g2h_edge.errors import ModelError
    from g2h_edge.models import load_bundle

    try:
        bundle = load_bundle(files["bundle"])
    except ModelError:
        return None  # unreadable bundle: train again
    pred = predict(bundle.module(), x_test, cfg.batch_size, cfg.device)
    return ModelResult(
        arch,
        label,
        files["bundle"],
        int(info["final_epoch"]),
        list(info["best_epochs"]),
        list(info.get("cv_rows", [])),
        pred,
        info,
        True,
    )


def run_model(
    data,
    arch: str,
    split: HoldoutSplit,
    out_dir: Path,
    cfg: TrainConfig,
    *,
    digest: str,
    source: str,
    source_sha256: str | None = None,
    bars: Progress | None = None,
) -> ModelResult:
    """Run the whole protocol for ``arch`` (or reuse a finished run); see the module doc."""
    bars = bars or Progress(enabled=False)
    task = data.task
    label = model_label(arch, task)
    hp = resolve_hparams(arch, task, cfg.hparams.get(arch))
    make = model_factory(arch, hp)
    files = _files(Path(out_dir), label, cfg.folds)
    fp = _fingerprint(arch, hp, cfg, digest)
    x_test = np.asarray(data.X[split.test_idx], dtype=np.float32)
    done = _load_finished(files, fp, arch, label, x_test, cfg)
    if done is not None:
        bars.write(f"{label}: finished run found in {out_dir} (same data and config), not retrained")
        return done

    bars.model(label, cfg.folds + 1)
    t_start = time.perf_counter()
    y = per_kg_targets(data.Y, data.weight_kg)
    x_pool, y_pool = np.asarray(data.X[split.pool_idx], np.float32), y[split.pool_idx]
    groups = np.asarray(data.subject_id).astype(str)[split.pool_idx]
    cv_rows, best_epochs, cv_secs = cross_validate(make, x_pool, y_pool, groups, cfg, bars, label)
    final_epoch = max(1, int(np.median(best_epochs)))

    mean, std = fit_standardizer(x_pool)  # the whole pool
    with bars.epochs(f"{label} final ({final_epoch} epochs)", final_epoch) as cb:
        fit = fit_fixed_epochs(make, standardize(x_pool, mean, std), y_pool, final_epoch, cfg, on_epoch=cb)
    bars.done_fold()
    provenance = {
        "source": source,
        "source_sha256": source_sha256,
        "data_sha256": digest,
        "training": PROTOCOL_TEXT.format(k=cfg.folds),
        "final_epoch": final_epoch,
        "best_epochs": best_epochs,
        "test_subjects": list(split.test_subjects),
        "config": cfg.to_dict(),
        "synthetic_data": bool(data.synthetic),
    }
    bundle = make_bundle(
        name=label,
        arch=arch,
        hparams=hp,
        state_dict=fit.state_dict,
        mean=mean,
        std=std,
        task=task,
        synthetic=data.synthetic,
        provenance=provenance,
    )
    from g2h_edge.models import load_bundle, save_bundle

    save_bundle(bundle, files["bundle"])
    pred = predict(load_bundle(files["bundle"]).module(), x_test, cfg.batch_size, cfg.device)
    speed_rows = speed_table(
        y[split.test_idx],
        pred,
        np.asarray(data.subject_id)[split.test_idx],
        np.asarray(data.speed_label)[split.test_idx],
    )
    info = {
        "fingerprint": fp,
        "label": label,
        "arch": arch,
        "task": task,
        "hparams": hp,
        "config": cfg.to_dict(),
        "data_sha256": digest,
        "source": source,
        "synthetic": bool(data.synthetic),
        "test_subjects": list(split.test_subjects),
        "best_epochs": best_epochs,
        "final_epoch": final_epoch,
        "cv_rows": cv_rows,
        "seconds_per_epoch_cv": float(np.mean(cv_secs)),
        "seconds_per_epoch_final": float(np.mean(fit.epoch_seconds)),
        "total_seconds": time.perf_counter() - t_start,
        "n_pool_cycles": int(len(split.pool_idx)),
        "device": cfg.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "test_metrics_by_speed": speed_rows,
        "test_metrics_overall": pooled_metrics(y[split.test_idx], pred),  # all test cycles pooled
    }
    _write_outputs(files, cv_rows, speed_rows, info)
    return ModelResult(arch, label, files["bundle"], final_epoch, best_epochs, cv_rows, pred, info)


def _write_outputs(files: dict, cv_rows, speed_rows, info: dict) -> None:
    report.write_csv(files["cv"], cv_rows, report.CV_COLUMNS)
    report.write_csv(files["speed"], speed_rows, report.SPEED_COLUMNS)
    tmp = files["run"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plain(info), indent=2))
    tmp.replace(files["run"])  # last: marks the model finished
