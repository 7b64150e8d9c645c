"""Lab adaptation: fine-tune an existing bundle on a few labelled subjects (``train --init``).

The model starts from the bundle's weights and keeps the bundle's input standardisation
(``refit_standardisation=True`` refits it on the new data instead). With at least two
subjects, ``val_fraction`` of them (at least one, drawn with ``cfg.split_seed``) are a
subject-grouped validation set: training stops early on their loss (``cfg.patience_epochs``)
and the best epoch's weights are kept; with one subject it runs the fixed ``epochs``.

The adapted bundle is named after its base without the "60" of the published names
(``Transformer_JM60`` -> ``Transformer_JM-adapted-4subj``), carries an ``input_summary`` of
its training inputs (for the per-phase out-of-distribution score) and says in its
provenance what it was adapted from and on what.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from g2h_edge.errors import TrainError
from g2h_edge.train.config import TrainConfig
from g2h_edge.train.dataset import fit_standardizer, standardize
from g2h_edge.train.loop import fit_early_stopping, fit_fixed_epochs
from g2h_edge.train.modelling import make_bundle, model_factory

__all__ = ["AdaptResult", "adapted_name", "finetune", "finetune_data"]


@dataclass
class AdaptResult:
    bundle: object  # g2h_edge.models.Bundle
    best_epoch: int
    epochs_run: int
    train_subjects: tuple[str, ...]
    val_subjects: tuple[str, ...]
    val_loss: float
    seconds: float


def adapted_name(base: str, n_subjects: int) -> str:
    """``Transformer_JM60`` -> ``Transformer_JM-adapted-4subj`` (no cohort-size suffix that
    would suggest the published 60-subject training)."""
    stem = re.sub(r"(-\d+subj|\d+)$", "", str(base)) or "model"
    return f"{stem}-adapted-{int(n_subjects)}subj"


def _val_split(sid: np.ndarray, fraction: float, seed: int):
    subjects = np.unique(sid)
    if subjects.size < 2 or fraction <= 0:
        return subjects, np.array([], dtype=subjects.dtype)
    n_val = max(1, int(round(subjects.size * fraction)))
    n_val = min(n_val, subjects.size - 1)
    order = subjects.copy()
    np.random.default_rng(seed).shuffle(order)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def finetune(
    bundle,
    X,
    Y_per_kg,
    subject_id,
    *,
    epochs: int = 30,
    cfg: TrainConfig | None = None,
    val_fraction: float = 0.25,
    refit_standardisation: bool = False,
    name: str | None = None,
    synthetic_data: bool = False,
    source: str = "in-memory",
) -> AdaptResult:
    """Fine-tune ``bundle`` on X (N, T, 10) deg, Y (N, T, K) per kg; see the module doc."""
    from g2h_edge.gait.quality import input_summary

    cfg = cfg or TrainConfig(lr=5e-5)
    X = np.asarray(X, np.float32)
    Y = np.asarray(Y_per_kg, np.float32)
    sid = np.asarray(subject_id).astype(str)
    if (
        X.ndim != 3
        or Y.shape[:2] != X.shape[:2]
        or Y.shape[2] != len(bundle.out_cols)
        or sid.shape != (X.shape[0],)
    ):
        raise TrainError(
            f"fine-tuning needs X (N, T, 10), Y (N, T, {len(bundle.out_cols)}) "
            f"and one subject id per cycle; got {X.shape}, {Y.shape}, "
            f"{sid.shape}",
            reason="bad_data",
        )
    if epochs < 1:
        raise TrainError(f"epochs={epochs}: must be at least 1", reason="bad_epochs")
    train_s, val_s = _val_split(sid, val_fraction, cfg.split_seed)
    tr, va = np.isin(sid, train_s), np.isin(sid, val_s)
    mean, std = fit_standardizer(X[tr]) if refit_standardisation else (bundle.mean, bundle.std)

    factory = model_factory(bundle.arch, bundle.hparams)  # Mamba: the faster training scan

    def make():
        core = factory()
        core.load_state_dict(bundle.state_dict, strict=True)
        return core

    t0 = time.perf_counter()
    xs = standardize(X, mean, std)
    if va.any():
        fit = fit_early_stopping(make, xs[tr], Y[tr], xs[va], Y[va], cfg.replace(max_epochs=epochs))
    else:
        fit = fit_fixed_epochs(make, xs[tr], Y[tr], epochs, cfg)
    seconds = time.perf_counter() - t0
    n_sub = int(np.unique(sid).size)
    prov = {
        "adapted_from": bundle.name,
        "adapted_from_provenance": {
            k: v
            for k, v in bundle.provenance.items()
            if k in ("source", "source_sha256", "licence", "created")
        },
        "training": (
            f"g2h-edge train --init: fine-tuned {bundle.name} on {n_sub} "
            f"subjects ({int(tr.sum())} train / {int(va.sum())} validation "
            f"cycles), AdamW lr {cfg.lr:g}, at most {epochs} epochs, "
            f"standardisation {'refitted' if refit_standardisation else 'kept'}"
        ),
        "source": source,
        "train_subjects": train_s.tolist(),
        "val_subjects": val_s.tolist(),
        "best_epoch": fit.best_epoch,
        "synthetic_data": bool(synthetic_data),
    }
    out = make_bundle(
        name=name or adapted_name(bundle.name, n_sub),
        arch=bundle.arch,
        hparams=bundle.hparams,
        state_dict=fit.state_dict,
        mean=mean,
        std=std,
        task=bundle.task,
        synthetic=bool(bundle.synthetic or synthetic_data),
        provenance=prov,
        input_summary=input_summary(X[tr]),
    )
    return AdaptResult(
        out,
        fit.best_epoch,
        fit.epochs_run,
        tuple(train_s.tolist()),
        tuple(val_s.tolist()),
        float(fit.best_val_loss) if va.any() else float("nan"),
        seconds,
    )


def finetune_data(bundle, data, **kw) -> AdaptResult:
    """:func:`finetune` on a Gait2HipData file of the bundle's task (targets / body mass)."""
    from g2h_edge.errors import DataError
    from g2h_edge.train.dataset import check_for_training, per_kg_targets

    task = check_for_training(data)
    if task != bundle.task:
        raise DataError(
            f"bundle {bundle.name!r} predicts task {bundle.task!r} but the file "
            f"holds {task!r} targets: adapt a bundle of the file's task"
        )
    return finetune(
        bundle,
        data.X,
        per_kg_targets(data.Y, data.weight_kg),
        data.subject_id,
        synthetic_data=bool(data.synthetic),
        **kw,
    )
