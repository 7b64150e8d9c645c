"""Fixtures for export tests: tiny synthetic bundles of every architecture (always run) and
the published checkpoints imported into a temp dir (skipped when ../shared is absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.models import Bundle, build_model, import_checkpoint, save_bundle
from g2h_edge.schema import IN_COLS, JM_COLS, T

TINY_HPARAMS = {
    "transformer": {
        "d_model": 16,
        "nhead": 2,
        "num_layers": 1,
        "dim_feedforward": 32,
        "dropout": 0.1,
        "d_in": 10,
        "T": T,
        "max_len": 200,
        "d_out": 3,
    },
    "lstm": {"hidden": 16, "layers": 2, "dropout": 0.1, "d_in": 10, "T": T, "d_out": 3},
    "mamba": {
        "d_model": 16,
        "d_state": 4,
        "d_conv": 4,
        "expand": 2,
        "layers": 1,
        "dropout": 0.1,
        "d_in": 10,
        "T": T,
        "d_out": 3,
    },
}
ARCHS = tuple(TINY_HPARAMS)
REFERENCE = ("Transformer_MF60", "Transformer_JM60", "LSTM_MF60", "LSTM_JM60", "Mamba_MF60", "Mamba_JM60")


def tiny_bundle(arch: str, seed: int = 0) -> Bundle:
    """A small randomly initialised jm bundle of ``arch`` (synthetic=True)."""
    torch.manual_seed(seed)
    hp = dict(TINY_HPARAMS[arch])
    rng = np.random.default_rng(seed)
    return Bundle(
        name=f"tiny_{arch}",
        arch=arch,
        hparams=hp,
        state_dict=build_model(arch, hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=JM_COLS,
        mean=rng.normal(0, 10, 10).astype(np.float32),
        std=rng.uniform(3, 15, 10).astype(np.float32),
        task="jm",
        unit="Nm/kg",
        T=T,
        provenance={"source_sha256": "0" * 64, "note": "test"},
        synthetic=True,
    )


@pytest.fixture(scope="session")
def tiny_bundle_paths(tmp_path_factory) -> dict:
    """arch -> path of a saved tiny bundle."""
    d = tmp_path_factory.mktemp("tiny_bundles")
    return {arch: save_bundle(tiny_bundle(arch), d / f"tiny_{arch}.pt") for arch in ARCHS}


@pytest.fixture(scope="session")
def tiny_exports(tiny_bundle_paths, tmp_path_factory) -> dict:
    """arch -> (bundle path, fp32 dynamic ONNX path, ExportReport)."""
    from g2h_edge.export.onnx import export_onnx

    d = tmp_path_factory.mktemp("tiny_onnx")
    out = {}
    for arch, bp in tiny_bundle_paths.items():
        rep = export_onnx(bp, d / f"tiny_{arch}.onnx")
        out[arch] = (bp, rep.path, rep)
    return out


@pytest.fixture(scope="session")
def reference_bundles(reference_dir, tmp_path_factory) -> dict:
    """name -> path of each published checkpoint imported as a bundle (temp dir, never
    committed)."""
    d = tmp_path_factory.mktemp("reference_bundles")
    return {n: save_bundle(import_checkpoint(reference_dir / f"{n}.pt"), d / f"{n}.pt") for n in REFERENCE}


@pytest.fixture(scope="session")
def make_tiny_bundle():
    """The :func:`tiny_bundle` factory (arch, seed=0) -> Bundle."""
    return tiny_bundle
