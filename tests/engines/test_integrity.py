"""Integrity: a bundle or ONNX export with damaged weights is refused at load (issue 16.10).

Regression: 64 flipped bytes in the weights of a bundle or an ONNX export used to be served
silently. Each case flips 64 bytes inside the largest weight tensor of a real file, then
loads it through ``load_engine`` as ``serve`` does; the same damage in a file without a
content hash (as written before) still loads, with a warning, and serves other outputs.
"""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from g2h_edge.engines import load_engine
from g2h_edge.errors import ModelError
from g2h_edge.integrity import CONTENT_KEY, UnverifiedModelWarning, bundle_content_sha256, onnx_graph_sha256
from g2h_edge.models import Bundle, build_model, default_hparams, load_bundle, save_bundle
from g2h_edge.schema import IN_COLS, MF_COLS

MEAN = np.linspace(-10.0, 30.0, 10).astype(np.float32)
STD = np.linspace(5.0, 20.0, 10).astype(np.float32)


def _bundle() -> Bundle:
    torch.manual_seed(3)
    hp = {**default_hparams("lstm", len(MF_COLS)), "hidden": 32}
    return Bundle(
        name="integrity-tiny",
        arch="lstm",
        hparams=hp,
        state_dict=build_model("lstm", hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=MF_COLS,
        mean=MEAN,
        std=STD,
        task="mf",
        unit="N/kg",
        T=180,
        provenance={"note": "random weights, integrity tests"},
        synthetic=True,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("integrity")
    pt = save_bundle(_bundle(), d / "tiny.pt")
    from g2h_edge.cli import cli

    res = CliRunner().invoke(
        cli, ["export", "onnx", "--model", str(pt), "-o", str(d / "tiny.onnx")], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    return {"pt": pt, "onnx": d / "tiny.onnx"}


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(5).normal(0, 20, (2, 180, 10)).astype(np.float32)


def _flip_64(data: bytearray, start: int) -> bytearray:
    """XOR 0x01 into 64 bytes from ``start``: float32 weights change (x4 or /4 where the
    exponent's low bit flips, tiny mantissa changes elsewhere) and stay finite."""
    for i in range(start, start + 64):
        data[i] ^= 0x01
    return data


def _damaged_bundle(src, dst):
    with zipfile.ZipFile(src) as z:  # the largest tensor record of the archive
        info = max(z.infolist(), key=lambda i: i.file_size)
    data = bytearray(src.read_bytes())
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    body = info.header_offset + 30 + name_len + extra_len  # stored uncompressed by torch
    dst.write_bytes(_flip_64(data, body + info.file_size // 2))
    return dst


def _damaged_onnx(src, dst):
    model = onnx.load(str(src))
    biggest = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    data = bytearray(src.read_bytes())
    start = bytes(data).find(biggest.raw_data)
    assert start > 0 and len(biggest.raw_data) > 256
    dst.write_bytes(_flip_64(data, start + len(biggest.raw_data) // 2))
    return dst


def _without_hash(path, kind):
    if kind == "pt":
        payload = torch.load(path, weights_only=True)
        del payload[CONTENT_KEY]
        torch.save(payload, path)
    else:
        model = onnx.load(str(path))
        keep = [(p.key, p.value) for p in model.metadata_props if p.key != CONTENT_KEY]
        del model.metadata_props[:]
        for k, v in keep:
            model.metadata_props.add(key=k, value=v)
        onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_flipped_weights_are_refused(files, tmp_path, kind):
    damage = _damaged_bundle if kind == "pt" else _damaged_onnx
    bad = damage(files[kind], tmp_path / f"bad.{kind}")
    with pytest.raises(ModelError, match=rf"{bad}.* failed its integrity check.*re-") as err:
        load_engine(bad)
    assert err.value.reason == "integrity"


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_files_without_a_hash_load_with_a_warning(files, tmp_path, x, kind):
    """What happened before: the same damage in a file without a hash is served."""
    damage = _damaged_bundle if kind == "pt" else _damaged_onnx
    good_copy = tmp_path / f"good.{kind}"
    good_copy.write_bytes(files[kind].read_bytes())
    old_good = _without_hash(good_copy, kind)
    old_bad = _without_hash(damage(files[kind], tmp_path / f"bad.{kind}"), kind)
    with pytest.warns(UnverifiedModelWarning, match="has no content hash"):
        with load_engine(old_good) as good, load_engine(old_bad) as bad:
            diff = float(np.abs(good.infer(x) - bad.infer(x)).max())
    print(f"{kind}: 64 flipped bytes served without a hash, max |dy| = {diff:.3g} N/kg")
    assert diff > 0  # damaged weights, served: what the hash stops


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_good_files_load_without_warnings(files, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_engine(files[kind]).close()


def test_hash_covers_the_documented_fields():
    b = _bundle()
    fields = {k: getattr(b, k) for k in ("arch", "hparams", "in_cols", "out_cols", "mean", "std", "T")}
    ref = bundle_content_sha256(b.state_dict, fields)
    assert ref == bundle_content_sha256(dict(reversed(list(b.state_dict.items()))), fields)
    changed = [
        dict(fields, mean=fields["mean"] + 1e-3),
        dict(fields, std=fields["std"] * 2),
        dict(fields, hparams={**fields["hparams"], "hidden": 33}),
        dict(fields, T=90),
    ]
    assert all(bundle_content_sha256(b.state_dict, f) != ref for f in changed)
    sd = dict(b.state_dict)
    first = sorted(sd)[0]
    sd[first] = sd[first].clone()
    sd[first].view(-1)[0] += 1e-6
    assert bundle_content_sha256(sd, fields) != ref


def test_bundle_and_onnx_store_their_hash(files):
    payload = torch.load(files["pt"], weights_only=True)
    b = load_bundle(files["pt"])
    assert payload[CONTENT_KEY] == bundle_content_sha256(
        b.state_dict,
        {k: getattr(b, k) for k in ("arch", "hparams", "in_cols", "out_cols", "mean", "std", "T")},
    )
    model = onnx.load(str(files["onnx"]))
    stored = {p.key: p.value for p in model.metadata_props}[CONTENT_KEY]
    assert stored.strip('"') == onnx_graph_sha256(model)
