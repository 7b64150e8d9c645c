"""The pure-torch Mamba block: scans against the sequential oracle, causality, export."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from g2h_edge.models import build_model, default_hparams
from g2h_edge.models.mamba import (
    SCANS,
    MambaBlock,
    associative_scan,
    auto_scan,
    default_chunk,
    exporting,
    scan_levels,
    selective_scan_chunked,
    selective_scan_sequential,
    selective_scan_unrolled,
    set_scan,
)


def scan_args(b, length, e=6, n=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return (
        r(b, length, e),
        F.softplus(r(b, length, e) - 1.0),
        -torch.exp(r(e, n)),
        r(b, length, n),
        r(b, length, n),
        r(e),
    )


def naive_scan(u, delta, A, B, C, D):
    """Element by element, straight from the definition (checks the oracle itself)."""
    b, length, e = u.shape
    y = torch.zeros_like(u)
    for i in range(b):
        for k in range(e):
            h = torch.zeros(A.shape[1], dtype=u.dtype)
            for t in range(length):
                h = torch.exp(delta[i, t, k] * A[k]) * h + delta[i, t, k] * B[i, t] * u[i, t, k]
                y[i, t, k] = (C[i, t] * h).sum() + D[k] * u[i, t, k]
    return y


def test_sequential_oracle_matches_the_definition():
    args = scan_args(2, 7, e=3, n=2)
    torch.testing.assert_close(selective_scan_sequential(*args), naive_scan(*args), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 16, 17, 64, 180])
@pytest.mark.parametrize("scan", ["chunked", "parallel", "unrolled"])
def test_export_scans_match_sequential(scan, length):
    args = scan_args(2, length)
    ref = selective_scan_sequential(*args)
    torch.testing.assert_close(SCANS[scan](*args), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("chunk", [1, 5, 7, 12, 13, 180, 250])
def test_chunked_scan_any_chunk_length(chunk):
    args = scan_args(1, 180, seed=3)
    torch.testing.assert_close(
        selective_scan_chunked(*args, chunk=chunk), selective_scan_sequential(*args), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("block", [1, 5, 7, 12, 13, 180, 250])
def test_unrolled_scan_any_block_length(block):
    args = scan_args(2, 180, seed=4)
    torch.testing.assert_close(
        selective_scan_unrolled(*args, block=block), selective_scan_sequential(*args), rtol=0, atol=1e-10
    )


def test_unrolled_scan_takes_a_static_length():
    """With ``length`` given the traced graph needs no shape of the input (static exports);
    a length that disagrees with the input cannot pass silently."""
    args = scan_args(1, 30, seed=8)
    torch.testing.assert_close(
        selective_scan_unrolled(*args, block=7, length=30),
        selective_scan_sequential(*args),
        rtol=0,
        atol=1e-10,
    )
    with pytest.raises(RuntimeError):
        selective_scan_unrolled(*args, block=7, length=29)


def test_float32_scans_agree_at_the_published_size():
    args = scan_args(1, 180, e=256, n=16, dtype=torch.float32)
    ref = selective_scan_sequential(*(a.double() for a in args)).float()
    for name, scan in SCANS.items():
        assert float((scan(*args) - ref).abs().max()) < 1e-4, name


def test_auto_scan_picks_by_context():
    assert auto_scan() == "sequential"  # eager
    seen = []
    block = MambaBlock(4, d_state=2)
    block.register_forward_pre_hook(lambda *_: seen.append(auto_scan()))
    torch.onnx.export(block.eval(), (torch.randn(1, 20, 4),), io.BytesIO(), dynamo=False, opset_version=17)
    assert seen == ["unrolled"]


def test_associative_scan_is_a_linear_recurrence():
    a, b = torch.rand(3, 37, 5, dtype=torch.float64), torch.randn(3, 37, 5, dtype=torch.float64)
    h, expect = torch.zeros(3, 5, dtype=torch.float64), []
    for t in range(37):
        h = a[:, t] * h + b[:, t]
        expect.append(h)
    torch.testing.assert_close(associative_scan(a, b), torch.stack(expect, 1))


def test_chunk_and_level_counts():
    assert default_chunk(180) == 12 and 180 % default_chunk(180) == 0
    assert scan_levels(180) == 8 and scan_levels(1) == 0 and scan_levels(2) == 1
    for length in (1, 17, 100, 500):
        assert 1 <= default_chunk(length) <= max(length, 1)


def test_block_is_causal_and_uses_published_names():
    torch.manual_seed(0)
    block = MambaBlock(8, d_state=4).eval()
    names = {k for k, _ in block.named_parameters()}
    assert names == {
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "x_proj.weight",
        "dt_proj.weight",
        "dt_proj.bias",
        "A_log",
        "D",
        "out_proj.weight",
    }
    x = torch.randn(2, 40, 8)
    x2 = x.clone()
    x2[:, 25:] += 5.0
    with torch.no_grad():
        y, y2 = block(x), block(x2)
    torch.testing.assert_close(y[:, :25], y2[:, :25], rtol=0, atol=1e-6)
    assert float((y[:, 25:] - y2[:, 25:]).abs().max()) > 1e-3


def test_every_scan_gives_the_same_model_output():
    torch.manual_seed(1)
    model = build_model("mamba", {**default_hparams("mamba", 3), "d_model": 16}).eval()
    x = torch.randn(2, 180, 10)
    outs = {}
    with torch.no_grad():
        for name in ("sequential", "chunked", "parallel", "unrolled"):
            outs[name] = set_scan(model, name)(x)
    with torch.no_grad():
        outs["chunk 30"] = set_scan(model, "chunked", chunk=30)(x)
        outs["block 30"] = set_scan(model, "unrolled", chunk=30)(x)
    for name in ("chunked", "parallel", "unrolled", "chunk 30", "block 30"):
        torch.testing.assert_close(outs[name], outs["sequential"], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="unknown scan 'fast'"):
        set_scan(model, "fast")
    with pytest.raises(ValueError, match="chunk must be a positive int, got 0"):
        set_scan(model, "chunked", chunk=0)


def test_onnx_export_has_no_loop_and_matches():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(2)
    model = build_model("mamba", {**default_hparams("mamba", 3), "d_model": 8, "d_state": 4}).eval()
    x = torch.randn(2, 180, 10)
    buf = io.BytesIO()
    assert not exporting()
    torch.onnx.export(
        model,
        (x,),
        buf,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}},
        opset_version=17,
    )
    graph = onnx.load_from_string(buf.getvalue()).graph
    ops = [node.op_type for node in graph.node]
    assert "Loop" not in ops and "Scan" not in ops
    assert "Softplus" not in ops  # decomposed in exports (ONNX Runtime's kernel is slow)
    # the unrolled scan was traced: one multiply-add per step, decays exponentiated per
    # block of 12 steps (the sequential form would add a Gather per step)
    assert ops.count("Add") >= 179 and ops.count("Exp") < 60, (ops.count("Add"), ops.count("Exp"))
    assert ops.count("Gather") < 10  # shape arithmetic only, not one per step
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 180, 10)
    with torch.no_grad():
        ref = model(x3).numpy()
    np.testing.assert_allclose(sess.run(None, {"x": x3.numpy()})[0], ref, rtol=0, atol=1e-5)


@pytest.mark.gpu
def test_cuda_kernels_match_the_pure_torch_block():
    pytest.importorskip("mamba_ssm")
    torch.manual_seed(3)
    block = MambaBlock(32, d_state=16).eval()
    x = torch.randn(4, 180, 32)
    with torch.no_grad():
        ref = block(x)
        y = block.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("d_conv", [1, 2, 4])
def test_causal_conv_equals_the_padded_conv1d(d_conv):
    torch.manual_seed(4)
    block = MambaBlock(8, d_state=4, d_conv=d_conv)
    x = torch.randn(3, 33, 16)  # (B, L, E)
    with torch.no_grad():
        ref = block.conv1d(x.transpose(1, 2))[..., :33].transpose(1, 2)
        torch.testing.assert_close(block._causal_conv(x), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_sequential_block_sizes_agree(block):
    args = scan_args(2, 50, seed=5)
    torch.testing.assert_close(
        selective_scan_sequential(*args, block=block), naive_scan(*args), rtol=0, atol=1e-10
    )


def test_gradients_agree_between_scans():
    """Training runs the sequential scan in eager mode: its gradients must be right too."""
    grads = {}
    for name in ("sequential", "chunked", "parallel", "unrolled"):
        args = [a.clone().requires_grad_(True) for a in scan_args(2, 30, seed=6)]
        SCANS[name](*args).square().sum().backward()
        grads[name] = [a.grad for a in args]
    for name in ("chunked", "parallel", "unrolled"):
        for got, ref in zip(grads[name], grads["sequential"]):
            torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
