"""Real walking trials (../shared/data, skipped when absent) through the live server."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.io.trial import read_trial
from g2h_edge.sources.replay import ReplayConfig, replay


def test_real_trials_with_force_plate_events(run_server, data_dir):
    trials = sorted((data_dir / "schreiber2019").glob("*_angles.csv"))
    assert trials
    with run_server() as (srv, col):
        for i, path in enumerate(trials):
            tr = read_trial(path)
            replay(
                tr,
                ReplayConfig(
                    address=srv.endpoints["listen"], stream=f"real{i}", max_rate=True, with_events=True
                ),
            )
        for i in range(len(trials)):
            assert col.wait_ended(f"real{i}", 60)
    for i, path in enumerate(trials):
        tr = read_trial(path)
        cycles = col.of_type("cycle", f"real{i}")
        expected = {
            (s, float(a), float(b))
            for s in "RL"
            for a, b in zip(tr.events[s][:-1], tr.events[s][1:])
            if b <= tr.t[-1]
        }
        assert {(c["side"], c["t_start"], c["t_end"]) for c in cycles} == expected, path.name
        assert all(c["body_mass_kg"] == tr.body_mass_kg for c in cycles)
        assert not col.of_type("reject", f"real{i}"), path.name


def test_gait2354_knee_sign_is_refused_live(run_server, data_dir):
    path = data_dir / "opensim_gait2354" / "subject01_walk1_angles.csv"
    raw = read_trial(path, check=False)  # what a misconfigured exporter would send
    with run_server() as (srv, col):
        replay(
            raw, ReplayConfig(address=srv.endpoints["listen"], stream="old", max_rate=True, with_events=True)
        )
        assert col.wait_ended("old", 60)
    assert not col.of_type("cycle", "old")
    reasons = {r["reason"] for r in col.of_type("reject", "old")}
    assert reasons == {"knee_sign_gait2354"}, reasons
    # and the replay tool refuses the file unless asked to convert it
    from g2h_edge.errors import ConventionError
    from g2h_edge.sources.replay import load_trial_file

    with pytest.raises(ConventionError, match="gait2354"):
        load_trial_file(path)
    fixed = load_trial_file(path, convert_gait2354=True)
    assert np.nanmax(fixed.q[:, 6]) > 30.0  # knee flexion positive after conversion
