"""Holm correction against published worked examples; Wilcoxon against a known example."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.train.stats import holm, wilcoxon_pairs


@pytest.mark.parametrize(
    "p, expected",
    [
        # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm")
        ([0.01, 0.02, 0.03, 0.04, 0.05], [0.05, 0.08, 0.09, 0.09, 0.09]),
        # Holm-Bonferroni worked example (Wikipedia): H1..H4 with p 0.01, 0.04, 0.03, 0.005;
        # at alpha 0.05 only H4 and H1 are rejected
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.5, 0.9], [1.0, 1.0]),  # capped at 1
        ([0.2], [0.2]),
    ],
)
def test_holm_known_examples(p, expected):
    assert holm(p) == pytest.approx(expected)


def test_holm_nan_does_not_count():
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1])
    assert out[[0, 2]] == pytest.approx([0.02, 0.02])


@pytest.mark.parametrize("p, match", [([1.5], r"\[0, 1\]"), ([[0.1]], "1-D")])
def test_holm_bad_input(p, match):
    with pytest.raises(ValueError, match=match):
        holm(p)


def test_wilcoxon_known_example():
    # scipy.stats.wilcoxon documentation (Darwin's plant heights): differences d, exact
    # two-sided p = 0.04126
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], float)
    rows = wilcoxon_pairs({"a": d, "b": np.zeros_like(d)})
    assert len(rows) == 1
    assert rows[0]["p"] == pytest.approx(0.04126, abs=5e-5)
    assert rows[0]["p_holm"] == pytest.approx(rows[0]["p"])  # one comparison: no change
    assert rows[0]["significant"]


def test_wilcoxon_pairs_holm_over_three_models():
    rng = np.random.default_rng(0)
    base = rng.normal(size=12)
    vals = {"A": base, "B": base + 1.0 + 0.01 * rng.normal(size=12), "C": base.copy()}
    rows = {(r["model_a"], r["model_b"]): r for r in wilcoxon_pairs(vals)}
    assert set(rows) == {("A", "B"), ("A", "C"), ("B", "C")}
    assert rows[("A", "C")]["p"] == 1.0 and not rows[("A", "C")]["significant"]
    ps = [rows[k]["p"] for k in sorted(rows)]
    assert [rows[k]["p_holm"] for k in sorted(rows)] == pytest.approx(holm(ps).tolist())
    assert rows[("A", "B")]["median_diff"] < 0
