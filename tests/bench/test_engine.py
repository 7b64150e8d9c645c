"""`g2h-edge bench engine` runs both paths and prints the ratio (no timing assertions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.bench.engine import bench_pair
from g2h_edge.cli import main
from g2h_edge.models import Bundle, build_model, save_bundle
from g2h_edge.schema import IN_COLS, MF_COLS, T


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from g2h_edge.export.onnx import export_onnx

    hp = {
        "d_model": 16,
        "nhead": 2,
        "num_layers": 1,
        "dim_feedforward": 32,
        "dropout": 0.1,
        "d_in": 10,
        "T": T,
        "max_len": 200,
        "d_out": 14,
    }
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("bench")
    b = Bundle(
        name="tiny_tf",
        arch="transformer",
        hparams=hp,
        state_dict=build_model("transformer", hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=MF_COLS,
        mean=np.zeros(10, np.float32),
        std=np.ones(10, np.float32),
        task="mf",
        unit="N/kg",
        T=T,
        provenance={},
        synthetic=True,
    )
    bp = save_bundle(b, d / "tiny.pt")
    return bp, export_onnx(bp, d / "tiny.onnx", verify_batches=(1,)).path


def test_bench_pair_counts_calls():
    calls = {"a": 0, "b": 0}

    def make(k):
        def f(x):
            calls[k] += 1

        return f

    rows = bench_pair({"a": make("a"), "b": make("b")}, np.zeros((2, 3)), iters=10, warmup=2, rounds=5)
    assert calls == {"a": 12, "b": 12}
    assert [r.path for r in rows] == ["a", "b"] and all(r.batch == 2 for r in rows)
    assert all(r.p99_ms >= r.p50_ms >= 0 for r in rows)


@pytest.mark.parametrize("with_bundle", [False, True])
def test_bench_engine_cli(tiny, capsys, with_bundle):
    bp, op = tiny
    argv = [
        "bench",
        "engine",
        "--engine",
        str(op),
        "--batch",
        "1,3",
        "--iters",
        "5",
        "--warmup",
        "1",
        "--threads",
        "1",
    ] + (["--bundle", str(bp)] if with_bundle else [])
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)
    text = capsys.readouterr().out
    assert "onnxruntime (fp32)" in text and "SYNTHETIC" in text
    assert text.count("speed-up vs torch eager") == 2
    assert ("(bundle)" if with_bundle else "(default init)") in text
