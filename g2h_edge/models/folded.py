"""Bundle models with their constants folded into the weights, for static exports.

:func:`FoldedTransformer` computes exactly what the bundle's
:class:`~g2h_edge.models.StandardizedModel` computes (degrees in, per kg out), from the same
weights, with the cycle length T fixed:

- the degree standardisation and the learned positions are folded into ``input_proj``
  (W' = W / std, b'(t) = b - W (mean / std) + pos(t));
- the attention scale 1/sqrt(d_head) is folded into the query rows of ``in_proj``;
- every reshape uses the constant T and -1 for the batch (no shape arithmetic).

Two attention forms: ``"matmul"`` (softmax(Q Kᵀ) V as plain ops: what the ONNX export
traces, ``g2h_edge.export.graphs``) and ``"sdpa"`` (``F.scaled_dot_product_attention``, the
fused kernel that ``torch.compile`` turns into flash attention on the CPU: what the compiled
torch engine runs).

:func:`FoldedMamba` does the same for a Mamba bundle: the standardisation folded into
``input_proj``, and every block told the constant T and set to the unrolled selective scan,
so the causal convolution and the scan slice and split with constants (what the ONNX export
traces; ≈2 % faster in ONNX Runtime than the generic trace of the same scan).
"""

from __future__ import annotations

import math

from g2h_edge.errors import ModelError

__all__ = ["FoldedTransformer", "FoldedMamba", "ATTENTION_FORMS"]

ATTENTION_FORMS = ("matmul", "sdpa")


def _folded_cls():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class _FoldedTransformer(nn.Module):
        def __init__(self, std_model, T: int, attention: str):
            super().__init__()
            self.sdpa = attention == "sdpa"
            core = std_model.core
            mean = std_model.mean.detach().double()
            std = std_model.std.detach().double()
            w_in = core.input_proj.weight.detach().double()  # (D, 10)
            b_in = core.input_proj.bias.detach().double()  # (D,)
            pos = core.pos_encoder.pos_embed.weight.detach().double()[:T]  # (T, D)
            self.T, self.D = int(T), int(w_in.shape[0])
            self.register_buffer("w_in", (w_in / std).t().float().contiguous())  # (10, D)
            self.register_buffer("b_in", (b_in - w_in @ (mean / std) + pos).float())  # (T, D)
            layers = list(core.encoder.layers)
            self.H = int(layers[0].self_attn.num_heads)
            self.dh = self.D // self.H
            self.n_layers = len(layers)
            self.eps = [float(layer.norm1.eps) for layer in layers]
            self.eps2 = [float(layer.norm2.eps) for layer in layers]
            scale = 1.0 / math.sqrt(self.dh)
            for i, layer in enumerate(layers):
                att = layer.self_attn
                w_qkv = att.in_proj_weight.detach().double().clone()  # (3D, D)
                b_qkv = att.in_proj_bias.detach().double().clone()  # (3D,)
                w_qkv[: self.D] *= scale
                b_qkv[: self.D] *= scale
                tensors = {
                    "w_qkv": w_qkv.t(),
                    "b_qkv": b_qkv,
                    "w_o": att.out_proj.weight.detach().t(),
                    "b_o": att.out_proj.bias,
                    "w_1": layer.linear1.weight.detach().t(),
                    "b_1": layer.linear1.bias,
                    "w_2": layer.linear2.weight.detach().t(),
                    "b_2": layer.linear2.bias,
                    "g_1": layer.norm1.weight,
                    "be_1": layer.norm1.bias,
                    "g_2": layer.norm2.weight,
                    "be_2": layer.norm2.bias,
                }
                for key, value in tensors.items():
                    self.register_buffer(f"l{i}_{key}", value.detach().float().contiguous().clone())
            self.register_buffer("w_out", core.output_proj.weight.detach().t().contiguous().clone())  # (D, K)
            self.register_buffer("b_out", core.output_proj.bias.detach().clone())  # (K,)

        def forward(self, x):
            T, D, H, dh = self.T, self.D, self.H, self.dh
            h = x @ self.w_in + self.b_in  # (B, T, D)
            for i in range(self.n_layers):

                def p(key, i=i):
                    return getattr(self, f"l{i}_{key}")

                qkv = (h @ p("w_qkv") + p("b_qkv")).reshape(-1, T, 3, H, dh)
                qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
                q, k, v = qkv[0], qkv[1], qkv[2]
                if self.sdpa:  # fused (flash) attention kernel; the scale is in w_qkv
                    a = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B, H, T, dh)
                else:
                    a = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v  # (B, H, T, dh)
                a = a.transpose(1, 2).reshape(-1, T, D) @ p("w_o") + p("b_o")
                h = F.layer_norm(h + a, (D,), p("g_1"), p("be_1"), self.eps[i])
                f = torch.relu(h @ p("w_1") + p("b_1")) @ p("w_2") + p("b_2")
                h = F.layer_norm(h + f, (D,), p("g_2"), p("be_2"), self.eps2[i])
            return h @ self.w_out + self.b_out  # (B, T, K)

    return _FoldedTransformer


def FoldedTransformer(std_model, T: int, attention: str = "matmul"):
    """``std_model`` (a Transformer :class:`~g2h_edge.models.StandardizedModel`) with its
    constants folded (see module doc); the input must have exactly T frames."""
    if attention not in ATTENTION_FORMS:
        raise ModelError(
            f"attention {attention!r} is not one of {list(ATTENTION_FORMS)}", reason="bad_argument"
        )
    core = getattr(std_model, "core", None)
    enc = getattr(core, "encoder", None)
    if enc is None or not hasattr(core, "input_proj"):
        raise ModelError("the folded form needs a Transformer bundle", reason="bad_argument")
    for layer in enc.layers:
        if getattr(layer, "norm_first", False) or layer.activation_relu_or_gelu != 1:
            raise ModelError(
                "the folded form supports post-norm ReLU encoder layers only", reason="bad_argument"
            )
    return _folded_cls()(std_model, T, attention).eval()


def FoldedMamba(std_model, T: int):
    """``std_model`` (a Mamba :class:`~g2h_edge.models.StandardizedModel`) as a copy of its
    core that takes degrees (standardisation folded into ``input_proj``) and whose blocks run
    the unrolled scan with the constant length T (see module doc); the input must have
    exactly T frames. The bundle's own model is not changed."""
    import copy

    import torch

    from g2h_edge.models.mamba import MambaBlock

    core = getattr(std_model, "core", None)
    if (
        core is None
        or not hasattr(core, "blocks")
        or not hasattr(core, "input_proj")
        or not all(isinstance(block, MambaBlock) for block in core.blocks)
    ):
        raise ModelError("the folded Mamba form needs a Mamba bundle", reason="bad_argument")
    folded = copy.deepcopy(core).eval()
    mean = std_model.mean.detach().double()
    std = std_model.std.detach().double()
    w = core.input_proj.weight.detach().double()  # (D, 10)
    b = core.input_proj.bias.detach().double()  # (D,)
    with torch.no_grad():
        folded.input_proj.weight.copy_((w / std).float())
        folded.input_proj.bias.copy_((b - w @ (mean / std)).float())
    for block in folded.blocks:
        block.static_len, block.scan = int(T), "unrolled"
    return folded
