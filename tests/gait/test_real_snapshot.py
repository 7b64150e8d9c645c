"""Snapshot of the detector's IC times on the shared real trials (skipped when absent).

The times below were computed by this project's detector (``detect_ics``, 1 frame per
update) on ../shared/data and rounded to 10 ms; they hold no data of the trials themselves.
Any change of the detector that moves, adds or drops an IC on real walking fails here:
update the snapshot only on purpose, with the accuracy numbers of docs/gait_events.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.gait import detect_ics
from g2h_edge.io import read_trial

#: trial -> side -> IC times (s, rounded to 10 ms). 2014015_C4_04 has no first left IC: its
#: reach peak lies before the first frame and the start_edge gate refuses it (see the docs).
SNAPSHOT = {
    "schreiber2019/2014001_C4_05": {"R": [0.02, 1.02], "L": [0.52, 1.52]},
    "schreiber2019/2014001_C5_01": {"R": [0.42, 1.18], "L": [0.03, 0.81]},
    "schreiber2019/2014004_C4_02": {"R": [0.57, 1.66], "L": [0.04, 1.13]},
    "schreiber2019/2014004_C5_01": {"R": [0.06, 0.92], "L": [0.49, 1.37]},
    "schreiber2019/2014007_C4_04": {"R": [0.03, 1.22], "L": [0.62, 1.83]},
    "schreiber2019/2014007_C5_04": {"R": [0.54, 1.52], "L": [0.03, 1.03]},
    "schreiber2019/2014014_C4_05": {"R": [0.62, 1.76], "L": [0.05, 1.18]},
    "schreiber2019/2014014_C5_04": {"R": [0.55, 1.54], "L": [0.03, 1.03]},
    "schreiber2019/2014015_C4_04": {"R": [0.63, 1.85], "L": [1.26]},
    "schreiber2019/2014015_C5_03": {"R": [0.05, 1.04], "L": [0.55, 1.56]},
    "schreiber2019/2014019_C4_05": {"R": [0.57, 1.66], "L": [0.04, 1.12]},
    "schreiber2019/2014019_C5_03": {"R": [0.49, 1.38], "L": [0.04, 0.93]},
    "opensim_gait2354/subject01_walk1": {"R": [0.63, 1.85], "L": [1.24, 2.46]},
}


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_ic_times_match_the_snapshot(data_dir, name):
    path = data_dir / f"{name}_angles.csv"
    tr = read_trial(path, convert_gait2354=name.startswith("opensim_gait2354/"))
    found = detect_ics(tr.t, tr.q, chunk=1)
    for side in ("R", "L"):
        want = np.array(SNAPSHOT[name][side])
        assert found[side].shape == want.shape, (side, found[side], want)
        # within rounding (5 ms) plus 1 ms of numerical slack
        np.testing.assert_allclose(found[side], want, atol=0.006, rtol=0)


def test_snapshot_covers_every_trial(data_dir):
    names = {
        f"{p.parent.name}/{p.name[: -len('_angles.csv')]}"
        for sub in ("schreiber2019", "opensim_gait2354")
        for p in (data_dir / sub).glob("*_angles.csv")
    }
    assert names == set(SNAPSHOT)
