"""The ensemble engine against its members, manifests, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from g2h_edge.engines import load_engine
from g2h_edge.engines.ensemble import (
    EnsembleEngine,
    infer_with_spread,
    load_any,
    load_ensemble,
    read_manifest,
    write_manifest,
)
from g2h_edge.errors import EngineError
from g2h_edge.models import Bundle, build_model, default_hparams, save_bundle
from g2h_edge.schema import IN_COLS, JM_COLS, MF_COLS, TARGET_UNIT

SMALL = {
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32},
    "lstm": {"hidden": 8, "layers": 1},
}
MEAN = np.linspace(-10.0, 30.0, 10).astype(np.float32)
STD = np.linspace(5.0, 20.0, 10).astype(np.float32)


def _save(path, arch, task="jm", seed=0):
    torch.manual_seed(seed)
    cols = JM_COLS if task == "jm" else MF_COLS
    hp = {**default_hparams(arch, len(cols)), **SMALL[arch]}
    b = Bundle(
        name=f"{arch}-{task}-{seed}",
        arch=arch,
        hparams=hp,
        state_dict=build_model(arch, hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=cols,
        mean=MEAN,
        std=STD,
        task=task,
        unit=TARGET_UNIT[task],
        T=180,
        provenance={"note": "random weights, ensemble tests"},
        synthetic=True,
    )
    return save_bundle(b, path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ens")
    return {
        "a": _save(d / "a.pt", "transformer", seed=1),
        "b": _save(d / "b.pt", "lstm", seed=2),
        "c": _save(d / "c.pt", "transformer", seed=3),
        "mf": _save(d / "mf.pt", "lstm", "mf", seed=4),
    }


def _x(n=3):
    rng = np.random.default_rng(0)
    return (MEAN + STD * rng.normal(0, 1, (n, 180, 10))).astype(np.float32)


def test_mean_and_spread_equal_the_members(files):
    x = _x()
    members = [load_engine(files[k]) for k in "abc"]
    ys = np.stack([m.infer(x) for m in members])  # (3, B, T, K)
    ens = EnsembleEngine(members)
    np.testing.assert_allclose(ens.infer(x), ys.mean(0), rtol=0, atol=1e-6)
    mean, sd = ens.infer_spread(x)
    np.testing.assert_allclose(mean, ys.mean(0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(sd, ys.std(0), rtol=0, atol=1e-6)
    assert sd.shape == (3, 180, 3) and sd.dtype == np.float32 and float(sd.min()) >= 0
    assert float(sd.mean()) > 1e-4  # different random members disagree
    assert infer_with_spread(members[0], x)[1] is None
    assert ens.name == "+".join(m.name for m in members) and ens.synthetic
    assert ens.backend == "ensemble:torch+torch+torch" and len(ens.sha256) == 64
    assert [m["name"] for m in ens.metadata["members"]] == [m.name for m in members]
    np.testing.assert_allclose(ens.metadata["mean"], MEAN, rtol=1e-6)
    ens.close()
    assert not members[0].closed_  # not owned: left open
    with pytest.raises(EngineError, match="closed"):
        ens.infer_spread(x)


def test_ensemble_of_identical_members_has_zero_spread(files):
    ens = load_ensemble([files["a"], files["a"]], name="twice")
    mean, sd = ens.infer_spread(_x(1))
    assert ens.name == "twice" and float(np.abs(sd).max()) == 0.0
    ens.close()
    assert all(m.closed_ for m in ens.members)  # owned: closed with it


def test_manifest_roundtrip_and_comma_list(files, tmp_path):
    man = write_manifest(files["a"].parent / "ens.json", [files["a"], files["b"]], "AB")
    assert json.loads(man.read_text())["members"] == ["a.pt", "b.pt"]  # relative
    name, paths = read_manifest(man)
    assert name == "AB" and [p.name for p in paths] == ["a.pt", "b.pt"]
    x = _x(2)
    with load_any(man) as e1, load_any(f"{files['a']},{files['b']}") as e2:
        assert e1.name == "AB" and isinstance(e2, EnsembleEngine)
        np.testing.assert_array_equal(e1.infer(x), e2.infer(x))
    with load_any(files["a"]) as single:
        assert not isinstance(single, EnsembleEngine)


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "not readable JSON"),
        ('{"format": "other", "members": []}', "not an ensemble manifest"),
        ('{"format": "g2h-edge-ensemble", "members": "a.pt"}', "members"),
        ('{"format": "g2h-edge-ensemble", "members": ["a.pt"], "extra": 1}', "unknown keys"),
        ('{"format": "g2h-edge-ensemble", "members": ["a.pt"]}', "at least 2"),
        ('{"format": "g2h-edge-ensemble", "members": ["a.pt", "nope.pt"]}', "does not exist"),
    ],
)
def test_bad_manifests(files, content, match):
    path = files["a"].parent / "bad.json"
    path.write_text(content)
    with pytest.raises(EngineError, match=match):
        load_any(path)


def test_mismatched_members_are_refused(files):
    with pytest.raises(EngineError, match="differ in task"):
        load_ensemble([files["a"], files["mf"]])
    with pytest.raises(EngineError, match="at least 2"):
        EnsembleEngine([load_engine(files["a"])])
    with pytest.raises(EngineError, match="empty entry"):
        load_any(f"{files['a']},")


def test_models_ensemble_command(files, tmp_path):
    from click.testing import CliRunner

    from g2h_edge.cli import cli

    out = tmp_path / "ens.json"
    res = CliRunner().invoke(
        cli,
        ["models", "ensemble", str(files["a"]), str(files["b"]), "-o", str(out), "--name", "AB"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "AB (2 members, task jm" in res.output
    name, paths = read_manifest(out)
    assert name == "AB" and [p.resolve() for p in paths] == [files["a"].resolve(), files["b"].resolve()]
    with pytest.raises(EngineError, match="differ in task"):
        CliRunner().invoke(
            cli,
            ["models", "ensemble", str(files["a"]), str(files["mf"]), "-o", str(tmp_path / "bad.json")],
            catch_exceptions=False,
        )
    assert not (tmp_path / "bad.json").exists()
