"""A pure-PyTorch Mamba (S6) block with mamba_ssm's parameter names.

The published Gait2Hip-60 Mamba used ``mamba_ssm.Mamba`` (CUDA only). This block has the same
parameters (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``),
so the published state_dict loads with ``strict=True``, and computes the same function:

    x, z   = in_proj(u).chunk(2)                       # (B, L, E) each, E = expand * d_model
    x      = silu(causal depthwise conv1d(x))          # pad d_conv-1 on the left, keep L
    dt,B,C = x_proj(x).split(dt_rank, d_state, d_state)
    dt     = softplus(dt_proj(dt))                     # (B, L, E)
    A      = -exp(A_log)                               # (E, N)
    h_t    = exp(dt_t A) * h_{t-1} + dt_t B_t x_t      # (B, E, N) per step
    y_t    = C_t . h_t + D x_t
    out    = out_proj(y * silu(z))

The recurrence is evaluated by :func:`selective_scan_parallel`, a log-depth (Hillis-Steele)
associative scan with no Python loop over time: ceil(log2 L) levels of shift + multiply + add.
It runs fast on CPU and exports to ONNX as plain tensor ops (no Loop/Scan), which TensorRT
handles well. :func:`selective_scan_sequential` is the step-by-step oracle used in tests.
On CUDA, when ``mamba_ssm`` (and optionally ``causal_conv1d``) are importable, the block uses
their fused kernels instead (same parameters, same maths).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MambaBlock", "selective_scan_parallel", "selective_scan_sequential", "scan_levels",
    "cuda_kernels_available",
]


def scan_levels(length: int) -> int:
    """Number of Hillis-Steele levels for a sequence of ``length`` steps: ceil(log2 L)."""
    return 0 if length <= 1 else math.ceil(math.log2(length))


def _shift_right(t: torch.Tensor, s: int, fill: float) -> torch.Tensor:
    """Shift ``t`` (B, L, ...) by ``s`` steps along dim 1, filling the first s with ``fill``."""
    # pad spec runs from the last dim backwards: zeros for every dim after dim 1
    pad = [0, 0] * (t.dim() - 2) + [s, 0]
    return F.pad(t[:, : t.shape[1] - s], pad, value=fill)  # (B, L, ...)


def associative_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve h_t = a_t * h_{t-1} + b_t (h_{-1} = 0) along dim 1 in ceil(log2 L) levels.

    a, b: (B, L, ...). Pairs compose as (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2); after the
    level with shift s each position holds the composition of the last 2s steps.
    """
    length = a.shape[1]
    s = 1
    while s < length:  # unrolled at trace time: the graph has ceil(log2 L) levels
        b = a * _shift_right(b, s, 0.0) + b  # (B, L, ...)
        if 2 * s < length:  # the last level does not need the decays any more
            a = a * _shift_right(a, s, 1.0)  # (B, L, ...)
        s *= 2
    return b


def _scan_inputs(u, delta, A, B):
    """Per-step decays and inputs of the recurrence, both (B, L, E, N)."""
    decay = torch.exp(delta.unsqueeze(-1) * A)  # (B, L, E, 1) * (E, N) -> (B, L, E, N)
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # (B, L, E, 1) * (B, L, 1, N)
    return decay, drive


def selective_scan_parallel(u, delta, A, B, C, D):
    """Selective scan, log-depth parallel form.

    u, delta: (B, L, E) (delta already softplus-ed); A: (E, N); B, C: (B, L, N); D: (E,).
    Returns y: (B, L, E).
    """
    decay, drive = _scan_inputs(u, delta, A, B)  # (B, L, E, N) each
    h = associative_scan(decay, drive)  # (B, L, E, N)
    y = torch.matmul(h, C.unsqueeze(-1)).squeeze(-1)  # (B, L, E, N) @ (B, L, N, 1) -> (B, L, E)
    return y + u * D


def selective_scan_sequential(u, delta, A, B, C, D):
    """Selective scan, one step at a time (the test oracle; same arguments as the parallel)."""
    decay, drive = _scan_inputs(u, delta, A, B)  # (B, L, E, N)
    h = torch.zeros_like(drive[:, 0])  # (B, E, N)
    ys = []
    for t in range(u.shape[1]):
        h = decay[:, t] * h + drive[:, t]  # (B, E, N)
        ys.append(torch.matmul(h, C[:, t].unsqueeze(-1)).squeeze(-1))  # (B, E)
    return torch.stack(ys, dim=1) + u * D  # (B, L, E)


def cuda_kernels_available() -> bool:
    """True when mamba_ssm's selective-scan kernel can be imported (it needs CUDA)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA build raising at import
        return False
    return True


class MambaBlock(nn.Module):
    """One Mamba block (no residual, no norm: the caller adds those)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        e, n = self.d_inner, d_state
        self.in_proj = nn.Linear(d_model, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(e, self.dt_rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, e, bias=True)
        # S4D-real initialisation, as mamba_ssm (only matters when training from scratch)
        a = torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1)  # (E, N)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = nn.Linear(e, d_model, bias=False)
        self.use_cuda_kernels = True  # set False to force the pure-torch path on CUDA

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, L, d_model) -> (B, L, d_model)."""
        if u.is_cuda and self.use_cuda_kernels and cuda_kernels_available():
            return self._forward_cuda(u)
        length = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, L, E) each
        x = self.conv1d(x.transpose(1, 2))[..., :length]  # (B, E, L): causal, first L kept
        x = F.silu(x).transpose(1, 2)  # (B, L, E)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.softplus(self.dt_proj(dt))  # (B, L, E)
        A = -torch.exp(self.A_log.float())  # (E, N)
        y = selective_scan_parallel(x, dt, A, B, C, self.D.float())  # (B, L, E)
        return self.out_proj(y * F.silu(z))  # (B, L, d_model)

    def _forward_cuda(self, u: torch.Tensor) -> torch.Tensor:
        """The same computation through mamba_ssm's fused kernels (channels-first layout)."""
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        length = u.shape[1]
        xz = self.in_proj(u).transpose(1, 2)  # (B, 2E, L)
        x, z = xz.chunk(2, dim=1)  # (B, E, L) each
        weight = self.conv1d.weight.squeeze(1)  # (E, d_conv)
        try:
            from causal_conv1d import causal_conv1d_fn
        except Exception:
            causal_conv1d_fn = None
        if causal_conv1d_fn is not None:
            x = causal_conv1d_fn(x.contiguous(), weight, self.conv1d.bias, activation="silu")
        else:
            x = F.silu(self.conv1d(x)[..., :length])  # (B, E, L)
        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], -1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2).contiguous()  # (B, E, L), no bias
        y = selective_scan_fn(
            x.contiguous(), dt, -torch.exp(self.A_log.float()),
            B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(),  # (B, N, L)
            self.D.float(), z=z.contiguous(), delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )  # (B, E, L)
        return self.out_proj(y.transpose(1, 2))  # (B, L, d_model)
