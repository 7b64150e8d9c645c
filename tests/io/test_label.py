"""`g2h-edge label`: OpenSim IK .mot + ID .sto / SO .sto -> Gait2Hip NPZ, on real trials
(../shared/data, skipped when absent) and on files written here."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from g2h_edge.io.label import RAJAGOPAL_TO_MF, target_columns
from g2h_edge.io.mapping import MappingConfig
from g2h_edge.io.npz import read_gait2hip_npz
from g2h_edge.io.synth import make_stream
from g2h_edge.schema import IN_COLS, JM_COLS, MF_COLS, mirror_sides


def _sto(path, t, cols: dict, in_degrees=None, title="Inverse Dynamics Generalized Forces"):
    head = [title, "version=1", f"nRows={len(t)}", f"nColumns={len(cols) + 1}"]
    if in_degrees is not None:
        head.append(f"inDegrees={'yes' if in_degrees else 'no'}")
    head += ["endheader", "\t".join(["time"] + list(cols))]
    rows = ["\t".join([f"{t[i]:.5f}"] + [f"{cols[c][i]:.6f}" for c in cols]) for i in range(len(t))]
    path.write_text("\n".join(head + rows) + "\n")
    return path


def _csv(path):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    rows = [
        [float(v) if v not in ("True", "False") else float(v == "True") for v in ln.split(",")]
        for ln in lines[1:]
        if ln.strip()
    ]
    return header, np.asarray(rows)


def test_mf_table_covers_the_outputs():
    assert tuple(RAJAGOPAL_TO_MF) == MF_COLS
    left = target_columns("mf", "L")
    assert left["addmag_r"] == ("addmagDist_l", "addmagIsch_l", "addmagMid_l", "addmagProx_l")
    assert target_columns("jm", "L")["hip_rotation_r_moment"] == ("hip_rotation_l_moment",)


def test_label_real_trials_jm(tmp_path, cli, data_dir):
    from g2h_edge.export.cycles import real_cycles

    folder = data_dir / "schreiber2019"
    stems = ["2014001_C4_05", "2014004_C5_01"]
    out = tmp_path / "labels.npz"
    for k, stem in enumerate(stems):
        ev = json.loads((folder / f"{stem}_events.json").read_text())
        h, a = _csv(folder / f"{stem}_angles.csv")
        mot = _sto(
            tmp_path / f"{stem}_ik.mot",
            a[:, 0],
            {c: a[:, h.index(c)] for c in IN_COLS},
            in_degrees=True,
            title="Coordinates",
        )
        (tmp_path / f"{stem}_ik_events.json").write_text(json.dumps(ev))
        mh, m = _csv(folder / f"{stem}_hipmoments.csv")
        per_kg = k == 1  # the second trial's file holds Nm/kg
        scale = 1.0 if per_kg else ev["body_mass_kg"]
        sto = _sto(tmp_path / f"{stem}_id.sto", m[:, 0], {c: m[:, mh.index(c)] * scale for c in mh[1:7]})
        code, text = cli(
            [
                "label",
                "--ik",
                str(mot),
                "--id",
                str(sto),
                "--subject",
                stem[:7],
                "--speed",
                "med",
                "--height-m",
                str(ev["height_m"]),
                "-o",
                str(out),
                "--append",
            ]
            + (["--id-per-kg"] if per_kg else []),
        )
        assert code in (0, None), text
        assert re.search(r"\d+ frames, 2 cycles \(1 R, 1 L mirrored\), rejects none", text), text
    d = read_gait2hip_npz(out)
    assert d.n == 4 and d.task == "jm" and tuple(d.out_cols) == JM_COLS
    ref = real_cycles(data_dir)
    for i, stem in enumerate([s for s in stems for _ in "RL"]):
        side = "RL"[i % 2]
        j = next(j for j, (tr, sd) in enumerate(zip(ref.trial, ref.side)) if tr == stem and sd == side)
        np.testing.assert_allclose(d.X[i], ref.x[j], atol=2e-3)
        np.testing.assert_allclose(d.Y[i] / d.weight_kg[i], ref.y[j], atol=2e-3)


def test_label_mf_from_static_optimisation(tmp_path, cli):
    walk = make_stream(4.0, 100.0, seed=21, body_mass_kg=60.0)
    mot = _sto(
        tmp_path / "w_ik.mot",
        walk.t,
        {c: walk.q[:, i] for i, c in enumerate(IN_COLS)},
        in_degrees=True,
        title="Coordinates",
    )
    rng = np.random.default_rng(0)
    muscles = sorted(
        {m[:-2] + s for src in RAJAGOPAL_TO_MF.values() for m in src for s in ("_r", "_l")}
        | {"bfsh_r", "bfsh_l", "soleus_r"}
    )
    phase = 2 * np.pi * walk.t
    forces = {m: 100 + 80 * np.sin(phase + rng.uniform(0, 6)) + rng.uniform(0, 50) for m in muscles}
    so = _sto(
        tmp_path / "w_StaticOptimization_force.sto",
        walk.t,
        forces,
        in_degrees=False,
        title="Static Optimization",
    )
    ev = {"foot_strike_R": walk.events["R"].tolist(), "foot_strike_L": walk.events["L"].tolist()}
    evp = tmp_path / "ev.json"
    evp.write_text(json.dumps(ev))
    out = tmp_path / "mf.npz"
    code, text = cli(
        [
            "label",
            "--ik",
            str(mot),
            "--so",
            str(so),
            "--events",
            str(evp),
            "--subject",
            "S9",
            "--speed",
            "fast",
            "--height-m",
            "1.75",
            "--body-mass",
            "60",
            "-o",
            str(out),
        ],
    )
    assert code in (0, None), text
    d = read_gait2hip_npz(out)
    assert d.task == "mf" and d.Y.shape[2] == 14 and set(d.speed_label) == {"fast"}
    from g2h_edge.io.cycles import cut_cycles
    from g2h_edge.io.trial import read_trial

    cut = cut_cycles(read_trial(mot, mapping=MappingConfig(events_path=str(evp))))
    assert d.n == cut.n
    for i, (side, t0, t1) in enumerate(zip(cut.side, cut.t_start, cut.t_end)):
        tt = np.linspace(t0, t1, 180)
        suffix = "_r" if side == "R" else "_l"
        want = np.interp(tt, walk.t, sum(forces[m[:-2] + suffix] for m in RAJAGOPAL_TO_MF["glmax_r"]))
        np.testing.assert_allclose(d.Y[i, :, MF_COLS.index("glmax_r")], want, rtol=1e-4)
        x_src = np.stack([np.interp(tt, walk.t, walk.q[:, c]) for c in range(10)], 1)
        np.testing.assert_allclose(d.X[i], mirror_sides(x_src) if side == "L" else x_src, atol=1e-3)


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--id", "ID", "--so", "ID"], "exactly one of --id"),
        (["--so", "ID"], r"missing column\(s\) \[.addbrev_r.\]"),
        ([], "exactly one of --id"),
        (["--id", "BAD"], r"missing column\(s\) \['hip_rotation_r_moment'\]"),
        (["--id", "ID", "--speed", "brisk"], "Invalid value for '--speed'"),
        (["--id", "ID", "--body-mass", "0"], "Invalid value for '--body-mass'"),
    ],
)
def test_label_refusals(tmp_path, cli, extra, match):
    walk = make_stream(3.0, 100.0, seed=2)
    mot = _sto(
        tmp_path / "w_ik.mot",
        walk.t,
        {c: walk.q[:, i] for i, c in enumerate(IN_COLS)},
        in_degrees=True,
        title="Coordinates",
    )
    (tmp_path / "w_ik_events.json").write_text(
        json.dumps({"foot_strike_R": walk.events["R"].tolist(), "body_mass_kg": 70})
    )
    good = {
        c: np.ones(walk.n) * 20
        for c in ("hip_flexion_r_moment", "hip_adduction_r_moment", "hip_rotation_r_moment")
    }
    paths = {
        "ID": _sto(tmp_path / "id.sto", walk.t, good),
        "BAD": _sto(tmp_path / "bad.sto", walk.t, {k: v for k, v in good.items() if "rotation" not in k}),
    }
    args = [
        "label",
        "--ik",
        str(mot),
        "--subject",
        "S",
        "--height-m",
        "1.7",
        "-o",
        str(tmp_path / "o.npz"),
    ] + [str(paths.get(a, a)) for a in extra]
    if "--speed" not in extra:
        args += ["--speed", "med"]
    code, text = cli(args)
    assert code == 2 and re.search(match, text), text
