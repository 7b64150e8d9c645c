"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.train.metrics import channel_r2, pooled_metrics, speed_table, subject_mean, subject_metrics


def _pair():
    # 1 cycle, 2 frames, 2 channels: y = [[1, 10], [3, 14]], p = [[2, 10], [3, 12]]
    y = np.array([[[1.0, 10.0], [3.0, 14.0]]])
    p = np.array([[[2.0, 10.0], [3.0, 12.0]]])
    return y, p


def test_pooled_metrics_by_hand():
    y, p = _pair()
    m = pooled_metrics(y, p)
    # errors: 1, 0, 0, -2 -> MSE 5/4, MAE 3/4
    assert m["RMSE"] == pytest.approx(np.sqrt(5 / 4))
    assert m["MAE"] == pytest.approx(0.75)
    # pooled mean of y = 7; SS_tot = 36 + 9 + 16 + 49 = 110; SS_res = 5
    assert m["R2"] == pytest.approx(1 - 5 / 110)


def test_channel_r2_by_hand_and_lower_than_pooled():
    y, p = _pair()
    r2 = channel_r2(y, p)
    # channel 0: mean 2, SS_tot 2, SS_res 1 -> 0.5 ; channel 1: mean 12, SS_tot 8, SS_res 4 -> 0.5
    assert r2 == pytest.approx([0.5, 0.5])
    assert pooled_metrics(y, p)["R2"] > r2.mean()  # pooling credits the level difference


def test_channel_r2_constant_channel_is_nan():
    y = np.zeros((2, 3, 1))
    assert np.isnan(channel_r2(y, y + 1)[0])


def test_subject_level_mean_and_cadence_rows():
    # subject A: 2 cycles (slow, fast), subject B: 1 cycle (slow); 2 frames, 1 channel
    y = np.array([[[0.0], [2.0]], [[0.0], [4.0]], [[1.0], [3.0]]])
    p = np.array([[[1.0], [2.0]], [[0.0], [2.0]], [[1.0], [3.0]]])
    sid = np.array(["A", "A", "B"])
    spd = np.array(["slow", "fast", "slow"])
    sm = subject_metrics(y, p, sid)
    assert sm.subjects == ("A", "B")
    # A: errors 1, 0, 0, -2 -> RMSE sqrt(5/4), MAE 3/4 ; B: perfect
    assert sm.rmse == pytest.approx([np.sqrt(5 / 4), 0.0])
    assert sm.mae == pytest.approx([0.75, 0.0])
    # A: y = 0, 2, 0, 4 mean 1.5: SS_tot = 2.25 + .25 + 2.25 + 6.25 = 11, SS_res = 5
    assert sm.r2_pooled == pytest.approx([1 - 5 / 11, 1.0])
    rows = speed_table(y, p, sid, spd)
    assert [r["speed"] for r in rows] == ["overall", "fast", "slow"]
    overall, fast, slow = rows
    assert overall["subject_mean_RMSE"] == pytest.approx(np.sqrt(5 / 4) / 2)
    assert (overall["n_trials"], overall["n_subjects"]) == (3, 2)
    assert (fast["n_trials"], fast["n_subjects"]) == (1, 1)  # B has no fast cycle: NaN, ignored
    assert fast["subject_mean_MAE"] == pytest.approx(1.0)  # A fast: errors 0, -2
    assert slow["subject_mean_MAE"] == pytest.approx(0.25)  # (A 0.5 + B 0) / 2


def test_subject_mean_ignores_nan():
    assert subject_mean([1.0, np.nan, 3.0]) == 2.0
    assert np.isnan(subject_mean([np.nan]))


@pytest.mark.parametrize(
    "y, p, match",
    [
        (np.zeros((1, 2, 3)), np.zeros((1, 2, 2)), "shape"),
        (np.zeros((0, 2, 3)), np.zeros((0, 2, 3)), "no values"),
    ],
)
def test_metrics_bad_input(y, p, match):
    with pytest.raises(ValueError, match=match):
        pooled_metrics(y, p)
