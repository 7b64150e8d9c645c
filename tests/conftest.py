"""Shared fixtures and markers.

- ``shared_dir`` / ``reference_dir`` / ``data_dir``: ../shared next to the project; tests that
  need them are skipped when absent (CI has it; a user's clone may not).
- ``gpu`` marker: skipped unless torch sees a CUDA device.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("G2H_SHARED", ROOT.parent / "shared"))


def _has_cuda() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def reference_dir(shared_dir) -> Path:
    ref = shared_dir / "reference"
    if not (ref / "parity.npz").is_file():
        pytest.skip(f"published checkpoints are absent from {ref}")
    return ref


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> Path:
    d = shared_dir / "data"
    if not (d / "schreiber2019").is_dir():
        pytest.skip(f"real trials are absent from {d}")
    return d
