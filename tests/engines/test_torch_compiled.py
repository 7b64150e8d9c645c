"""The torch engine's bf16 and torch.compile options (the compiled path needs g++, which the
build machine has; CI installs nothing else for it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.engines import load_engine
from g2h_edge.engines.common import torch_flags
from g2h_edge.engines.torch_engine import TorchEngine, TorchOptions, bucket
from g2h_edge.errors import ConfigError, EngineError
from g2h_edge.models import Bundle, build_model, save_bundle
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.engines import warm_sizes as _warm_sizes
from g2h_edge.schema import IN_COLS, JM_COLS, T

HP = {
    "transformer": {
        "d_model": 32,
        "nhead": 4,
        "num_layers": 2,
        "dim_feedforward": 64,
        "dropout": 0.1,
        "d_in": 10,
        "T": T,
        "max_len": 200,
        "d_out": 3,
    },
    "lstm": {"hidden": 16, "layers": 1, "dropout": 0.0, "d_in": 10, "T": T, "d_out": 3},
    "mamba": {
        "d_model": 16,
        "d_state": 4,
        "d_conv": 4,
        "expand": 2,
        "layers": 1,
        "dropout": 0.0,
        "d_in": 10,
        "T": T,
        "d_out": 3,
    },
}


def _bundle_path(tmp_path_factory, arch):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    b = Bundle(
        name=f"c_{arch}",
        arch=arch,
        hparams=HP[arch],
        state_dict=build_model(arch, HP[arch]).state_dict(),
        in_cols=IN_COLS,
        out_cols=JM_COLS,
        mean=rng.normal(0, 10, 10).astype(np.float32),
        std=rng.uniform(3, 15, 10).astype(np.float32),
        task="jm",
        unit="Nm/kg",
        T=T,
        provenance={},
        synthetic=True,
    )
    return save_bundle(b, tmp_path_factory.mktemp("cb") / f"{arch}.pt")


@pytest.fixture(scope="module")
def tf_path(tmp_path_factory):
    return _bundle_path(tmp_path_factory, "transformer")


def _x(n, seed=0):
    return np.random.default_rng(seed).normal(0, 20, (n, T, 10)).astype(np.float32)


def test_buckets():
    assert [bucket(b) for b in (1, 2, 3, 4, 5, 8, 9, 33, 64)] == [1, 2, 4, 4, 8, 8, 16, 64, 64]
    assert _warm_sizes(8) == (1, 2, 4, 8) and _warm_sizes(6) == (1, 2, 4, 6)
    assert _warm_sizes(1) == (1,) and _warm_sizes(200)[-2:] == (64, 200)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"precision": "fp16"}, "precision 'fp16'"),
        ({"compile": "fast"}, "compile mode 'fast'"),
        (
            {"providers": ["CPUExecutionProvider"]},
            r"option\(s\) \['providers'\] do not apply to "
            r"\.pt files",
        ),
    ],
)
def test_bad_torch_options(tf_path, kwargs, match):
    with pytest.raises(EngineError, match=match):
        load_engine(tf_path, **kwargs)


def test_compile_is_for_transformer_mamba_and_pt_files(tmp_path_factory, tmp_path):
    with pytest.raises(EngineError, match="is an LSTM"):
        load_engine(_bundle_path(tmp_path_factory, "lstm"), compile="default")
    with pytest.raises(EngineError, match="compiled Mamba runs in fp32 only"):
        load_engine(_bundle_path(tmp_path_factory, "mamba"), compile="default", precision="bf16")
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not used")
    with pytest.raises(EngineError, match="apply to .pt bundles"):
        torch_flags(onnx_file, "bf16", None)  # the CLI flags, for a server's engines
    assert torch_flags(onnx_file, None, None) == {}
    with pytest.raises(EngineError, match=r"\['precision'\] do not apply to \.onnx files"):
        load_engine(onnx_file, precision="bf16")
    with pytest.raises(EngineError, match="TorchOptions .* cannot load m.onnx"):
        load_engine(onnx_file, TorchOptions(precision="bf16"))
    with pytest.raises(EngineError, match="apply to .pt bundles"):  # the CLI flags' names
        load_engine(onnx_file, torch_precision="bf16")


@pytest.mark.parametrize("field,value", [("torch_precision", "int8"), ("torch_compile", "reduce-overhead")])
def test_server_config_checks_torch_options(field, value):
    with pytest.raises(ConfigError, match=field):
        ServerConfig(engines=("m.pt",), **{field: value})


@pytest.mark.parametrize("arch", ["transformer", "lstm", "mamba"])
def test_bf16_is_close_but_not_exact(tmp_path_factory, arch):
    path = _bundle_path(tmp_path_factory, arch)
    x = _x(5)
    with (
        load_engine(path) as ref,
        load_engine(path, precision="bf16") as eng,
        load_engine(path, torch_precision="bf16") as same,
    ):
        want, got = ref.infer(x), eng.infer(x)
        assert eng.metadata["precision"] == "bf16" and got.dtype == np.float32
        np.testing.assert_array_equal(same.infer(x), got)
    err = np.abs(got - want).max()
    assert 0 < err <= 0.05 * np.abs(want).max()


def test_compiled_engine_matches_eager_at_any_batch(tf_path):
    x = _x(70, seed=3)
    with load_engine(tf_path) as ref:
        want = ref.infer(x)
    eng = TorchEngine.from_file(tf_path, TorchOptions(compile="default"))
    try:
        assert eng.buckets_ == {1}  # compiled at load time
        for n in (1, 3, 70):  # exact, padded to 4, 64 + (6 -> 8)
            got = eng.infer(x[:n])
            assert got.shape == (n, T, 3)
            np.testing.assert_allclose(got, want[:n], rtol=0, atol=1e-4)
        assert eng.buckets_ == {1, 4, 8, 64}
        eng.warmup(batch_sizes=(2,))
        assert 2 in eng.buckets_
        assert eng.metadata["compile"] == "default"
    finally:
        eng.close()
    with pytest.raises(EngineError, match="closed"):
        eng.infer(x[:1])


def test_compiled_mamba_matches_eager(tmp_path_factory):
    path = _bundle_path(tmp_path_factory, "mamba")
    x = _x(3, seed=4)
    with load_engine(path) as ref, load_engine(path, compile="default") as eng:
        np.testing.assert_allclose(eng.infer(x), ref.infer(x), rtol=0, atol=1e-4)
        assert eng.buckets_ == {1, 4}
