"""The mapping layer: channel resolution, options, dropouts, Nexus/Visual3D tables, and the
same files through predict (CLI) and replay into a real server over loopback."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.cycles import cut_cycles
from g2h_edge.io.mapping import PIG_TO_RAJAGOPAL, MappingConfig, fill_gaps, parse_map_items, resolve_channels
from g2h_edge.io.synth import make_stream
from g2h_edge.io.trial import read_trial
from g2h_edge.schema import IN_COLS

PIG = [PIG_TO_RAJAGOPAL[c][0] for c in IN_COLS]


@pytest.fixture(scope="module")
def walk():
    return make_stream(6.0, 100.0, seed=7, body_mass_kg=70.0)


# ----------------------------------------------------------------------------- resolution
_KNEE = ["K"] + list(IN_COLS[:6]) + ["knee_r_deg"] + list(IN_COLS[7:])


@pytest.mark.parametrize(
    "labels,cfg,index,sign",
    [
        (list(IN_COLS), MappingConfig(), list(range(10)), [1] * 10),
        (list(reversed(IN_COLS)) + ["pelvis_tx"], MappingConfig(), list(range(9, -1, -1)), [1] * 10),
        ([f"Sub01:{p}" for p in PIG], MappingConfig(), list(range(10)), [1] * 10),
        (
            ["x"] + [p.replace("_", ".") for p in PIG],
            MappingConfig(preset="pig"),
            list(range(1, 11)),
            [1] * 10,
        ),
        (
            _KNEE,
            MappingConfig(mapping={"knee_angle_r": "-K"}),
            [1, 2, 3, 4, 5, 6, 0, 8, 9, 10],
            [1] * 6 + [-1] + [1] * 3,
        ),
    ],
)
def test_resolve_channels(labels, cfg, index, sign):
    plan = resolve_channels(labels, cfg)
    assert list(plan.index) == index
    assert plan.sign.tolist() == sign


@pytest.mark.parametrize(
    "labels,cfg,match",
    [
        (list(IN_COLS[:9]), MappingConfig(), r"missing required column\(s\) \['ankle_angle_l'\]"),
        (
            list(IN_COLS) + ["A:ankle_angle_l", "B:ankle_angle_l"],
            MappingConfig(mapping={"ankle_angle_l": "ankle_angle_l_x"}),
            r"ankle_angle_l_x",
        ),
        ([f"A:{p}" for p in PIG] + [f"B:{p}" for p in PIG], MappingConfig(preset="pig"), "matches 2 columns"),
        ([""] * 10, MappingConfig(), "no channel labels"),
    ],
)
def test_resolve_channels_errors(labels, cfg, match):
    with pytest.raises(ConfigError, match=match):
        resolve_channels(labels, cfg)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mapping": {"hip": "x"}}, r"mapping names \['hip'\] are not input channels"),
        ({"preset": "cgm9"}, "unknown preset 'cgm9'"),
        ({"units": "grad"}, "'deg' or 'rad'"),
        ({"rate_hz": 0.5}, r"rate_hz 0.5 must be"),
        ({"time_column": "t", "frame_column": "f"}, "not both"),
        ({"max_gap_s": -1}, "max_gap_s -1 must be within"),
        ({"offsets_deg": {"knee_angle_r": float("nan")}}, "finite number of degrees"),
    ],
)
def test_mapping_config_refuses(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MappingConfig(**kwargs)


def test_parse_map_items():
    assert parse_map_items(["a=b,c=-d", "e = f"]) == {"a": "b", "c": "-d", "e": "f"}
    with pytest.raises(ConfigError, match="is not NAME=LABEL"):
        parse_map_items(["hip_flexion_r"])


# ----------------------------------------------------------------------------- dropouts
def test_fill_gaps_linear_within_limit_only():
    t = np.arange(20) / 100.0
    q = np.tile(np.arange(20, dtype=np.float64)[:, None], (1, 3))
    q[3:7] = np.nan  # 4 frames: neighbours 0.05 s apart -> filled
    q[10:18, 1] = np.nan  # 8 frames: 0.09 s apart -> left when max 0.06
    q[0] = np.nan  # at the start: never filled
    out, rep = fill_gaps(t, q, 0.06)
    np.testing.assert_allclose(out[3:7, 0], [3, 4, 5, 6])
    assert rep.filled_frames == 4 and rep.dropout_frames == 9
    assert rep.unfilled == ((None, 0.01), (0.09, 0.18))
    out, rep = fill_gaps(t, q, 0.2)
    np.testing.assert_allclose(out[10:18, 1], np.arange(10, 18))
    assert rep.filled_frames == 12 and rep.dropout_frames == 1


def _csv_with_dropout(path, walk, rows, empty=True):
    lines = ["time," + ",".join(IN_COLS)]
    for i in range(walk.n):
        vals = ["" if (i in rows and empty) else "NaN" if i in rows else f"{v:.5f}" for v in walk.q[i]]
        lines.append(f"{walk.t[i]:.4f}," + ",".join(vals))
    path.write_text("\n".join(lines) + "\n")
    (path.parent / f"{path.stem}_events.json").write_text(
        json.dumps(
            {
                "foot_strike_R": walk.events["R"].tolist(),
                "foot_strike_L": walk.events["L"].tolist(),
                "body_mass_kg": 70.0,
            }
        )
    )
    return path


def test_csv_dropout_rows_counted_or_filled(tmp_path, walk):
    rows = set(range(150, 154))  # 4 rows of marker dropout
    p = _csv_with_dropout(tmp_path / "drop.csv", walk, rows)
    tr = read_trial(p)
    assert tr.dropout_frames == 4 and np.isnan(tr.q[150:154]).all()
    assert np.isfinite(np.delete(tr.q, list(rows), axis=0)).all()
    filled = read_trial(p, mapping=MappingConfig(max_gap_s=0.1))
    assert filled.dropout_frames == 0 and filled.filled_frames == 4
    w = ((walk.t[150:154] - walk.t[149]) / (walk.t[154] - walk.t[149]))[:, None]
    np.testing.assert_allclose(
        filled.q[150:154], walk.q[149] * (1 - w) + walk.q[154] * w, atol=1e-3
    )  # linear between the neighbours
    # offline cycles: the 50 ms hole is bridged like the server does, both ways
    a, b = cut_cycles(tr), cut_cycles(filled)
    assert a.n == b.n > 0 and not a.rejects
    np.testing.assert_allclose(a.X, b.X, atol=1e-4)


def test_long_dropout_rejects_the_cycle_unless_filled(tmp_path, walk):
    rows = set(range(200, 230))  # 0.3 s
    p = _csv_with_dropout(tmp_path / "long.csv", walk, rows, empty=False)
    cut = cut_cycles(read_trial(p))
    assert cut.reject_counts().get("gap", 0) >= 1
    ok = cut_cycles(read_trial(p, mapping=MappingConfig(max_gap_s=0.5)))
    assert ok.reject_counts().get("gap", 0) == 0 and ok.n > cut.n


# ----------------------------------------------------------------------------- multi-row
def _nexus_lines(walk, rows=(), subject="Pat01"):
    pig = {}
    for c, (lab, _, _) in PIG_TO_RAJAGOPAL.items():
        name, ax = lab.rsplit("_", 1)
        pig.setdefault(name, {})[ax] = walk.q[:, IN_COLS.index(c)]
    names = sorted(pig)
    head = [
        "Model Outputs",
        "100",
        ",," + ",".join(f"{subject}:{n},," for n in names),
        "Frame,Sub Frame," + ",".join("X,Y,Z" for _ in names),
        ",," + ",".join("deg,deg,deg" for _ in names),
    ]
    body = []
    for i in range(walk.n):
        cells = [str(i + 1), "0"]
        for n in names:
            for ax in "XYZ":
                v = pig[n].get(ax)
                cells.append("" if i in rows else f"{v[i]:.5f}" if v is not None else "1.0")
        body.append(",".join(cells))
    return head + body


def test_nexus_model_outputs_csv(tmp_path, walk):
    lines = ["Joints", "100", ",,Pat01:Hip", "Frame,Sub Frame,RX", ",,deg", "1,0,3", ""]
    lines += _nexus_lines(walk, rows=set(range(40, 44))) + ["", "Trajectories", "100"]
    p = tmp_path / "nexus.csv"
    p.write_text("\n".join(lines) + "\n")
    tr = read_trial(p)
    assert tr.mapping.startswith("preset pig") and tr.rate_hz == pytest.approx(100.0)
    np.testing.assert_allclose(tr.t, np.arange(walk.n) / 100.0)
    ok = np.isfinite(tr.q).all(axis=1)
    np.testing.assert_allclose(tr.q[ok], walk.q[ok], atol=1e-4)
    assert tr.dropout_frames == 4


def test_visual3d_export_needs_a_rate(tmp_path, walk):
    names = [f"V_{c.upper()}" for c in IN_COLS]
    lines = [
        "\t" + "\t".join(["walk.c3d"] * 10),
        "\t" + "\t".join(names),
        "\t" + "\t".join(["LINK_MODEL_BASED"] * 10),
        "\t" + "\t".join(["ORIGINAL"] * 10),
        "ITEM\t" + "\t".join(["X"] * 10),
    ]
    lines += [f"{i + 1}\t" + "\t".join(f"{v:.5f}" for v in walk.q[i]) for i in range(walk.n)]
    p = tmp_path / "v3d.txt.csv"
    p.write_text("\n".join(lines) + "\n")
    mp = {c: f"{n}_X" for c, n in zip(IN_COLS, names)}
    with pytest.raises(DataError, match="rate is unknown: pass --rate-hz"):
        read_trial(p, mapping=MappingConfig(mapping=mp))
    tr = read_trial(p, mapping=MappingConfig(mapping=mp, rate_hz=100.0))
    np.testing.assert_allclose(tr.q, walk.q, atol=1e-4)
    np.testing.assert_allclose(tr.t, np.arange(walk.n) / 100.0)


# ----------------------------------------------------------------------------- through CLIs


def test_predict_nexus_csv_with_events(tmp_path, cli, walk, random_bundle):
    p = tmp_path / "nexus.csv"
    p.write_text("\n".join(_nexus_lines(walk)) + "\n")
    ev = tmp_path / "ev.json"
    ev.write_text(
        json.dumps(
            {
                "foot_strike_R": (walk.events["R"]).tolist(),
                "foot_strike_L": (walk.events["L"]).tolist(),
                "body_mass_kg": 70.0,
            }
        )
    )
    model = random_bundle("lstm", "jm", seed=0, name="map-lstm-jm")
    out = tmp_path / "pred.npz"
    code, text = cli(
        [
            "predict",
            "--model",
            str(model),
            "--input",
            str(p),
            "-o",
            str(out),
            "--allow-synthetic",
            "--events",
            str(ev),
            "--raw-unit",
        ],
    )
    assert code in (0, None), text
    m = re.search(r"(\d+) frames \((\d+) dropout.*?(\d+) cycles \((\d+) R, (\d+) L\)", text)
    assert m and int(m.group(1)) == walk.n and int(m.group(3)) == int(m.group(4)) + int(m.group(5))
    with np.load(out) as z:
        assert z["y"].shape == (int(m.group(3)), 180, 3) and set(z["side"]) == {"R", "L"}
        np.testing.assert_allclose(z["y_raw"], z["y"] * 70.0, rtol=1e-5)
    code, text = cli(
        [
            "predict",
            "--model",
            str(model),
            "--input",
            str(p),
            "-o",
            str(out),
            "--allow-synthetic",
            "--map",
            "hip=RHip",
        ],
    )
    assert code == 2 and "not input channels" in text


def test_replay_cli_with_map_into_a_real_server(tmp_path, cli, walk, random_bundle):
    from g2h_edge.engines import load_engine
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector

    names = [f"ch{i}" for i in range(10)]
    lines = ["t_ms," + ",".join(names)]
    rows = set(range(300, 304))
    for i in range(walk.n):
        vals = ["" if i in rows else f"{v:.5f}" for v in walk.q[i]]
        vals[6] = vals[6] and f"{-walk.q[i, 6]:.5f}"  # knee stored extension-positive
        lines.append(f"{walk.t[i] * 1000:.1f}," + ",".join(vals))
    p = tmp_path / "lab.csv"
    p.write_text("\n".join(lines) + "\n")
    (tmp_path / "lab_events.json").write_text(
        json.dumps({"foot_strike_R": walk.events["R"].tolist(), "foot_strike_L": walk.events["L"].tolist()})
    )
    maps = ",".join(f"{c}={'-' if c == 'knee_angle_r' else ''}{n}" for c, n in zip(IN_COLS, names))
    eng = load_engine(random_bundle("lstm", "jm", seed=0, name="map-lstm-jm"), threads=1)
    cfg = ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
    )
    # a millisecond clock is not a time column in s: map it as frames at 100 Hz instead
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
                "lab",
                "--map",
                maps,
                "--rate-hz",
                "100",
                "--wait",
                "20",
            ],
        )
        assert code in (0, None), text
        assert col.wait_ended("lab", 60)
    eng.close()
    assert "4 frames with non-finite angles left out" in text
    cycles = col.of_type("cycle", "lab")
    n_r = sum(1 for a, b in zip(walk.events["R"][:-1], walk.events["R"][1:]))
    assert sum(c["side"] == "R" for c in cycles) == n_r
    assert max(c["quality"].get("gap_filled_frames", 0) for c in cycles) >= 4
    assert not [r for r in col.of_type("reject", "lab") if r.get("reason") != "gap"]
