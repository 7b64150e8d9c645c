"""Regenerate the bundled demo models: ``python -m g2h_edge.train.make_demo_models``.

What it does (all with the project's own code, nothing external):

1. ``g2h_edge.io.synth.make_cohort(task, 30 subjects, seed 2025, 4 cycles per cadence)``:
   the synthetic cohort (360 cycles, NOT physiology);
2. the published subject hold-out (seed 42, 20 %: 6 test subjects), then
   ``g2h_edge.train.train_fixed`` trains a Transformer of the published architecture
   (learned positions, post-norm ReLU encoder) at a small size (d_model 32, 2 heads,
   2 layers, feed-forward 64) on the 24 pool subjects for a fixed number of epochs, with
   AdamW lr 2e-3 (not the paper's 1e-4: a few hundred CPU steps must suffice), batch 32,
   grad-clip 0.5, seed 2025;
3. scores the 6 held-out synthetic subjects (subject-mean RMSE/MAE/pooled and channel R2,
   written into the bundle's provenance) and writes ``g2h_edge/data/demo_transformer_mf.pt``
   and ``demo_transformer_jm.pt``, flagged ``synthetic=True``.

Deterministic on the CPU: a rerun gives the same weights (same torch version).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["DEMO_HPARAMS", "DEMO_SETTINGS", "make_demo_model", "main"]

#: the demo Transformer's size (the published architecture, smaller)
DEMO_HPARAMS = {"d_model": 32, "nhead": 2, "num_layers": 2, "dim_feedforward": 64}
#: cohort and optimiser settings of the bundled files
DEMO_SETTINGS = {
    "n_subjects": 30,
    "cohort_seed": 2025,
    "trials_per_condition": 4,
    "epochs": 35,
    "lr": 2e-3,
    "batch_size": 32,
}

_DEFAULT_DIR = Path(__file__).resolve().parents[1] / "g2h_edge" / "data"


def make_demo_model(
    task: str,
    out_dir: Path,
    *,
    n_subjects: int,
    epochs: int,
    lr: float,
    batch_size: int,
    cohort_seed: int,
    trials_per_condition: int,
    progress: bool = True,
) -> dict:
    """Train and write ``demo_transformer_<task>.pt``; returns a summary dict."""
    from g2h_edge.io.synth import make_cohort
    from g2h_edge.models import file_sha256, save_bundle
    from g2h_edge.train.config import TrainConfig
    from g2h_edge.train.fixed import train_fixed

    data = make_cohort(task, n_subjects, cohort_seed, trials_per_condition=trials_per_condition)
    cfg = TrainConfig(lr=lr, batch_size=batch_size, hparams={"transformer": DEMO_HPARAMS})
    how = (
        f"python -m g2h_edge.train.make_demo_models: make_cohort({task!r}, n_subjects={n_subjects}, "
        f"seed={cohort_seed}, trials_per_condition={trials_per_condition}); Transformer "
        f"{DEMO_HPARAMS}; {epochs} epochs, lr {lr:g}, batch {batch_size}; trained on the pool, "
        "scored on the held-out synthetic subjects. SYNTHETIC: not physiology."
    )
    t0 = time.perf_counter()
    res = train_fixed(
        data,
        "transformer",
        epochs,
        cfg,
        holdout=True,
        name=f"demo_transformer_{task}",
        source=f"make_cohort({task!r}, {n_subjects}, seed={cohort_seed})",
        notes=how,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"demo_transformer_{task}.pt"
    save_bundle(res.bundle, path)
    overall = res.test_speed_rows[0]
    return {
        "task": task,
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "train_seconds": seconds,
        "seconds_per_epoch": res.seconds_per_epoch,
        "test_subjects": list(res.test_subjects),
        "test": overall,
        "by_speed": res.test_speed_rows,
        "r2_per_channel": res.test_r2_channels,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m g2h_edge.train.make_demo_models", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out-dir", type=Path, default=_DEFAULT_DIR, help="where to write the bundles")
    ap.add_argument("--tasks", default="mf,jm", help="comma-separated tasks (mf, jm)")
    for key in ("n_subjects", "epochs", "batch_size", "trials_per_condition", "cohort_seed"):
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=DEMO_SETTINGS[key])
    ap.add_argument("--lr", type=float, default=DEMO_SETTINGS["lr"])
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        s = make_demo_model(
            task,
            args.out_dir,
            n_subjects=args.n_subjects,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            cohort_seed=args.cohort_seed,
            trials_per_condition=args.trials_per_condition,
            progress=not args.quiet,
        )
        t = s["test"]
        print(
            f"{s['path']}: {s['bytes'] / 1e6:.2f} MB, trained in {s['train_seconds']:.0f} s "
            f"({s['seconds_per_epoch']:.2f} s/epoch); held-out synthetic subjects "
            f"{' '.join(s['test_subjects'])}: RMSE {t['subject_mean_RMSE']:.3f}, MAE "
            f"{t['subject_mean_MAE']:.3f}, pooled R2 {t['subject_mean_R2']:.3f}, channel R2 "
            f"{t['subject_mean_R2_channel_mean']:.3f} (SYNTHETIC)"
        )
        print(
            "  R2 per channel over all held-out cycles: "
            + ", ".join(f"{k} {v:.3f}" for k, v in s["r2_per_channel"].items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
