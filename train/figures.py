"""Figures of the benchmark (matplotlib, Agg backend; files only, never a window).

- ``bars_by_cadence``: subject-mean ± SD per cadence and model, with brackets over the model
  pairs whose Holm-corrected Wilcoxon p < 0.05 (``*``, ``**`` < 0.01, ``***`` < 0.001);
- ``waveforms``: reference vs predicted mean ± SD over cycles, one panel per output;
- ``subject_boxplots``: per-subject metrics of each model (box + points).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from g2h_edge.schema import SPEED_LABELS

__all__ = ["bars_by_cadence", "waveforms", "subject_boxplots", "stars"]

_BAR_METRICS = (("R2", "pooled R2"), ("R2_channel_mean", "channel-mean R2"), ("RMSE", "RMSE"))


def _plt():
    from g2h_edge.errors import require

    mpl = require("matplotlib", "plot", "benchmark figures")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def stars(p: float) -> str:
    """Significance marker of a (Holm-adjusted) p-value; '' when not significant."""
    if not np.isfinite(p) or p >= 0.05:
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*"


def _speeds(per_model: dict) -> list[str]:
    present = list(next(iter(per_model.values())))
    ordered = [s for s in SPEED_LABELS if s in present]
    return ordered + [s for s in present if s not in ordered and s != "overall"] + ["overall"]


def _finish(fig, path: Path, title: str, synthetic: bool) -> Path:
    if synthetic:
        title += "  [SYNTHETIC DATA: not physiology]"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Path(path)


def _bracket(ax, x0, x1, y, text, h):
    ax.plot([x0, x0, x1, x1], [y, y + h, y + h, y], lw=0.8, color="k")
    ax.text((x0 + x1) / 2, y + h, text, ha="center", va="bottom", fontsize=8)


def bars_by_cadence(
    path, per_model: dict, wilcoxon: list[dict], *, title: str = "", synthetic: bool = False
) -> Path:
    """Grouped bars (cadence groups x models) for pooled R2, channel-mean R2 and RMSE."""
    plt = _plt()
    models, speeds = list(per_model), _speeds(per_model)
    fig, axes = plt.subplots(1, len(_BAR_METRICS), figsize=(5 * len(_BAR_METRICS), 4))
    width = 0.8 / max(1, len(models))
    for ax, (metric, label) in zip(np.atleast_1d(axes), _BAR_METRICS):
        top = {}
        for j, m in enumerate(models):
            vals = [per_model[m][s].as_dict()[metric] for s in speeds]
            mean = [np.nanmean(v) if np.isfinite(v).any() else np.nan for v in vals]
            sd = [np.nanstd(v) if np.isfinite(v).any() else 0.0 for v in vals]
            x = np.arange(len(speeds)) + (j - (len(models) - 1) / 2) * width
            ax.bar(x, mean, width, yerr=sd, capsize=2, label=m)
            for i, s in enumerate(speeds):
                top[(m, s)] = (x[i], np.nan_to_num(mean[i] + sd[i]))
        ymax = max([v[1] for v in top.values()] + [0.0])
        h = 0.04 * (ymax if ymax > 0 else 1.0)
        for s in speeds:  # brackets stacked above the cadence's tallest bar
            base = max(top[(m, s)][1] for m in models)
            sig = [w for w in wilcoxon if w["metric"] == metric and w["speed"] == s and stars(w["p_holm"])]
            for level, w in enumerate(sig):
                x0, x1 = top[(w["model_a"], s)][0], top[(w["model_b"], s)][0]
                _bracket(ax, x0, x1, base + h * (1 + 3 * level), stars(w["p_holm"]), h)
        ax.set_xticks(np.arange(len(speeds)), speeds)
        ax.set_ylabel(f"subject-mean {label}")
        ax.set_title(label)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    return _finish(fig, Path(path), f"{title} test subjects by cadence (mean ± SD over subjects)", synthetic)


def waveforms(path, y_true, y_pred, out_cols, unit: str, *, title: str = "", synthetic: bool = False) -> Path:
    """Reference vs predicted waveform, mean ± SD over cycles, one panel per output."""
    plt = _plt()
    y, p = np.asarray(y_true), np.asarray(y_pred)  # (N, T, K)
    k = y.shape[-1]
    ncol = min(4, k)
    nrow = int(np.ceil(k / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.6 * nrow), squeeze=False)
    t = np.linspace(0, 100, y.shape[1])
    for i, ax in enumerate(axes.ravel()):
        if i >= k:
            ax.axis("off")
            continue
        for arr, color, name in ((y, "k", "reference"), (p, "tab:red", "predicted")):
            mu, sd = arr[..., i].mean(axis=0), arr[..., i].std(axis=0)
            ax.plot(t, mu, color=color, lw=1.2, label=name)
            ax.fill_between(t, mu - sd, mu + sd, color=color, alpha=0.2, lw=0)
        ax.set_title(out_cols[i], fontsize=9)
        ax.set_xlabel("gait cycle (%)", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    return _finish(fig, Path(path), title, synthetic)


def subject_boxplots(path, per_model: dict, *, title: str = "", synthetic: bool = False) -> Path:
    """Per-subject RMSE, pooled R2 and channel-mean R2 of each model (all cadences)."""
    plt = _plt()
    models = list(per_model)
    fig, axes = plt.subplots(1, len(_BAR_METRICS), figsize=(4.5 * len(_BAR_METRICS), 4))
    rng = np.random.default_rng(0)  # fixed jitter: identical files on rerun
    for ax, (metric, label) in zip(np.atleast_1d(axes), _BAR_METRICS):
        data = [per_model[m]["overall"].as_dict()[metric] for m in models]
        data = [np.asarray(v)[np.isfinite(v)] for v in data]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(np.arange(1, len(models) + 1), models)
        for j, v in enumerate(data, start=1):
            ax.scatter(j + rng.uniform(-0.12, 0.12, v.size), v, s=10, alpha=0.7)
        ax.set_title(f"per-subject {label}")
    return _finish(fig, Path(path), f"{title} test subjects", synthetic)
