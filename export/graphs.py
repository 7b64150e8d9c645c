"""Export-only forms of a bundle's model: the same function, written for a fast static graph.

``graph="generic"`` traces the bundle's own :class:`~g2h_edge.models.StandardizedModel`.
``graph="static"`` (the default for the Transformer) traces :class:`StaticTransformer`, which
computes the same outputs from the same weights with the cycle length T fixed:

- the degree standardisation and the learned positions are folded into ``input_proj``
  (W' = W / std, b'(t) = b - W (mean / std) + pos(t));
- the attention scale 1/sqrt(d_head) is folded into the query rows of ``in_proj``;
- every reshape uses the constant T and -1 for the batch, so the graph carries no
  Shape/Gather/Concat/Unsqueeze arithmetic (the generic TorchScript trace of
  ``nn.MultiheadAttention`` spends about a third of its ONNX Runtime time on such ops).

The op set stays plain ONNX (MatMul, Add, Reshape, Transpose, Gather, Softmax,
LayerNormalization, Relu), so the TensorRT op check and the 1e-4 parity check apply unchanged.
LSTM and Mamba export their generic form ("static" falls back to it).
"""
from __future__ import annotations

import math

from g2h_edge.errors import ExportError

__all__ = ["GRAPHS", "export_module", "StaticTransformer"]

GRAPHS = ("static", "generic")


def export_module(bundle, graph: str = "static", *, module=None):
    """(torch module to trace, graph form used) for ``bundle`` asked in the ``graph`` form
    (see module doc); ``module`` is the bundle's own model when the caller has built it."""
    if graph not in GRAPHS:
        raise ExportError(f"graph {graph!r} is not one of {list(GRAPHS)}",
                          reason="bad_argument")
    module = bundle.module() if module is None else module
    if graph == "static" and bundle.arch == "transformer":
        return StaticTransformer(module, bundle.T).eval(), "static"
    return module, "generic"


def _static_transformer_cls():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class _StaticTransformer(nn.Module):
        def __init__(self, std_model, T: int):
            super().__init__()
            core = std_model.core
            mean = std_model.mean.detach().double()
            std = std_model.std.detach().double()
            w_in = core.input_proj.weight.detach().double()                 # (D, 10)
            b_in = core.input_proj.bias.detach().double()                   # (D,)
            pos = core.pos_encoder.pos_embed.weight.detach().double()[:T]   # (T, D)
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
                w_qkv = att.in_proj_weight.detach().double().clone()       # (3D, D)
                b_qkv = att.in_proj_bias.detach().double().clone()         # (3D,)
                w_qkv[: self.D] *= scale
                b_qkv[: self.D] *= scale
                tensors = {
                    "w_qkv": w_qkv.t(), "b_qkv": b_qkv,
                    "w_o": att.out_proj.weight.detach().t(), "b_o": att.out_proj.bias,
                    "w_1": layer.linear1.weight.detach().t(), "b_1": layer.linear1.bias,
                    "w_2": layer.linear2.weight.detach().t(), "b_2": layer.linear2.bias,
                    "g_1": layer.norm1.weight, "be_1": layer.norm1.bias,
                    "g_2": layer.norm2.weight, "be_2": layer.norm2.bias}
                for key, value in tensors.items():
                    self.register_buffer(f"l{i}_{key}",
                                         value.detach().float().contiguous().clone())
            self.register_buffer("w_out", core.output_proj.weight.detach().t().contiguous()
                                 .clone())                                   # (D, K)
            self.register_buffer("b_out", core.output_proj.bias.detach().clone())  # (K,)

        def forward(self, x):
            T, D, H, dh = self.T, self.D, self.H, self.dh
            h = x @ self.w_in + self.b_in                                   # (B, T, D)
            for i in range(self.n_layers):
                p = lambda key: getattr(self, f"l{i}_{key}")  # noqa: E731
                qkv = (h @ p("w_qkv") + p("b_qkv")).reshape(-1, T, 3, H, dh)
                qkv = qkv.permute(2, 0, 3, 1, 4)                            # (3, B, H, T, dh)
                q, k, v = qkv[0], qkv[1], qkv[2]
                a = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v     # (B, H, T, dh)
                a = a.transpose(1, 2).reshape(-1, T, D) @ p("w_o") + p("b_o")
                h = F.layer_norm(h + a, (D,), p("g_1"), p("be_1"), self.eps[i])
                f = torch.relu(h @ p("w_1") + p("b_1")) @ p("w_2") + p("b_2")
                h = F.layer_norm(h + f, (D,), p("g_2"), p("be_2"), self.eps2[i])
            return h @ self.w_out + self.b_out                              # (B, T, K)

    return _StaticTransformer


def StaticTransformer(std_model, T: int):
    """A :class:`~g2h_edge.models.StandardizedModel` Transformer rewritten for a static export
    (degrees in, per kg out; the input must have exactly T frames)."""
    core = getattr(std_model, "core", None)
    enc = getattr(core, "encoder", None)
    if enc is None or not hasattr(core, "input_proj"):
        raise ExportError("the static graph needs a Transformer bundle", reason="bad_argument")
    for layer in enc.layers:
        if getattr(layer, "norm_first", False) or layer.activation_relu_or_gelu != 1:
            raise ExportError("the static graph supports post-norm ReLU encoder layers only; "
                              "export with graph='generic'", reason="bad_argument")
    return _static_transformer_cls()(std_model, T)
