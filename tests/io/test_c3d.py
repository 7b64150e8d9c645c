"""c3d: angle points + EVENT group written with ezc3d as Vicon and Qualisys/Visual3D export
them, read back through read_trial, predict (CLI) and replay into a real server."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from g2h_edge.errors import DataError, MissingExtraError
from g2h_edge.io.c3d import ic_side_of_event, read_c3d_events
from g2h_edge.io.cycles import cut_cycles
from g2h_edge.io.mapping import PIG_TO_RAJAGOPAL, MappingConfig
from g2h_edge.io.synth import make_stream
from g2h_edge.io.trial import read_trial
from g2h_edge.schema import IN_COLS

ezc3d = pytest.importorskip("ezc3d", reason="ezc3d (c3d extra) not installed")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "data_formats.md"


@pytest.fixture(scope="module")
def walk():
    return make_stream(5.0, 100.0, seed=11, body_mass_kg=64.0)


def _pig_points(walk, subject="Sub01:"):
    """{label: (3, n)} Plug-in Gait angle points from the walk (Y/Z unused ones are 0)."""
    pts: dict[str, np.ndarray] = {}
    for c, (lab, sign, off) in PIG_TO_RAJAGOPAL.items():
        name, ax = lab.rsplit("_", 1)
        arr = pts.setdefault(subject + name, np.zeros((3, walk.n)))
        arr["XYZ".index(ax)] = (walk.q[:, IN_COLS.index(c)] - off) / sign
    return pts


def _write_c3d(
    path, walk, points, events, *, units="deg", first_frame=0, invalid=(), mass=None, markers=True
):
    c = ezc3d.c3d()
    labels = list(points)
    data = np.stack([points[k] for k in labels], axis=1)  # (3, P, n)
    if markers:  # a marker that is not an angle
        labels.append("LASI")
        data = np.concatenate([data, np.full((3, 1, walk.n), 100.0)], axis=1)
    pts = np.concatenate([data, np.ones((1,) + data.shape[1:])], axis=0)
    for p, f in invalid:
        pts[:3, p, f] = np.nan
    c["parameters"]["POINT"]["RATE"]["value"] = np.array([walk.rate_hz])
    c["parameters"]["POINT"]["LABELS"]["value"] = tuple(labels)
    c["data"]["points"] = pts
    c.add_parameter("POINT", "ANGLES", list(points))
    c.add_parameter("POINT", "ANGLE_UNITS", units)
    if first_frame:
        c["header"]["points"]["first_frame"] = first_frame
    if events:
        labs, ctxs, secs = zip(*events)
        c.add_parameter("EVENT", "USED", len(labs))
        c.add_parameter("EVENT", "LABELS", list(labs))
        c.add_parameter("EVENT", "CONTEXTS", list(ctxs))
        mins = np.floor(np.asarray(secs) / 60.0)
        c.add_parameter("EVENT", "TIMES", np.array([mins, np.asarray(secs) - mins * 60.0]))
    if mass is not None:
        c.add_parameter("PROCESSING", "Bodymass", mass)
    c.write(str(path))
    return path


def _vicon_events(walk):
    ev = [
        ("Foot Strike", ctx, float(t)) for s, ctx in (("R", "Right"), ("L", "Left")) for t in walk.events[s]
    ]
    ev += [("Foot Off", "Right", float(t) + 0.6) for t in walk.events["R"][:-1]]
    return ev + [("General", "General", 1.0)]


def test_vicon_pig_c3d_read_back(tmp_path, walk):
    p = _write_c3d(
        tmp_path / "vicon.c3d",
        walk,
        _pig_points(walk),
        _vicon_events(walk),
        mass=64.0,
        invalid=[(3, 120), (3, 121)],
    )
    tr = read_trial(p)
    assert tr.mapping.startswith("preset pig") and tr.rate_hz == pytest.approx(100.0)
    np.testing.assert_allclose(tr.t, walk.t, atol=1e-9)
    ok = np.isfinite(tr.q).all(axis=1)
    assert tr.dropout_frames == 2 and not ok[120:122].any()
    np.testing.assert_allclose(tr.q[ok], walk.q[ok], atol=1e-4)
    for s in "RL":
        np.testing.assert_allclose(tr.events[s], walk.events[s], atol=1e-6)
    assert tr.body_mass_kg == pytest.approx(64.0)
    cut = cut_cycles(tr)
    assert cut.n == len(walk.events["R"]) - 1 + len(walk.events["L"]) - 1 and not cut.rejects


def test_qualisys_style_c3d_one_word_events_radians_and_map(tmp_path, walk):
    names = [f"Q_{c}" for c in IN_COLS]
    pts = {
        n: np.stack([np.radians(walk.q[:, i]), np.zeros(walk.n), np.zeros(walk.n)])
        for i, n in enumerate(names)
    }
    events = [(f"{s}HS", "", float(t)) for s in "RL" for t in walk.events[s]]
    events += [(f"{s}TO", "", float(t) + 0.6) for s in "RL" for t in walk.events[s][:-1]]
    p = _write_c3d(tmp_path / "qtm.c3d", walk, pts, events, units="rad", first_frame=50, markers=False)
    with pytest.raises(DataError, match=r"missing required column\(s\)"):
        read_trial(p)
    mp = {c: f"{n}_X" for c, n in zip(IN_COLS, names)}
    tr = read_trial(p, mapping=MappingConfig(mapping=mp))
    np.testing.assert_allclose(tr.q, walk.q, atol=1e-3)
    np.testing.assert_allclose(tr.t, walk.t + 0.5, atol=1e-9)  # first frame 50 at 100 Hz
    np.testing.assert_allclose(tr.events["R"], walk.events["R"], atol=1e-6)
    assert tr.body_mass_kg is None


def test_mot_angles_with_c3d_events(tmp_path, walk):
    mot = tmp_path / "ik.mot"
    head = [
        "Coordinates",
        "version=1",
        f"nRows={walk.n}",
        "nColumns=11",
        "inDegrees=yes",
        "endheader",
        "\t".join(("time",) + IN_COLS),
    ]
    mot.write_text(
        "\n".join(
            head + ["\t".join([f"{walk.t[i]:.4f}"] + [f"{v:.6f}" for v in walk.q[i]]) for i in range(walk.n)]
        )
        + "\n"
    )
    c3d = _write_c3d(tmp_path / "events.c3d", walk, _pig_points(walk), _vicon_events(walk), mass=64.0)
    tr = read_trial(mot, mapping=MappingConfig(events_path=str(c3d)))
    np.testing.assert_allclose(tr.events["L"], walk.events["L"], atol=1e-6)
    assert tr.body_mass_kg == 64.0 and tr.mapping == "schema names"


@pytest.mark.parametrize(
    "label,context,want",
    [
        ("Foot Strike", "Right", "R"),
        ("Foot Strike", "Left", "L"),
        ("Foot Off", "Right", None),
        ("RHS", "", "R"),
        ("LHS", "General", "L"),
        ("RTO", "", None),
        ("Right Foot Strike", "", "R"),
        ("Left_Foot_Strike", "", "L"),
        ("Heel Strike", "Left", "L"),
        ("Event", "Right", None),
        ("Foot Strike", "General", None),
    ],
)
def test_event_labels(label, context, want):
    assert ic_side_of_event(label, context) == want


def test_bad_c3d_inputs(tmp_path, walk, monkeypatch):
    p = _write_c3d(tmp_path / "nosides.c3d", walk, _pig_points(walk), [("Foot Strike", "General", 1.0)])
    with pytest.raises(DataError, match="name no side"):
        read_c3d_events(p)
    (tmp_path / "junk.c3d").write_bytes(b"\x01" * 600)
    with pytest.raises(DataError, match="not a readable c3d"):
        read_trial(tmp_path / "junk.c3d")
    monkeypatch.setitem(sys.modules, "ezc3d", None)  # as if the extra were missing
    with pytest.raises(MissingExtraError, match=r"pip install 'g2h-edge\[c3d\]'"):
        read_trial(p)


def test_pig_table_matches_the_docs():
    """docs/data_formats.md's PiG -> Rajagopal table is the code's table."""
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| ([+-]1) \| ([-\d.]+) \|", DOCS.read_text(), flags=re.M)
    assert {r[0]: (r[1], float(r[2]), float(r[3])) for r in rows} == PIG_TO_RAJAGOPAL


def test_c3d_through_predict_and_replay(tmp_path, cli, walk, random_bundle):
    import torch

    from g2h_edge.engines import load_engine
    from g2h_edge.models import load_bundle
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector

    p = _write_c3d(tmp_path / "trial.c3d", walk, _pig_points(walk), _vicon_events(walk), mass=64.0)
    model = random_bundle("lstm", "jm", seed=0, name="c3d-lstm-jm")
    out = tmp_path / "pred.npz"
    code, text = cli(
        ["predict", "--model", str(model), "--input", str(p), "-o", str(out), "--allow-synthetic"]
    )
    assert code in (0, None), text
    cut = cut_cycles(read_trial(p))
    with torch.no_grad():
        ref = load_bundle(model).module()(torch.from_numpy(cut.X)).numpy()
    with np.load(out) as z:
        np.testing.assert_allclose(z["y"], ref, rtol=1e-4, atol=1e-5)
        assert list(z["side"]) == list(cut.side)
    eng = load_engine(model, threads=1)
    cfg = ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
    )
    with LocalServer(cfg, engines=[eng]) as srv, OutputCollector(srv.endpoints["publish"]) as col:
        assert col.wait_ready(30)
        code, text = cli(
            [
                "replay",
                str(p),
                "--connect",
                srv.endpoints["listen"],
                "--results",
                srv.endpoints["publish"],
                "--max-rate",
                "--with-events",
                "--stream",
                "c3d",
                "--wait",
                "20",
            ],
        )
        assert code in (0, None), text
        assert col.wait_ended("c3d", 60)
    eng.close()
    cycles = col.of_type("cycle", "c3d")
    assert sorted((c["side"], round(c["t_start"], 4)) for c in cycles) == sorted(
        (s, round(t, 4)) for s, t in zip(cut.side, cut.t_start)
    )
    by = {(c["side"], round(c["t_start"], 4)): np.asarray(c["y"]) for c in cycles}
    for i, (s, t0) in enumerate(zip(cut.side, cut.t_start)):
        np.testing.assert_allclose(by[(s, round(t0, 4))], ref[i], rtol=1e-3, atol=1e-4)
