"""Gait2Hip NPZ reader/writer: round trips, foreign string encodings, bad-input table."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from g2h_edge.errors import ConventionError, DataError
from g2h_edge.io.npz import read_gait2hip_npz, write_gait2hip_npz
from g2h_edge.io.synth import make_cohort
from g2h_edge.schema import IN_COLS, JM_COLS, MF_COLS


@pytest.fixture(scope="module")
def cohort():
    return make_cohort("mf", 2, seed=7, trials_per_condition=1)


def _arrays(d) -> dict:
    return {
        "X": d.X.copy(),
        "Y": d.Y.copy(),
        "subject_id": d.subject_id.copy(),
        "height_m": d.height_m.copy(),
        "weight_kg": d.weight_kg.copy(),
        "speed_label": d.speed_label.copy(),
        "in_cols": np.array(IN_COLS),
        "out_cols": np.array(d.out_cols),
    }


def _save(path, arrays):
    np.savez(path, **arrays)  # object arrays are pickled by numpy (allow_pickle)
    return path


def test_round_trip(tmp_path, cohort):
    p = tmp_path / "c.npz"
    write_gait2hip_npz(p, cohort)
    back = read_gait2hip_npz(p)
    np.testing.assert_array_equal(back.X, cohort.X)
    np.testing.assert_array_equal(back.Y, cohort.Y)
    assert back.subject_id.tolist() == cohort.subject_id.tolist()
    assert back.speed_label.tolist() == cohort.speed_label.tolist()
    assert back.task == "mf" and back.out_cols == MF_COLS and back.synthetic is True
    with zipfile.ZipFile(p) as zf, np.load(p, allow_pickle=False) as z:  # written without pickle
        assert all(z[k.removesuffix(".npy")].dtype != object for k in zf.namelist())


@pytest.mark.parametrize(
    "encode",
    [
        lambda a: np.array(a, dtype=object),  # python str objects
        lambda a: np.array([s.encode() for s in a], dtype=object),  # bytes objects
        lambda a: np.char.encode(np.array(a), "utf-8"),  # fixed bytes 'S'
    ],
    ids=["object-str", "object-bytes", "bytes"],
)
def test_foreign_string_encodings_are_decoded(tmp_path, cohort, encode):
    arrays = _arrays(cohort)
    for key in ("subject_id", "speed_label", "in_cols", "out_cols"):
        arrays[key] = encode(arrays[key].tolist())
    d = read_gait2hip_npz(_save(tmp_path / "f.npz", arrays))
    assert d.in_cols == IN_COLS and d.out_cols == MF_COLS
    assert d.subject_id.tolist() == cohort.subject_id.tolist()
    assert d.synthetic is False  # no flag in a foreign file


def test_inputs_only_file(tmp_path, cohort):
    arrays = {"X": cohort.X.astype(np.float64), "in_cols": np.array(IN_COLS)}
    p = _save(tmp_path / "x.npz", arrays)
    with pytest.raises(DataError, match=r"missing key\(s\) \['subject_id'"):
        read_gait2hip_npz(p)
    d = read_gait2hip_npz(p, require_meta=False)
    assert d.Y is None and d.weight_kg is None and d.X.dtype == np.float32


def _mutations():
    def swap(a, i, j):
        a = a.copy()
        a[[i, j]] = a[[j, i]]
        return a

    def nan_at(a):
        a = a.copy()
        a[0, 3, 2] = np.nan
        return a

    def inf_at(a):
        a = a.copy()
        a[1, 5, 0] = np.inf
        return a

    def knee_flip(a):
        a = a.copy()
        a[..., [6, 8]] *= -1
        return a

    return [
        ("missing X", lambda a: a.pop("X"), DataError, r"missing key\(s\) \['X'\]"),
        ("missing weight", lambda a: a.pop("weight_kg"), DataError, r"missing key.*weight_kg"),
        ("Y without out_cols", lambda a: a.pop("out_cols"), DataError, "must come together"),
        ("X 179 frames", lambda a: a.update(X=a["X"][:, :179]), DataError, r"X must have shape"),
        ("X 9 channels", lambda a: a.update(X=a["X"][..., :9]), DataError, r"X must have shape"),
        ("Y wrong K", lambda a: a.update(Y=a["Y"][..., :13]), DataError, r"Y must have shape"),
        (
            "in_cols order",
            lambda a: a.update(in_cols=swap(a["in_cols"], 0, 3)),
            DataError,
            r"in_cols are in the wrong order: position 0 is 'hip_flexion_l'",
        ),
        (
            "out_cols order",
            lambda a: a.update(out_cols=swap(a["out_cols"], 4, 5)),
            DataError,
            r"out_cols are in the wrong order: position 4",
        ),
        (
            "in_cols renamed",
            lambda a: a.update(in_cols=np.array([c.upper() for c in IN_COLS])),
            DataError,
            r"missing \['hip_flexion_r'",
        ),
        (
            "out_cols unknown",
            lambda a: a.update(out_cols=np.array([f"m{i}" for i in range(14)])),
            DataError,
            "match neither",
        ),
        ("X NaN", lambda a: a.update(X=nan_at(a["X"])), DataError, r"X has 1 non-finite.*\(0, 3, 2\)"),
        ("Y inf", lambda a: a.update(Y=inf_at(a["Y"])), DataError, r"Y has 1 non-finite"),
        ("X strings", lambda a: a.update(X=a["X"].astype(str)), DataError, r"X must be numeric"),
        (
            "weight in g",
            lambda a: a.update(weight_kg=a["weight_kg"] * 1000),
            DataError,
            r"weight_kg\[0\] = .* outside the plausible 30\.\.200 kg",
        ),
        (
            "height in cm",
            lambda a: a.update(height_m=a["height_m"] * 100),
            DataError,
            r"height_m\[0\].*plausible",
        ),
        (
            "speed label",
            lambda a: a["speed_label"].__setitem__(0, "fas"),
            DataError,
            r"unknown speed_label\(s\) \['fas'\]",
        ),
        (
            "Y per kg",
            lambda a: a.update(Y=a["Y"] / a["weight_kg"][:, None, None]),
            DataError,
            r"Y should be raw N \(not per kg\)",
        ),
        (
            "subject_id short",
            lambda a: a.update(subject_id=a["subject_id"][:-1]),
            DataError,
            r"subject_id must have shape",
        ),
        ("radians", lambda a: a.update(X=np.deg2rad(a["X"])), ConventionError, r"look like radians"),
        (
            "gait2354 knee",
            lambda a: a.update(X=knee_flip(a["X"])),
            ConventionError,
            r"knee angle is mostly negative.*--convert-gait2354",
        ),
    ]


@pytest.mark.parametrize("name,mutate,exc,match", _mutations(), ids=[m[0] for m in _mutations()])
def test_bad_npz(tmp_path, cohort, name, mutate, exc, match):
    arrays = _arrays(cohort)
    mutate(arrays)
    with pytest.raises(exc, match=match):
        read_gait2hip_npz(_save(tmp_path / "bad.npz", arrays))


def test_truncated_and_not_npz(tmp_path, cohort):
    good = tmp_path / "good.npz"
    write_gait2hip_npz(good, cohort)
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_gait2hip_npz(tmp_path / "trunc.npz")
    (tmp_path / "text.npz").write_text("X,Y\n1,2\n")
    with pytest.raises(DataError, match="not a readable .npz"):
        read_gait2hip_npz(tmp_path / "text.npz")
    with pytest.raises(DataError, match="no such file"):
        read_gait2hip_npz(tmp_path / "absent.npz")


class _Evil:
    """Pickles to a call of os.system that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npy_bytes_with_payload(payload: bytes, shape) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


@pytest.mark.parametrize("how", ["whole-array", "element"])
def test_tampered_pickle_is_refused(tmp_path, cohort, how):
    marker = tmp_path / "PWNED"
    good = tmp_path / "good.npz"
    _save(good, {k: v for k, v in _arrays(cohort).items() if k != "subject_id"})
    if how == "whole-array":
        payload = pickle.dumps(_Evil(marker), protocol=3)
        member = _npy_bytes_with_payload(payload, (cohort.n,))
    else:  # a genuine object ndarray with one malicious element
        arr = np.array(cohort.subject_id.tolist(), dtype=object)
        arr[0] = _Evil(marker)
        member = _npy_bytes_with_payload(pickle.dumps(arr, protocol=3), arr.shape)
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("subject_id.npy", member)
    with pytest.raises(DataError, match=r"refused to unpickle (posix|os|nt)\.system") as info:
        read_gait2hip_npz(bad)
    assert info.value.reason == "unsafe_pickle"
    assert not marker.exists()
    # the payload is live: numpy's unrestricted loader does run it
    with np.load(bad, allow_pickle=True) as z:
        z["subject_id"]
    assert marker.exists()


def test_object_array_of_lists_is_refused(tmp_path, cohort):
    arrays = _arrays(cohort)
    sid = np.empty(cohort.n, dtype=object)
    for i in range(cohort.n):
        sid[i] = ["H01"]
    arrays["subject_id"] = sid
    with pytest.raises(DataError, match="only str, bytes, int and float"):
        read_gait2hip_npz(_save(tmp_path / "lists.npz", arrays))


def test_jm_cohort_round_trip(tmp_path):
    d = make_cohort("jm", 1, seed=3, trials_per_condition=1)
    write_gait2hip_npz(tmp_path / "jm.npz", d)
    back = read_gait2hip_npz(tmp_path / "jm.npz")
    assert back.task == "jm" and back.out_cols == JM_COLS and back.raw_unit == "Nm"
    np.testing.assert_allclose(back.y_per_kg(), d.Y / d.weight_kg[:, None, None], rtol=1e-6)


def test_writer_refuses_invalid_data(tmp_path, cohort):
    bad = cohort.subset(np.arange(cohort.n))
    bad.X = np.deg2rad(bad.X)
    with pytest.raises(ConventionError):
        write_gait2hip_npz(tmp_path / "r.npz", bad)
    assert not (tmp_path / "r.npz").exists()
