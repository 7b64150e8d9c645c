"""Checkpoint import: restricted unpickling (tampered pickles refused), bad-input table."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from g2h_edge.errors import ModelError
from g2h_edge.models import file_sha256, import_checkpoint, load_bundle, save_bundle
from g2h_edge.schema import IN_COLS, JM_COLS


class WritesMarker:
    """Unpickling this calls open(marker, "w"): code execution if the loader allows it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_import_published_style_checkpoint(tmp_path, ckpt_factory, cycles):
    ckpt = ckpt_factory("mamba", "jm")
    src = tmp_path / "Mamba_JM60.pt"
    torch.save(ckpt, src)
    bundle = import_checkpoint(src)
    assert (bundle.arch, bundle.task, bundle.unit, bundle.T) == ("mamba", "jm", "Nm/kg", 180)
    assert bundle.name == "Mamba_JM60" and bundle.synthetic is False
    assert bundle.in_cols == IN_COLS and bundle.out_cols == JM_COLS
    np.testing.assert_array_equal(bundle.mean, ckpt["mu_x"])
    prov = bundle.provenance
    assert prov["source_sha256"] == file_sha256(src) and prov["source_file"] == src.name
    assert prov["published_test_metrics"]["subject_mean"]["R2"] == 0.8
    assert prov["test_subjects"] == ["H29", "H56"]
    again = load_bundle(save_bundle(bundle, tmp_path / "b.pt"))
    with torch.no_grad():
        x = torch.from_numpy(cycles)
        torch.testing.assert_close(again.module()(x), bundle.module()(x))


def test_tampered_pickle_is_refused_and_runs_no_code(tmp_path, ckpt_factory):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pt"
    torch.save(ckpt_factory(protocol=WritesMarker(marker)), src)
    with pytest.raises(ModelError, match="needs a non-allow-listed global io.open and was refused") as info:
        import_checkpoint(src)
    assert info.value.reason == "unsafe_checkpoint"
    assert not marker.exists()
    # control: an unrestricted load of the same file does run the code, so the test can fail
    control = tmp_path / "control.pt"
    torch.save({"x": WritesMarker(tmp_path / "control-marker")}, control)
    torch.load(control, weights_only=False)["x"].close()  # the unpickled open() file
    assert (tmp_path / "control-marker").exists()


def _numpy_scalar_metrics():
    return {"RMSE": np.float64(1.0)}  # pickles as numpy._core.multiarray.scalar: refused


BAD = [
    ("missing mu_x", {"mu_x": KeyError}, r"missing keys \['mu_x'\]"),
    ("unknown model", {"model_type": "gru"}, "model_type 'gru' is not one of"),
    ("out_cols", {"out_cols": ["a", "b"]}, "match neither task"),
    ("unit", {"target_unit": "N"}, "target_unit 'N' is not the per-kg unit"),
    ("in_cols", {"in_cols": list(IN_COLS[::-1])}, "in_cols .* do not match"),
    ("sd_x shape", {"sd_x": np.ones(9, np.float32)}, r"std must be 10 floats"),
    ("sd_x ints", {"sd_x": torch.ones(10, dtype=torch.int64)}, "sd_x must be a float array"),
    (
        "int64 ndarray",
        {"mu_x": np.ones(10, np.int64)},
        "needs a non-allow-listed global numpy.dtypes.Int64DType",
    ),
    ("hparams", {"hparams": {"hidden": 16}}, "missing"),
    ("state_dict", {"state_dict": {"fc.weight": torch.zeros(14, 16)}}, "missing"),
    ("numpy scalar", {"test_metrics_overall": "SCALAR"}, "needs a non-allow-listed global numpy.*scalar"),
]


@pytest.mark.parametrize("case, edits, match", BAD, ids=[c[0] for c in BAD])
def test_import_rejects(case, edits, match, tmp_path, ckpt_factory):
    ckpt = ckpt_factory()
    for key, value in edits.items():
        if value is KeyError:
            del ckpt[key]
        elif isinstance(value, str) and value == "SCALAR":
            ckpt[key] = _numpy_scalar_metrics()
        else:
            ckpt[key] = value
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match=match):
        import_checkpoint(tmp_path / "bad.pt")


def test_import_rejects_bad_files(tmp_path, ckpt_factory, bundle):
    torch.save(ckpt_factory(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[:1000])
    torch.save([1, 2], tmp_path / "list.pt")
    save_bundle(bundle, tmp_path / "bundle.pt")
    for name, match in [
        ("nope.pt", "does not exist"),
        ("trunc.pt", "not a torch zip"),
        ("list.pt", "holds a list"),
        ("bundle.pt", "already a g2h-edge bundle"),
    ]:
        with pytest.raises(ModelError, match=match):
            import_checkpoint(tmp_path / name)
