"""Trial readers: CSV and OpenSim .mot/.sto, events JSON, bad-input tables, real trials."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from g2h_edge.errors import ConventionError, DataError, MissingExtraError
from g2h_edge.io.synth import make_stream
from g2h_edge.io.trial import events_path_for, read_trial, write_events_json, write_trial_csv
from g2h_edge.schema import IN_COLS


@pytest.fixture(scope="module")
def stream():
    return make_stream(3.0, 100.0, seed=4)


def _csv_text(stream, names=None, time_name="time", scale=1.0, n=None) -> list[str]:
    names = names or list(IN_COLS)
    n = n or stream.n
    lines = [",".join([time_name] + names)]
    for i in range(n):
        lines.append(",".join([f"{stream.t[i]:.4f}"] + [f"{v * scale:.5f}" for v in stream.q[i]]))
    return lines


def _mot_text(stream, in_degrees=True, names=None, n_rows=None) -> list[str]:
    names = names or list(IN_COLS)
    scale = 1.0 if in_degrees else math.pi / 180
    head = [
        "Coordinates",
        "version=1",
        f"nRows={stream.n if n_rows is None else n_rows}",
        f"nColumns={len(names) + 1}",
        f"inDegrees={'yes' if in_degrees else 'no'}",
        "",
        "endheader",
        "\t".join(["time"] + names),
    ]
    rows = [
        "\t".join([f"{stream.t[i]:.4f}"] + [f"{v * scale:.7f}" for v in stream.q[i]]) for i in range(stream.n)
    ]
    return head + rows


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_round_trip_with_events(tmp_path, stream):
    p = tmp_path / "walk_angles.csv"
    write_trial_csv(p, stream)
    write_events_json(events_path_for(p), stream)
    assert events_path_for(p).name == "walk_events.json"
    tr = read_trial(p)
    np.testing.assert_allclose(tr.q, stream.q, atol=1e-5)
    np.testing.assert_allclose(tr.t, stream.t, atol=1e-6)
    assert tr.rate_hz == pytest.approx(100.0)
    np.testing.assert_allclose(tr.events["R"], stream.events["R"])
    np.testing.assert_allclose(tr.events["L"], stream.events["L"])
    assert tr.body_mass_kg == pytest.approx(stream.body_mass_kg)


def test_csv_columns_mapped_by_name(tmp_path, stream):
    perm = list(reversed(IN_COLS))
    lines = [",".join(["time_s", "extra"] + [c + "_deg" for c in perm])]
    for i in range(stream.n):
        vals = [stream.q[i, IN_COLS.index(c)] for c in perm]
        lines.append(",".join([f"{stream.t[i]:.4f}", "9"] + [f"{v:.5f}" for v in vals]))
    tr = read_trial(_write(tmp_path / "perm.csv", lines))
    np.testing.assert_allclose(tr.q, stream.q, atol=1e-4)
    assert tr.events == {} and tr.body_mass_kg is None


def test_csv_rad_suffix_converted(tmp_path, stream):
    names = [c + "_rad" for c in IN_COLS]
    tr = read_trial(_write(tmp_path / "r.csv", _csv_text(stream, names, scale=math.pi / 180)))
    np.testing.assert_allclose(tr.q, stream.q, atol=1e-3)


def _bad_csv_cases():
    def drop_col(lines):
        return [",".join(ln.split(",")[:8] + ln.split(",")[9:]) for ln in lines]

    def ragged(lines):
        lines[4] = lines[4] + ",1.0"
        return lines

    def word(lines):
        cells = lines[6].split(",")
        cells[3] = "abc"
        lines[6] = ",".join(cells)
        return lines

    def nan_time(lines):  # NaN angles are dropouts (tests/io/test_mapping.py); NaN time is not
        cells = lines[10].split(",")
        cells[0] = "nan"
        lines[10] = ",".join(cells)
        return lines

    def back_in_time(lines):
        lines[20], lines[21] = lines[21], lines[20]
        return lines

    def no_time(lines):
        lines[0] = lines[0].replace("time", "stamp", 1)
        return lines

    def short_header(lines):
        lines[0] = ",".join(lines[0].split(",")[:-1])
        return lines

    def one_row(lines):
        return lines[:2]

    return [
        ("missing column", drop_col, DataError, r"missing required column\(s\) \['ankle_angle_r'\]"),
        ("ragged row", ragged, DataError, r"line 5 has 12 columns, expected 11"),
        ("not a number", word, DataError, r"line 7, column 4: 'abc' is not a number"),
        ("nan time", nan_time, DataError, r"non-finite value at line 11, column 'time'"),
        ("non-monotonic time", back_in_time, DataError, r"not strictly increasing at line 22"),
        ("no time column", no_time, DataError, r"no time column"),
        ("header/rows mismatch", short_header, DataError, r"header names 10 columns but rows have 11"),
        ("one row", one_row, DataError, r"at least 2 rows"),
    ]


@pytest.mark.parametrize("name,mutate,exc,match", _bad_csv_cases(), ids=[c[0] for c in _bad_csv_cases()])
def test_bad_csv(tmp_path, stream, name, mutate, exc, match):
    lines = mutate(_csv_text(stream))
    with pytest.raises(exc, match=match):
        read_trial(_write(tmp_path / "bad.csv", lines))


def test_mot_degrees_and_radians(tmp_path, stream):
    deg = read_trial(_write(tmp_path / "d.mot", _mot_text(stream, True)))
    rad = read_trial(_write(tmp_path / "r.sto", _mot_text(stream, False)))
    np.testing.assert_allclose(deg.q, stream.q, atol=1e-5)
    np.testing.assert_allclose(rad.q, stream.q, atol=1e-4)


def test_mot_opensim4_paths_and_extra_columns(tmp_path, stream):
    names = [f"/jointset/j/{c}/value" for c in IN_COLS]
    lines = _mot_text(stream, True, names + ["pelvis_tx"])
    lines = lines[:8] + [ln + "\t0.5" for ln in lines[8:]]
    lines[3] = f"nColumns={len(names) + 2}"
    tr = read_trial(_write(tmp_path / "p.sto", lines))
    np.testing.assert_allclose(tr.q, stream.q, atol=1e-5)


def _bad_mot_cases():
    def no_end(lines):
        return [ln for ln in lines if ln != "endheader"]

    def no_unit(lines):
        return [ln for ln in lines if not ln.startswith("inDegrees")]

    def truncated(lines):
        return lines[:-5]

    def missing_col(lines):
        return [ln.replace("ankle_angle_l", "ankle_angle_x") for ln in lines]

    return [
        ("no endheader", no_end, DataError, r"no 'endheader' line"),
        ("no inDegrees", no_unit, DataError, r"inDegrees=yes or inDegrees=no"),
        ("truncated", truncated, DataError, r"nRows=300 but the file has 295 rows"),
        ("missing column", missing_col, DataError, r"missing required column\(s\) \['ankle_angle_l'\]"),
        ("radians declared degrees", None, ConventionError, r"look like radians"),
    ]


@pytest.mark.parametrize("name,mutate,exc,match", _bad_mot_cases(), ids=[c[0] for c in _bad_mot_cases()])
def test_bad_mot(tmp_path, stream, name, mutate, exc, match):
    if mutate is None:  # radian values under an inDegrees=yes header
        lines = _mot_text(stream, False)
        lines = [ln.replace("inDegrees=no", "inDegrees=yes") for ln in lines]
    else:
        lines = mutate(_mot_text(stream, True))
    with pytest.raises(exc, match=match) as info:
        read_trial(_write(tmp_path / "bad.mot", lines))
    if exc is ConventionError:
        assert info.value.reason == "radians_as_degrees"


@pytest.mark.parametrize(
    "doc,match",
    [
        ({"foot_strike_R": [1.0, 0.5]}, "strictly increasing"),
        ({"foot_strike_L": ["a"]}, "list of times"),
        ({"body_mass_kg": 700}, "plausible mass"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_events(tmp_path, stream, doc, match):
    p = tmp_path / "w_angles.csv"
    write_trial_csv(p, stream)
    (tmp_path / "w_events.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match):
        read_trial(p)


def test_unknown_format_and_c3d(tmp_path):
    with pytest.raises(DataError, match="unknown trial format"):
        read_trial(tmp_path / "x.txt")
    (tmp_path / "x.c3d").write_bytes(b"\x00" * 512)
    with pytest.raises((MissingExtraError, DataError), match=r"g2h-edge\[c3d\]|not a readable c3d"):
        read_trial(tmp_path / "x.c3d")


def test_real_trials_read_with_events(data_dir):
    files = sorted((data_dir / "schreiber2019").glob("*_angles.csv"))
    assert len(files) == 12
    for f in files:
        tr = read_trial(f)
        assert tr.rate_hz == pytest.approx(100.0)
        assert len(tr.events["R"]) >= 2 and len(tr.events["L"]) >= 2
        assert 40 < tr.body_mass_kg < 120
        assert tr.q.shape == (tr.n, 10) and np.isfinite(tr.q).all()


def test_real_gait2354_refused_then_converted(data_dir):
    f = data_dir / "opensim_gait2354" / "subject01_walk1_angles.csv"
    with pytest.raises(ConventionError, match="--convert-gait2354") as info:
        read_trial(f)
    assert info.value.reason == "knee_sign_gait2354"
    tr = read_trial(f, convert_gait2354=True)
    knees = tr.q[:, [IN_COLS.index("knee_angle_r"), IN_COLS.index("knee_angle_l")]]
    assert knees.max() > 60 and knees.min() > -5
    assert tr.rate_hz == pytest.approx(1 / 0.017, rel=0.05) and tr.body_mass_kg == 72.6


def test_csv_with_byte_order_mark_and_comments(tmp_path, stream):
    lines = ["# exported by a spreadsheet"] + _csv_text(stream)
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    np.testing.assert_allclose(read_trial(p).q, stream.q, atol=1e-4)
