"""Wall time per training epoch of each published-size model (a benchmark, not a test).

``python -m g2h_edge.bench.epoch_timing [--models lstm,transformer,mamba] [--epochs 2]
[--subjects 60] [--trials 4] [--device cpu]``

Builds a synthetic cohort of the real size (60 subjects x 3 cadences x 4 cycles = 720
cycles; the published files hold 713), takes the training rows of CV fold 1 of the
published protocol (about 460 cycles; the final fit uses the whole pool of 576) and times
full training epochs (AdamW, batch 64, grad-clip; validation not included). Prints the
median seconds per epoch, the estimate for a whole benchmark at a given epoch count, and
the machine's load average (shared machines make these numbers noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

__all__ = ["time_epochs", "main", "BENCH_EPOCHS"]

#: epochs of one whole benchmark of one model, in fold-epoch equivalents: the published
#: Transformer MF60 best epochs (249, 174, 166, 212, 255) + patience 30 each = 1206 fold
#: epochs, + the final fit of 212 epochs on 1.25x as many cycles = 265
BENCH_EPOCHS: int = 1206 + 265


def time_epochs(arch: str, data, epochs: int, device: str = "cpu") -> tuple[list[float], float]:
    """Wall seconds of each training epoch of ``arch`` on CV fold 1's training rows, and the
    process CPU seconds per epoch (all threads; less sensitive to other jobs on the machine)."""
    from g2h_edge.train.config import TrainConfig
    from g2h_edge.train.dataset import fit_standardizer, per_kg_targets, standardize
    from g2h_edge.train.loop import fit_fixed_epochs
    from g2h_edge.train.modelling import model_factory, resolve_hparams
    from g2h_edge.train.split import group_folds, holdout_split

    split = holdout_split(data.subject_id)
    groups = np.asarray(data.subject_id)[split.pool_idx]
    tr, _ = group_folds(groups, 5)[0]
    rows = split.pool_idx[tr]
    x = np.asarray(data.X, np.float32)[rows]
    y = per_kg_targets(data.Y, data.weight_kg)[rows]
    mean, std = fit_standardizer(x)
    make = model_factory(arch, resolve_hparams(arch, data.task))
    cpu0 = time.process_time()
    res = fit_fixed_epochs(make, standardize(x, mean, std), y, epochs, TrainConfig(device=device))
    return res.epoch_seconds, (time.process_time() - cpu0) / epochs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m g2h_edge.bench.epoch_timing", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--models", default="lstm,transformer,mamba")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--trials", type=int, default=4, help="cycles per subject and cadence")
    ap.add_argument("--task", default="mf", choices=["mf", "jm"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args(argv)
    import torch

    from g2h_edge.io.synth import make_cohort

    data = make_cohort(args.task, args.subjects, 2025, trials_per_condition=args.trials)
    print(
        f"cohort: {data.n} cycles ({args.subjects} subjects x 3 cadences x {args.trials}); "
        f"task {args.task}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
    )
    for arch in [a.strip() for a in args.models.split(",") if a.strip()]:
        secs, cpu = time_epochs(arch, data, args.epochs, args.device)
        med = statistics.median(secs[1:] if len(secs) > 1 else secs)  # first epoch = warm-up
        print(
            f"{arch:12s} {med:8.2f} s/epoch (median after the first; fold-1 training rows; epochs: "
            f"{', '.join(f'{s:.2f}' for s in secs)}); {cpu:.1f} CPU s/epoch; "
            f"whole benchmark ~{med * BENCH_EPOCHS / 3600:.1f} h; "
            f"load avg {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
