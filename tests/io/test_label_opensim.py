"""`g2h-edge label --model`: OpenSim 4.6 itself runs IK + ID (+ static optimisation) on a
small legs model built here with the opensim API and markers placed by its own kinematics;
skipped when the `opensim` extra does not import."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from g2h_edge.io.npz import read_gait2hip_npz
from g2h_edge.io.synth import make_stream
from g2h_edge.schema import IN_COLS, mirror_sides

osim = pytest.importorskip("opensim", reason="opensim (opensim extra) not installed")


def _body(name, mass, com_y):
    return osim.Body(name, mass, osim.Vec3(0, com_y, 0), osim.Inertia(0.05, 0.01, 0.05))


def _pin(name, parent, child, at_y, coord):
    j = osim.PinJoint(
        name, parent, osim.Vec3(0, at_y, 0), osim.Vec3(0, 0, 0), child, osim.Vec3(0, 0, 0), osim.Vec3(0, 0, 0)
    )
    j.upd_coordinates(0).setName(coord)
    return j


def legs_model(actuators: bool = False):
    """Pelvis welded 1 m above ground, two 3-segment legs whose coordinates carry the ten
    input names (gimbal hips, pin knees/ankles), 3 markers per segment."""
    m = osim.Model()
    m.setName("g2h_test_legs")
    pelvis = _body("pelvis", 10.0, 0.0)
    m.addBody(pelvis)
    m.addJoint(
        osim.WeldJoint(
            "ground_pelvis",
            m.getGround(),
            osim.Vec3(0, 1.0, 0),
            osim.Vec3(0, 0, 0),
            pelvis,
            osim.Vec3(0, 0, 0),
            osim.Vec3(0, 0, 0),
        )
    )
    for s, z in (("r", 0.09), ("l", -0.09)):
        femur, tibia, foot = (
            _body(f"femur_{s}", 8.0, -0.18),
            _body(f"tibia_{s}", 3.5, -0.18),
            _body(f"foot_{s}", 1.0, 0.0),
        )
        for b in (femur, tibia, foot):
            m.addBody(b)
        hip = osim.GimbalJoint(
            f"hip_{s}",
            pelvis,
            osim.Vec3(0, 0, z),
            osim.Vec3(0, 0, 0),
            femur,
            osim.Vec3(0, 0, 0),
            osim.Vec3(0, 0, 0),
        )
        for i, c in enumerate((f"hip_adduction_{s}", f"hip_rotation_{s}", f"hip_flexion_{s}")):
            hip.upd_coordinates(i).setName(c)
        for j in (
            hip,
            _pin(f"knee_{s}", femur, tibia, -0.4, f"knee_angle_{s}"),
            _pin(f"ankle_{s}", tibia, foot, -0.4, f"ankle_angle_{s}"),
        ):
            m.addJoint(j)
        for b, pts in (
            (femur, [(0.05, -0.1, 0.03), (-0.04, -0.25, -0.02), (0.02, -0.35, 0.05)]),
            (tibia, [(0.04, -0.1, 0.03), (-0.03, -0.25, -0.03), (0.02, -0.35, 0.05)]),
            (foot, [(0.15, -0.03, 0.0), (-0.05, -0.02, 0.02), (0.1, -0.03, 0.05)]),
        ):
            for k, p in enumerate(pts):
                m.addMarker(osim.Marker(f"{b.getName()}_m{k}", b, osim.Vec3(*p)))
    if actuators:
        for c in IN_COLS:
            act = osim.CoordinateActuator(c)
            act.setName(f"{c}_act")
            act.setOptimalForce(200.0)
            m.addForce(act)
    m.finalizeConnections()
    return m


def write_trc(path, model, walk):
    state = model.initSystem()
    markers = model.getMarkerSet()
    names = [markers.get(i).getName() for i in range(markers.getSize())]
    coords = model.getCoordinateSet()
    rows = []
    for i in range(walk.n):
        for c, col in enumerate(IN_COLS):
            coords.get(col).setValue(state, math.radians(float(walk.q[i, c])), False)
        model.realizePosition(state)
        rows.append([v for n in names for v in markers.get(n).getLocationInGround(state).to_numpy()])
    head = [
        "PathFileType\t4\t(X/Y/Z)\twalk.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"100\t100\t{walk.n}\t{len(names)}\tm\t100\t1\t{walk.n}",
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t",
        "\t\t" + "\t".join(f"X{k + 1}\tY{k + 1}\tZ{k + 1}" for k in range(len(names))),
        "",
    ]
    body = [f"{i + 1}\t{walk.t[i]:.4f}\t" + "\t".join(f"{v:.6f}" for v in rows[i]) for i in range(walk.n)]
    path.write_text("\n".join(head + body) + "\n")
    return path


@pytest.fixture(scope="module")
def walk():
    return make_stream(3.0, 100.0, seed=3)


def _files(tmp_path, walk, actuators=False):
    model = legs_model(actuators)
    osim_path = tmp_path / "legs.osim"
    model.printToXML(str(osim_path))
    trc = write_trc(tmp_path / "walk.trc", legs_model(actuators), walk)
    ev = tmp_path / "events.json"
    ev.write_text(
        json.dumps({"foot_strike_R": walk.events["R"].tolist(), "foot_strike_L": walk.events["L"].tolist()})
    )
    return osim_path, trc, ev


def test_label_runs_opensim_ik_and_id(tmp_path, cli, walk):
    osim_path, trc, ev = _files(tmp_path, walk)
    out = tmp_path / "jm.npz"
    code, text = cli(
        [
            "label",
            "--model",
            str(osim_path),
            "--trc",
            str(trc),
            "--task",
            "jm",
            "--events",
            str(ev),
            "--work-dir",
            str(tmp_path / "osim"),
            "--subject",
            "T1",
            "--speed",
            "med",
            "--height-m",
            "1.7",
            "--body-mass",
            "40",
            "-o",
            str(out),
        ],
    )
    assert code in (0, None), text
    assert "OpenSim version 4.6" in text
    m = re.search(r"(\d+) cycles \((\d+) R, (\d+) L mirrored\), rejects none", text)
    assert m, text
    d = read_gait2hip_npz(out)
    assert d.task == "jm" and d.n == int(m.group(1)) >= 2
    # IK recovered the angles the markers were made from (to a small fraction of a degree)
    from g2h_edge.io.cycles import cut_cycles
    from g2h_edge.io.mapping import MappingConfig
    from g2h_edge.io.tables import read_mot_table
    from g2h_edge.io.trial import read_trial

    ik = tmp_path / "osim" / "walk_ik.mot"
    cut = cut_cycles(read_trial(ik, mapping=MappingConfig(events_path=str(ev))))
    for i, (side, t0, t1) in enumerate(zip(cut.side, cut.t_start, cut.t_end)):
        tt = np.linspace(t0, t1, 180)
        src = np.stack([np.interp(tt, walk.t, walk.q[:, c]) for c in range(10)], 1)
        np.testing.assert_allclose(d.X[i], mirror_sides(src) if side == "L" else src, atol=0.2)
    # Y is OpenSim's ID output for that hip, in N*m
    tab, _ = read_mot_table(tmp_path / "osim" / "walk_id.sto", require_units=False)
    for i, (side, t0, t1) in enumerate(zip(cut.side, cut.t_start, cut.t_end)):
        col = tab.data[:, tab.labels.index(f"hip_flexion_{side.lower()}_moment")]
        want = np.interp(np.linspace(t0, t1, 180), tab.data[:, 0], col)
        np.testing.assert_allclose(d.Y[i, :, 0], want, rtol=1e-4, atol=1e-3)
    assert 5.0 < np.abs(d.Y[:, :, 0]).max() < 500.0


def test_label_runs_static_optimisation(tmp_path, cli, walk):
    """SO runs (coordinate actuators, no muscles): its force file then lacks the Rajagopal
    muscles, which label reports by name."""
    osim_path, trc, ev = _files(tmp_path, walk, actuators=True)
    code, text = cli(
        [
            "label",
            "--model",
            str(osim_path),
            "--trc",
            str(trc),
            "--task",
            "mf",
            "--events",
            str(ev),
            "--work-dir",
            str(tmp_path / "osim"),
            "--subject",
            "T1",
            "--speed",
            "med",
            "--height-m",
            "1.7",
            "--body-mass",
            "40",
            "-o",
            str(tmp_path / "mf.npz"),
        ],
    )
    assert code == 2 and "missing column(s) ['addbrev_r']" in text, text
    so = tmp_path / "osim" / "walk_StaticOptimization_force.sto"
    assert so.is_file() and "hip_flexion_r_act" in so.read_text()
