"""g2h_edge.train: the Gait2Hip-60 benchmark protocol (installed from the top-level train/ folder).

See docs/training.md. Entry points: :func:`run_benchmark` (the whole protocol for one task
file), :func:`train_fixed` (fixed epochs, no CV), :func:`evaluate_bundle` (zero-shot external
evaluation). The CLI commands live in :mod:`g2h_edge.train.cli`.
"""

from g2h_edge.train.benchmark import BenchmarkResult, run_benchmark
from g2h_edge.train.config import ARCHS, TrainConfig
from g2h_edge.train.evaluate import EvaluationResult, evaluate_bundle
from g2h_edge.train.fixed import FixedResult, train_fixed
from g2h_edge.train.metrics import channel_r2, pooled_metrics, speed_table, subject_metrics
from g2h_edge.train.split import group_folds, holdout_split
from g2h_edge.train.stats import holm, wilcoxon_pairs

__all__ = [
    "ARCHS",
    "TrainConfig",
    "run_benchmark",
    "BenchmarkResult",
    "train_fixed",
    "FixedResult",
    "evaluate_bundle",
    "EvaluationResult",
    "holdout_split",
    "group_folds",
    "pooled_metrics",
    "channel_r2",
    "subject_metrics",
    "speed_table",
    "holm",
    "wilcoxon_pairs",
]
