"""Click options shared by several commands."""

from __future__ import annotations

import click

from g2h_edge.engines.base import COMPILE_MODES, TORCH_PRECISIONS

__all__ = ["torch_engine_options"]


def torch_engine_options(f):
    """``--torch-precision`` and ``--torch-compile`` (keyword arguments ``torch_precision``,
    ``torch_compile``) for commands that load ``.pt`` engines."""
    f = click.option(
        "--torch-compile",
        type=click.Choice(COMPILE_MODES),
        default=None,
        help=".pt Transformer (and fp32 Mamba) engines: torch.compile (needs g++; compiled before use).",
    )(f)
    return click.option(
        "--torch-precision",
        type=click.Choice(TORCH_PRECISIONS),
        default=None,
        help=".pt engines: fp32 or bf16 (CPUs with AVX-512 BF16/AMX).",
    )(f)
