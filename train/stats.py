"""Paired comparisons between models: Wilcoxon signed-rank with Holm's correction.

The unit of comparison is the test subject (subject-level metrics), so two models are
compared on the same subjects, paired. Holm's step-down correction (Holm 1979) controls the
family-wise error over the model pairs of one metric (and one cadence).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np

__all__ = ["holm", "wilcoxon_pairs"]


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values, in the input order.

    With m p-values sorted ascending p(1) <= ... <= p(m), the adjusted value of p(i) is
    max_{j<=i} min(1, (m - j + 1) p(j)). NaN inputs stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be 1-D, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def _wilcoxon_p(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Two-sided Wilcoxon signed-rank on paired finite values: (statistic, p, n pairs)."""
    from scipy.stats import wilcoxon

    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = int(a.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    if np.all(a == b):
        return 0.0, 1.0, n  # identical: no evidence of a difference
    res = wilcoxon(a, b, alternative="two-sided")
    return float(res.statistic), float(res.pvalue), n


def wilcoxon_pairs(values: Mapping[str, np.ndarray], alpha: float = 0.05) -> list[dict]:
    """Every pair of models compared on paired per-subject values, Holm-corrected.

    ``values`` maps a model name to its (S,) per-subject values in the same subject order.
    Returns one row per pair: model_a, model_b, n, median_diff (a - b), statistic, p,
    p_holm, significant (p_holm < alpha).
    """
    names = list(values)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    sizes = {a.shape for a in arrays.values()}
    if len(sizes) > 1:
        raise ValueError(f"per-subject arrays differ in shape: {sorted(sizes)}")
    rows = []
    for a, b in combinations(names, 2):
        stat, p, n = _wilcoxon_p(arrays[a], arrays[b])
        d = arrays[a] - arrays[b]
        d = d[np.isfinite(d)]
        rows.append(
            {
                "model_a": a,
                "model_b": b,
                "n": n,
                "median_diff": float(np.median(d)) if d.size else float("nan"),
                "statistic": stat,
                "p": p,
            }
        )
    adjusted = holm([r["p"] for r in rows]) if rows else []
    for r, q in zip(rows, adjusted):
        r["p_holm"] = float(q)
        r["significant"] = bool(np.isfinite(q) and q < alpha)
    return rows
