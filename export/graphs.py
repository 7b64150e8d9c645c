"""Export forms of a bundle's model: the same function, written for a fast static graph.

``graph="generic"`` traces the bundle's own :class:`~g2h_edge.models.StandardizedModel`.
``graph="static"`` (the default) traces, for a Transformer, :func:`StaticTransformer`
(:mod:`g2h_edge.models.folded`), which computes the same outputs from the same weights with
the cycle length T fixed:

- the degree standardisation and the learned positions are folded into ``input_proj``
  (W' = W / std, b'(t) = b - W (mean / std) + pos(t));
- the attention scale 1/sqrt(d_head) is folded into the query rows of ``in_proj``;
- every reshape uses the constant T and -1 for the batch, so the graph carries no
  Shape/Gather/Concat/Unsqueeze arithmetic (the generic TorchScript trace of
  ``nn.MultiheadAttention`` spends about a third of its ONNX Runtime time on such ops).

The op set stays plain ONNX (MatMul, Add, Reshape, Transpose, Gather, Softmax,
LayerNormalization, Relu), so the TensorRT op check and the 1e-4 parity check apply unchanged.
For a Mamba it traces :func:`~g2h_edge.models.folded.FoldedMamba` (standardisation folded
into ``input_proj``, constant T in the causal conv and the unrolled selective scan). The LSTM
exports its generic form ("static" falls back to it).
"""

from __future__ import annotations

from g2h_edge.errors import ExportError, ModelError

__all__ = ["GRAPHS", "export_module", "StaticTransformer"]

GRAPHS = ("static", "generic")


def export_module(bundle, graph: str = "static", *, module=None):
    """(torch module to trace, graph form used) for ``bundle`` asked in the ``graph`` form
    (see module doc); ``module`` is the bundle's own model when the caller has built it."""
    if graph not in GRAPHS:
        raise ExportError(f"graph {graph!r} is not one of {list(GRAPHS)}", reason="bad_argument")
    module = bundle.module() if module is None else module
    if graph == "static" and bundle.arch == "transformer":
        return StaticTransformer(module, bundle.T).eval(), "static"
    if graph == "static" and bundle.arch == "mamba":
        from g2h_edge.models.folded import FoldedMamba

        return FoldedMamba(module, bundle.T), "static"
    return module, "generic"


def StaticTransformer(std_model, T: int):
    """A :class:`~g2h_edge.models.StandardizedModel` Transformer rewritten for a static export
    (:func:`g2h_edge.models.folded.FoldedTransformer` with plain-op attention; degrees in,
    per kg out; the input must have exactly T frames)."""
    from g2h_edge.models.folded import FoldedTransformer

    try:
        return FoldedTransformer(std_model, T, attention="matmul")
    except ModelError as exc:
        raise ExportError(f"{exc}; export with graph='generic'", reason="bad_argument") from None
