"""Bundle format: round trip, plain weights-only file, validation on load."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from g2h_edge.errors import ModelError
from g2h_edge.models import (
    FORMAT_TAG,
    FORMAT_VERSION,
    StandardizedModel,
    file_sha256,
    load_bundle,
    save_bundle,
)
from g2h_edge.schema import IN_COLS, JM_COLS, MF_COLS


@pytest.mark.parametrize("arch", ["transformer", "lstm", "mamba"])
def test_round_trip(arch, tmp_path, cycles, bundle_factory):
    b = bundle_factory(arch, task="mf")
    path = save_bundle(b, tmp_path / "m.pt")
    again = load_bundle(path)
    for key in (
        "name",
        "arch",
        "hparams",
        "in_cols",
        "out_cols",
        "task",
        "unit",
        "T",
        "provenance",
        "synthetic",
    ):
        assert getattr(again, key) == getattr(b, key), key
    np.testing.assert_array_equal(again.std, b.std)
    assert again.mean.dtype == np.float32 and again.mean.shape == (10,)
    with torch.no_grad():
        x = torch.from_numpy(cycles)
        np.testing.assert_array_equal(again.module()(x).numpy(), b.module()(x).numpy())


def test_file_is_plain_weights_only(tmp_path, bundle):
    path = save_bundle(bundle, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # no allow-listed globals needed
    assert raw["format"] == FORMAT_TAG and raw["format_version"] == FORMAT_VERSION
    assert isinstance(raw["mean"], torch.Tensor) and raw["mean"].dtype == torch.float32
    assert raw["in_cols"] == list(IN_COLS) and raw["synthetic"] is True
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_standardized_model_applies_mean_and_std(bundle, cycles, stats):
    mean, std = stats
    module = bundle.module()
    assert isinstance(module, StandardizedModel) and not module.training
    x = torch.from_numpy(cycles)
    with torch.no_grad():
        expect = module.core((x - torch.from_numpy(mean)) / torch.from_numpy(std))
        torch.testing.assert_close(module(x), expect)


def _payload(bundle, tmp_path):
    save_bundle(bundle, tmp_path / "good.pt")
    return torch.load(tmp_path / "good.pt", weights_only=True)


def _edit(key, value):
    def apply(p):
        if value is KeyError:
            del p[key]
        else:
            p[key] = value

    return apply


def _edit_sd(p):
    p["state_dict"]["output_proj.weight"] = torch.zeros(5, 16)


BAD_PAYLOADS = [
    ("wrong tag", _edit("format", "something-else"), "format tag 'something-else'"),
    ("future version", _edit("format_version", 99), "format version 99 is not supported"),
    ("missing key", _edit("std", KeyError), r"missing keys \['std'\]"),
    ("unknown arch", _edit("arch", "gru"), "unknown architecture 'gru'"),
    ("shape mismatch", _edit_sd, r"output_proj.weight'\] has shape \(5, 16\)"),
    ("missing param", lambda p: p["state_dict"].pop("input_proj.bias"), r"missing \['input_proj.bias'\]"),
    ("in_cols order", _edit("in_cols", list(reversed(IN_COLS))), "in_cols .* do not match"),
    ("out_cols vs task", _edit("out_cols", list(MF_COLS)), "out_cols .* do not match"),
    ("unit", _edit("unit", "N/kg"), "unit 'N/kg' is wrong for task 'jm'"),
    ("task", _edit("task", "emg"), "task 'emg' is not one of"),
    ("mean shape", _edit("mean", torch.zeros(9)), r"mean must be 10 floats, got shape \(9,\)"),
    ("std zero", _edit("std", torch.zeros(10)), "std must be > 0"),
    ("mean nan", _edit("mean", torch.full((10,), float("nan"))), "non-finite"),
    ("T", _edit("T", 90), "T 90 must be an int equal to hparams T 180"),
    ("synthetic", _edit("synthetic", "no"), "synthetic must be a bool"),
    ("not a dict", lambda p: p.clear(), "format tag None"),
]


@pytest.mark.parametrize("case, edit, match", BAD_PAYLOADS, ids=[c[0] for c in BAD_PAYLOADS])
def test_load_rejects(case, edit, match, tmp_path, bundle):
    payload = _payload(bundle, tmp_path)
    edit(payload)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match=match):
        load_bundle(tmp_path / "bad.pt")


def test_load_rejects_bad_files(tmp_path, bundle):
    good = save_bundle(bundle, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "flipped.pt").write_bytes(data[:2000] + bytes(64) + data[2064:])
    torch.save({"mu_x": np.zeros(10, np.float32)}, tmp_path / "numpy.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    cases = [
        ("missing.pt", "does not exist"),
        ("trunc.pt", "corrupt|truncated"),
        ("text.pt", "not a torch zip archive"),
        ("flipped.pt", "corrupt|truncated"),
        ("numpy.pt", "needs the pickle global numpy"),
        ("list.pt", "format tag 'list'"),
    ]
    for name, match in cases:
        with pytest.raises(ModelError, match=match):
            load_bundle(tmp_path / name)


def test_constructor_validates(bundle, bundle_factory):
    make_bundle = bundle_factory
    with pytest.raises(ModelError, match="provenance.* holds a ndarray"):
        make_bundle(provenance={"x": np.zeros(2)})
    with pytest.raises(ModelError, match="out_cols"):
        make_bundle(out_cols=JM_COLS[:2])
    with pytest.raises(ModelError, match="in_cols must be a list of strings"):
        make_bundle(in_cols=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.name = "other"  # frozen
