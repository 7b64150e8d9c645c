"""TorchEngine specifics (the shared engine contract lives in tests/engines/test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.engines import load_engine
from g2h_edge.engines.torch_engine import TorchEngine
from g2h_edge.errors import EngineError
from g2h_edge.models import save_bundle


def test_from_bundle_equals_the_file_engine(tmp_path, bundle_factory, cycles):
    b = bundle_factory("mamba", task="mf")
    mem = TorchEngine.from_bundle(b)
    disk = load_engine(save_bundle(b, tmp_path / "m.pt"))
    assert mem.sha256 == "unsaved" and len(disk.sha256) == 64
    assert mem.metadata["arch"] == "mamba" and disk.metadata["path"].endswith("m.pt")
    np.testing.assert_array_equal(mem.infer(cycles), disk.infer(cycles))


def test_threads_option_sets_torch_threads(tmp_path, bundle):
    before = torch.get_num_threads()
    try:
        load_engine(save_bundle(bundle, tmp_path / "m.pt"), threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_a_gpu_is_a_clear_error(bundle):
    with pytest.raises(EngineError, match="cannot place model .* on 'cuda'"):
        TorchEngine.from_bundle(bundle, device="cuda")


@pytest.mark.gpu
def test_cuda_engine_matches_cpu(bundle_factory, cycles):
    b = bundle_factory("mamba", task="jm")
    np.testing.assert_allclose(
        TorchEngine.from_bundle(b, device="cuda").infer(cycles),
        TorchEngine.from_bundle(b).infer(cycles),
        rtol=0,
        atol=1e-4,
    )
