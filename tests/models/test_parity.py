"""Parity: the six published checkpoints reproduce parity.npz within 1e-4 absolute.

Path under test is the one the runtime uses: import_checkpoint -> save_bundle -> load_engine
(TorchEngine) -> infer on degrees. Reads ../shared/reference (skipped when absent).
"""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.engines import load_engine
from g2h_edge.models import import_checkpoint, load_bundle, save_bundle

pytestmark = pytest.mark.shared

NAMES = ["Transformer_MF60", "LSTM_MF60", "Mamba_MF60", "Transformer_JM60", "LSTM_JM60", "Mamba_JM60"]
TOL = 1e-4


@pytest.fixture(scope="module")
def parity(reference_dir):
    with np.load(reference_dir / "parity.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", NAMES)
def test_published_checkpoint_parity(name, reference_dir, parity, tmp_path, record_property):
    bundle = import_checkpoint(reference_dir / f"{name}.pt")
    path = save_bundle(bundle, tmp_path / f"{name}.pt")
    engine = load_engine(path)
    y = engine.infer(parity["X"])  # (9, 180, K) per kg
    ref = parity[f"Y_{name}"]
    assert y.shape == ref.shape and y.dtype == np.float32
    diff = float(np.abs(y - ref).max())
    record_property("max_abs_diff", diff)
    print(f"parity {name}: max abs diff {diff:.3g}")
    assert diff <= TOL, f"{name}: max abs diff {diff} > {TOL}"
    # the outputs are not trivially small: a broken model would not pass by accident
    assert float(np.abs(ref).max()) > 100 * TOL


def test_import_records_provenance(reference_dir):
    src = reference_dir / "Transformer_JM60.pt"
    bundle = import_checkpoint(src)
    prov = bundle.provenance
    assert bundle.synthetic is False and bundle.task == "jm" and bundle.unit == "Nm/kg"
    assert prov["source_file"] == "Transformer_JM60.pt"
    assert len(prov["source_sha256"]) == 64
    assert prov["test_subjects"][:3] == ["H29", "H56", "H19"]
    assert 0.0 < prov["published_test_metrics"]["subject_mean"]["R2"] < 1.0


def test_bundle_of_published_model_round_trips(reference_dir, parity, tmp_path):
    bundle = import_checkpoint(reference_dir / "LSTM_MF60.pt", name="lstm-mf")
    again = load_bundle(save_bundle(bundle, tmp_path / "b.pt"))
    assert again.name == "lstm-mf" and again.provenance == bundle.provenance
    np.testing.assert_array_equal(again.mean, bundle.mean)
    for key, value in bundle.state_dict.items():
        assert bool((again.state_dict[key] == value).all()), key
