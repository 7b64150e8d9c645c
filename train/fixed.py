"""One model, a fixed number of epochs, no cross-validation (``g2h-edge train``).

By default every cycle of the file trains the model (standardiser fitted on all of them).
With ``holdout=True`` the published subject hold-out is applied first: the model trains on
the pool only and is scored on the held-out test subjects (subject-mean metrics), which is
how the bundled demo models are made and checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from g2h_edge.gait.quality import input_summary
from g2h_edge.train.config import TrainConfig
from g2h_edge.train.dataset import check_for_training, fit_standardizer, per_kg_targets, standardize
from g2h_edge.train.loop import fit_fixed_epochs, predict
from g2h_edge.train.metrics import channel_r2, pooled_metrics, speed_table
from g2h_edge.train.modelling import data_digest, make_bundle, model_factory, own_model_name, resolve_hparams
from g2h_edge.train.progress import Progress
from g2h_edge.train.split import holdout_split

__all__ = ["FixedResult", "train_fixed"]


@dataclass
class FixedResult:
    bundle: object  # g2h_edge.models.Bundle
    seconds_per_epoch: float
    train_loss: list[float]
    test_speed_rows: list[dict] | None = None  # with holdout=True
    test_overall: dict | None = None
    test_subjects: tuple[str, ...] = ()
    test_r2_channels: dict | None = None  # channel -> R2 over all test cycles


def train_fixed(
    data,
    arch: str,
    epochs: int,
    cfg: TrainConfig | None = None,
    *,
    holdout: bool = False,
    name: str | None = None,
    source: str = "in-memory",
    source_sha256: str | None = None,
    notes: str = "",
    progress: bool = False,
) -> FixedResult:
    """Train ``arch`` on ``data`` for ``epochs`` epochs and return its bundle (not saved)."""
    cfg = cfg or TrainConfig()
    task = check_for_training(data)
    hp = resolve_hparams(arch, task, cfg.hparams.get(arch))
    make = model_factory(arch, hp)
    y = per_kg_targets(data.Y, data.weight_kg)
    x = np.asarray(data.X, np.float32)
    train_idx = np.arange(x.shape[0])
    split = None
    if holdout:
        split = holdout_split(data.subject_id, cfg.test_ratio, cfg.split_seed)
        train_idx = split.pool_idx
    mean, std = fit_standardizer(x[train_idx])
    bars = Progress(enabled=progress)
    t0 = time.perf_counter()
    with bars.epochs(f"{arch} ({epochs} epochs)", epochs) as cb:
        fit = fit_fixed_epochs(
            make, standardize(x[train_idx], mean, std), y[train_idx], epochs, cfg, on_epoch=cb
        )
    total_s = time.perf_counter() - t0
    prov = {
        "source": source,
        "source_sha256": source_sha256,
        "data_sha256": data_digest(data),
        "training": (
            f"g2h-edge train: fixed {epochs} epochs, no CV, AdamW lr {cfg.lr:g} wd "
            f"{cfg.weight_decay:g}, batch {cfg.batch_size}, grad-clip {cfg.grad_clip_norm:g}, "
            f"MSE on per-kg targets, seed {cfg.seed}; trained on "
            + (f"the pool (subject hold-out seed {cfg.split_seed})" if holdout else "every cycle of the file")
        ),
        "epochs": epochs,
        "n_train_cycles": int(train_idx.size),
        "train_seconds": round(total_s, 1),
        "final_train_loss": fit.train_loss[-1],
        "synthetic_data": bool(data.synthetic),
        "notes": notes,
    }
    res = FixedResult(None, float(np.mean(fit.epoch_seconds)), fit.train_loss)
    if split is not None:
        model = make()
        model.load_state_dict(fit.state_dict)
        pred = predict(model, standardize(x[split.test_idx], mean, std), cfg.batch_size, cfg.device)
        yt = y[split.test_idx]
        sid, spd = np.asarray(data.subject_id)[split.test_idx], np.asarray(data.speed_label)[split.test_idx]
        res.test_speed_rows = speed_table(yt, pred, sid, spd)
        res.test_overall = pooled_metrics(yt, pred)
        res.test_subjects = split.test_subjects
        res.test_r2_channels = dict(zip(data.out_cols, channel_r2(yt, pred).tolist()))
        prov["test_r2_per_channel_all_cycles"] = res.test_r2_channels
        prov["test_subjects"] = list(split.test_subjects)
        prov["test_metrics_by_speed"] = res.test_speed_rows
    n_sub = int(np.unique(np.asarray(data.subject_id).astype(str)[train_idx]).size)
    res.bundle = make_bundle(
        name=name or own_model_name(arch, task, n_sub),
        arch=arch,
        hparams=hp,
        state_dict=fit.state_dict,
        mean=mean,
        std=std,
        task=task,
        synthetic=data.synthetic,
        provenance=prov,
        input_summary=input_summary(x[train_idx]),
    )
    return res
