"""External accuracy of single models, ensembles and lab-adapted models on real trials.

    g2h-edge bench accuracy --data ../shared/data --reference ../shared/reference

Cycles: every ``schreiber2019`` trial segmented at its hand-marked foot strikes, right cycle
as is and left cycle mirrored (:func:`g2h_edge.export.cycles.real_cycles`), against the
OpenSim hip moments (Nm/kg). Rows, side by side in one run:

- each published joint-moment checkpoint (imported in memory, nothing written);
- every ensemble of two or more of them (:class:`~g2h_edge.engines.ensemble.EnsembleEngine`);
- each checkpoint fine-tuned with :func:`g2h_edge.train.adapt.finetune`, leave-subjects-out:
  subjects sorted and split into ``folds`` groups, each group predicted by the model adapted
  on the other subjects (one of those is the early-stopping validation subject), so every
  cycle gets an out-of-fold prediction; plus the ensemble of the adapted models.

Metrics over all cycles pooled: per-channel R2 and RMSE, their channel mean, and the
reference's pooled R2. Then the Spearman rank correlation between each per-cycle quality
score and the per-cycle RMSE of the best ensemble: ensemble spread, ``ood_z`` (bundle
mean/std), ``ood_phase_z`` (input summary fitted leave-one-subject-out on the other
subjects' cycles), the number of flags; once on the real cycles and once on the real cycles
plus one faulted copy of each (ankle sign flip, +25 deg hip flexion, hip-rotation sign flip,
20 deg jump, in turn), with the flags' detection rate on the copies and false-alarm rate on
the originals. Training labels live in memory only.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import click
import numpy as np

__all__ = ["accuracy_report", "format_report", "metrics_row", "inject_fault", "FAULTS", "bench_accuracy_cmd"]

#: crafted faults injected into copies of the real cycles (name -> function of x (T, 10))
FAULTS = ("ankle_flip", "hip_flexion_offset", "hip_rotation_flip", "jump")


def inject_fault(x: np.ndarray, kind: str) -> np.ndarray:
    """A copy of cycle x (T, 10) deg with one crafted fault (see :data:`FAULTS`)."""
    from g2h_edge.schema import IN_COLS

    x = np.array(x, dtype=np.float32, copy=True)
    if kind == "ankle_flip":
        x[:, IN_COLS.index("ankle_angle_r")] *= -1
    elif kind == "hip_flexion_offset":
        x[:, IN_COLS.index("hip_flexion_r")] += 25.0
    elif kind == "hip_rotation_flip":
        x[:, IN_COLS.index("hip_rotation_l")] *= -1
    elif kind == "jump":
        x[x.shape[0] // 2 :, IN_COLS.index("knee_angle_r")] += 20.0
    else:
        raise ValueError(f"unknown fault {kind!r}: use one of {FAULTS}")
    return x


def metrics_row(name: str, y: np.ndarray, p: np.ndarray, out_cols) -> dict:
    """Per-channel R2/RMSE, channel means and pooled R2 of p against y (N, T, K)."""
    from g2h_edge.train.metrics import channel_r2, pooled_metrics

    r2 = channel_r2(y, p)
    rmse = np.sqrt(((p - y) ** 2).reshape(-1, y.shape[-1]).mean(0))
    row = {"model": name}
    for c, a, b in zip(out_cols, r2, rmse):
        short = c.replace("hip_", "").replace("_r_moment", "")
        row[f"R2_{short}"], row[f"RMSE_{short}"] = float(a), float(b)
    pm = pooled_metrics(y, p)
    row.update(R2_channel_mean=float(np.nanmean(r2)), R2_pooled=pm["R2"], RMSE=pm["RMSE"])
    return row


def _cycle_rmse(y, p) -> np.ndarray:
    return np.sqrt(((p - y) ** 2).mean(axis=(1, 2)))


def _spearman(score, err) -> dict:
    from scipy.stats import spearmanr

    score = np.asarray(score, np.float64)
    if np.ptp(score) == 0:
        return {"rho": float("nan"), "p": float("nan"), "n": int(score.size), "note": "constant score"}
    res = spearmanr(score, err)
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": int(score.size)}


def _load(reference_dir: Path, threads: int):
    from g2h_edge.engines.torch_engine import TorchEngine
    from g2h_edge.models import import_checkpoint

    bundles, engines = {}, {}
    for path in sorted(reference_dir.glob("*_JM60.pt")):
        b = import_checkpoint(path)
        bundles[b.name], engines[b.name] = b, TorchEngine.from_bundle(b, threads=threads)
    if len(engines) < 2:
        from g2h_edge.errors import DataError

        raise DataError(f"need at least two *_JM60.pt checkpoints in {reference_dir}", reason="missing_file")
    return bundles, engines


def _durations(data_dir: Path, real) -> np.ndarray:
    out = []
    for trial, side in zip(real.trial, real.side):
        ev = json.loads((data_dir / "schreiber2019" / f"{trial}_events.json").read_text())
        s = ev[f"foot_strike_{side}"]
        out.append(float(s[1] - s[0]))
    return np.asarray(out)


def _adapted(bundles, x, y, sid, folds: int, epochs: int, threads: int, log) -> dict:
    """Out-of-fold predictions of each bundle fine-tuned leave-subjects-out."""
    if not bundles:
        return {}
    from g2h_edge.engines.torch_engine import TorchEngine
    from g2h_edge.train.adapt import finetune
    from g2h_edge.train.config import TrainConfig

    subjects = np.unique(sid)
    groups = np.array_split(subjects, min(folds, subjects.size))
    preds = {f"{n} adapted": np.zeros_like(y) for n in bundles}
    cfg = TrainConfig(lr=5e-5, batch_size=16, patience_epochs=max(3, epochs // 4))
    for g in groups:
        test = np.isin(sid, g)
        for name, b in bundles.items():
            res = finetune(b, x[~test], y[~test], sid[~test], epochs=epochs, cfg=cfg, val_fraction=0.25)
            eng = TorchEngine.from_bundle(res.bundle, threads=threads)
            preds[f"{name} adapted"][test] = eng.infer(x[test])
            eng.close()
            log(
                f"adapted {name} on {list(res.train_subjects)} (val {list(res.val_subjects)}"
                f", best epoch {res.best_epoch}/{res.epochs_run}, {res.seconds:.0f} s), "
                f"tested on {g.tolist()}"
            )
    return preds


def _quality_scores(x, sid, dur, engines, y_sd) -> dict:
    """Per-cycle scores (see module doc); input summaries leave-one-subject-out."""
    from g2h_edge.gait.quality import input_summary, ood_phase_z, ood_z, quality_flags

    eng = next(iter(engines.values()))
    mean, std = eng.metadata["mean"], eng.metadata["std"]
    n = x.shape[0]
    phase = np.zeros(n)
    for s in np.unique(sid):
        summary = input_summary(x[sid != s])
        for i in np.flatnonzero(sid == s):
            phase[i] = ood_phase_z(x[i], summary)[0]
    return {
        "ensemble_sd": y_sd.mean(axis=(1, 2)),
        "ood_z": np.array([ood_z(x[i], mean, std)[0] for i in range(n)]),
        "ood_phase_z (LOSO)": phase,
        "n_flags": np.array(
            [len(quality_flags(x[i], duration_s=dur[i], ref_mean=mean)) for i in range(n)], np.float64
        ),
    }


def accuracy_report(
    data_dir,
    reference_dir,
    *,
    folds: int = 3,
    epochs: int = 20,
    adapt=("LSTM", "Transformer"),
    subjects=None,
    threads: int = 2,
    log=lambda s: None,
) -> dict:
    """Rows of metrics and the score-error Spearman table; see the module doc."""
    from g2h_edge.engines.ensemble import EnsembleEngine
    from g2h_edge.export.cycles import real_cycles
    from g2h_edge.schema import JM_COLS

    data_dir, reference_dir = Path(data_dir), Path(reference_dir)
    real = real_cycles(data_dir)
    sid = np.array([t.split("_")[0] for t in real.trial])
    keep = np.ones(sid.size, bool) if not subjects else np.isin(sid, list(subjects))
    x, y, sid = real.x[keep], real.y[keep], sid[keep]
    dur = _durations(data_dir, real)[keep]
    bundles, engines = _load(reference_dir, threads)
    preds, spreads, rows = {}, {}, []
    for name, e in engines.items():
        preds[name] = e.infer(x)
    for k in range(2, len(engines) + 1):
        for combo in itertools.combinations(engines, k):
            ens = EnsembleEngine([engines[c] for c in combo])
            preds[ens.name], spreads[ens.name] = ens.infer_spread(x)
    chosen = {n: b for n, b in bundles.items() if n.split("_")[0] in set(adapt or ())}
    adapted = _adapted(chosen, x, y, sid, folds, epochs, threads, log)
    preds.update(adapted)
    if len(adapted) > 1:
        preds["+".join(adapted)] = np.mean(list(adapted.values()), axis=0)
    rows = [metrics_row(n, y, p, JM_COLS) for n, p in preds.items()]
    best = max((r for r in rows if r["model"] in spreads), key=lambda r: r["R2_channel_mean"])
    err = _cycle_rmse(y, preds[best["model"]])
    scores = _quality_scores(x, sid, dur, engines, spreads[best["model"]])
    spearman = {k: _spearman(v, err) for k, v in scores.items()}
    faulted = _fault_study(x, y, sid, dur, engines, best["model"], scores, err)
    for e in engines.values():
        e.close()
    return {
        "n_cycles": int(x.shape[0]),
        "n_subjects": int(np.unique(sid).size),
        "rows": rows,
        "best_ensemble": best["model"],
        "spearman": spearman,
        "faults": faulted,
    }


def _fault_study(x, y, sid, dur, engines, ens_name, clean_scores, clean_err) -> dict:
    from g2h_edge.engines.ensemble import EnsembleEngine

    xf = np.stack([inject_fault(xi, FAULTS[i % len(FAULTS)]) for i, xi in enumerate(x)])
    ens = EnsembleEngine([engines[n] for n in ens_name.split("+")])
    pf, sdf = ens.infer_spread(xf)
    f_scores = _quality_scores(xf, sid, dur, engines, sdf)
    err = np.concatenate([clean_err, _cycle_rmse(y, pf)])
    kind = np.array([FAULTS[i % len(FAULTS)] for i in range(x.shape[0])])
    ratio = {
        k: {
            "rmse_ratio": float(
                _cycle_rmse(y[kind == k], pf[kind == k]).mean() / clean_err[kind == k].mean()
            ),
            "sd_ratio": float(
                f_scores["ensemble_sd"][kind == k].mean() / clean_scores["ensemble_sd"][kind == k].mean()
            ),
        }
        for k in FAULTS
        if (kind == k).any()
    }
    out = {
        "per_fault": ratio,
        "rmse_clean_mean": float(clean_err.mean()),
        "rmse_faulted_mean": float(_cycle_rmse(y, pf).mean()),
        "flag_recall": float((f_scores["n_flags"] > 0).mean()),
        "flag_false_alarm": float((clean_scores["n_flags"] > 0).mean()),
        "spearman": {k: _spearman(np.concatenate([clean_scores[k], f_scores[k]]), err) for k in clean_scores},
    }
    return out


def format_report(rep: dict) -> str:
    """Markdown tables of :func:`accuracy_report`'s result."""
    rows = rep["rows"]
    cols = [c for c in rows[0] if c != "model"]
    lines = [
        f"external accuracy on {rep['n_cycles']} real cycles of {rep['n_subjects']} "
        "subjects (R and mirrored L; Nm/kg; pooled over cycles)",
        "",
        "| model | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    lines += [
        "",
        f"Spearman(score, per-cycle RMSE of {rep['best_ensemble']}):",
        "",
        "| score | rho (real) | p | rho (real + faulted) | p |",
        "|---|---|---|---|---|",
    ]
    fs = rep["faults"]["spearman"]
    for k, v in rep["spearman"].items():
        lines.append(f"| {k} | {v['rho']:.3f} | {v['p']:.3g} | {fs[k]['rho']:.3f} | {fs[k]['p']:.3g} |")
    f = rep["faults"]
    lines += [
        "",
        f"faulted copies: mean cycle RMSE {f['rmse_faulted_mean']:.3f} vs clean "
        f"{f['rmse_clean_mean']:.3f}; flags fire on {100 * f['flag_recall']:.0f} % of "
        f"faulted and {100 * f['flag_false_alarm']:.0f} % of clean cycles; per fault "
        "(faulted / clean, same cycles): "
        + ", ".join(
            f"{k} RMSE x{v['rmse_ratio']:.2f} spread x{v['sd_ratio']:.2f}" for k, v in f["per_fault"].items()
        ),
    ]
    return "\n".join(lines)


@click.command("accuracy")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder holding schreiber2019/ (e.g. ../shared/data).",
)
@click.option(
    "--reference",
    "reference_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder of the published *_JM60.pt checkpoints [DATA/../reference].",
)
@click.option(
    "--folds",
    default=3,
    show_default=True,
    type=click.IntRange(2, 20),
    help="Subject groups for leave-subjects-out fine-tuning.",
)
@click.option(
    "--epochs",
    default=20,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Fine-tuning epochs at most (early stopping on a validation subject).",
)
@click.option(
    "--adapt",
    default="LSTM,Transformer",
    show_default=True,
    help="Architectures to fine-tune leave-subjects-out (Mamba's pure-torch "
    "training scan is slow on a CPU: add it with a GPU).",
)
@click.option("--no-finetune", is_flag=True, help="Skip the adapted models (fast).")
@click.option("--subjects", default=None, help="Comma-separated subject ids (default all).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--json",
    "json_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the full result as JSON.",
)
def bench_accuracy_cmd(
    data_dir, reference_dir, folds, epochs, adapt, no_finetune, subjects, threads, json_path
):
    """Per-channel and pooled R2/RMSE of single, ensemble and adapted models on real trials,
    and how well each quality score ranks the per-cycle error."""
    ref = Path(reference_dir) if reference_dir else Path(data_dir).resolve().parent / "reference"
    rep = accuracy_report(
        data_dir,
        ref,
        folds=folds,
        epochs=epochs,
        adapt=() if no_finetune else tuple(adapt.split(",")),
        threads=threads,
        subjects=subjects.split(",") if subjects else None,
        log=lambda s: click.echo(s, err=True),
    )
    click.echo(format_report(rep))
    if json_path:
        Path(json_path).write_text(json.dumps(rep, indent=2, default=float))
