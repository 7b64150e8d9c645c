"""The three published Gait2Hip-60 architectures, with the published parameter names.

Every model maps STANDARDISED inputs (B, T, 10) to per-kg outputs (B, T, K); the
standardisation lives in :class:`g2h_edge.models.bundle.StandardizedModel`.
"""

from __future__ import annotations

import torch
from torch import nn

from g2h_edge.errors import ModelError
from g2h_edge.models.mamba import MambaBlock
from g2h_edge.schema import N_IN
from g2h_edge.schema import T as T_CYCLE

__all__ = [
    "ARCHS",
    "build_model",
    "default_hparams",
    "validate_hparams",
    "TransformerRegressor",
    "LSTMRegressor",
    "MambaRegressor",
]


class PositionalEmbedding(nn.Module):
    """Learned positional embedding added at positions 0..L-1 (``pos_embed``: (max_len, D))."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.pos_embed = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos_embed.weight[: x.shape[1]].unsqueeze(0)  # (B, L, D)


class TransformerRegressor(nn.Module):
    """input_proj -> + learned positions -> post-norm ReLU TransformerEncoder -> output_proj."""

    def __init__(self, d_in, d_out, d_model, nhead, num_layers, dim_feedforward, dropout, max_len):
        super().__init__()
        self.input_proj = nn.Linear(d_in, d_model)
        self.pos_encoder = PositionalEmbedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, activation="relu", batch_first=True, norm_first=False
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.output_proj = nn.Linear(d_model, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pos_encoder(self.input_proj(x))  # (B, T, D)
        return self.output_proj(self.encoder(h))  # (B, T, K)


class LSTMRegressor(nn.Module):
    """Stacked batch-first LSTM -> per-frame linear head (``lstm``, ``fc``)."""

    def __init__(self, d_in, d_out, hidden, layers, dropout):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.fc = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # (B, T, H)
        return self.fc(h)  # (B, T, K)


class MambaRegressor(nn.Module):
    """input_proj -> residual Mamba blocks (x + dropout(block(x))) -> LayerNorm -> output_proj."""

    def __init__(self, d_in, d_out, d_model, d_state, d_conv, expand, layers, dropout, dt_rank=None):
        super().__init__()
        self.input_proj = nn.Linear(d_in, d_model)
        self.blocks = nn.ModuleList(
            MambaBlock(d_model, d_state, d_conv, expand, dt_rank) for _ in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.output_proj = nn.Linear(d_model, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_proj(x)  # (B, T, D)
        for block in self.blocks:
            h = h + self.dropout(block(h))  # (B, T, D)
        return self.output_proj(self.norm(h))  # (B, T, K)


# arch -> (published hyper-parameters without d_out, optional keys)
_DEFAULTS: dict[str, dict] = {
    "transformer": {
        "d_model": 128,
        "nhead": 4,
        "num_layers": 2,
        "dim_feedforward": 256,
        "dropout": 0.1,
        "d_in": N_IN,
        "T": T_CYCLE,
        "max_len": 500,
    },
    "lstm": {"hidden": 128, "layers": 2, "dropout": 0.1, "d_in": N_IN, "T": T_CYCLE},
    "mamba": {
        "d_model": 128,
        "d_state": 16,
        "d_conv": 4,
        "expand": 2,
        "layers": 2,
        "dropout": 0.1,
        "d_in": N_IN,
        "T": T_CYCLE,
    },
}
_OPTIONAL: dict[str, set] = {"transformer": set(), "lstm": set(), "mamba": {"dt_rank"}}
ARCHS: tuple[str, ...] = tuple(_DEFAULTS)


def default_hparams(arch: str, d_out: int) -> dict:
    """The published hyper-parameters of ``arch`` with ``d_out`` outputs (14 mf, 3 jm)."""
    _check_arch(arch)
    return {**_DEFAULTS[arch], "d_out": int(d_out)}


def _check_arch(arch) -> None:
    if arch not in _DEFAULTS:
        raise ModelError(f"unknown architecture {arch!r}: use one of {list(ARCHS)}", reason="unknown_arch")


def validate_hparams(arch: str, hparams: dict) -> dict:
    """Check ``hparams`` has exactly the keys of ``arch`` with positive sizes; returns a copy."""
    _check_arch(arch)
    if not isinstance(hparams, dict):
        raise ModelError(f"hparams must be a dict, got {type(hparams).__name__}", reason="bad_hparams")
    required = set(_DEFAULTS[arch]) | {"d_out"}
    missing = sorted(required - set(hparams))
    unknown = sorted(set(hparams) - required - _OPTIONAL[arch])
    if missing or unknown:
        raise ModelError(
            f"{arch} hparams: missing {missing}, unknown {unknown}; expected {sorted(required)}",
            reason="bad_hparams",
        )
    for key, value in hparams.items():
        if key == "dropout":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        if not ok:
            raise ModelError(
                f"{arch} hparams[{key!r}] = {value!r} is invalid "
                f"(sizes are positive ints, dropout a float in [0, 1))",
                reason="bad_hparams",
            )
    if arch == "transformer":
        if hparams["d_model"] % hparams["nhead"]:
            raise ModelError(
                f"transformer d_model {hparams['d_model']} is not divisible by nhead {hparams['nhead']}",
                reason="bad_hparams",
            )
        if hparams["T"] > hparams["max_len"]:
            raise ModelError(
                f"transformer T {hparams['T']} exceeds max_len {hparams['max_len']}", reason="bad_hparams"
            )
    return dict(hparams)


def build_model(arch: str, hparams: dict) -> nn.Module:
    """Build an (untrained) ``arch`` model: standardised (B, T, d_in) -> (B, T, d_out)."""
    hp = validate_hparams(arch, hparams)
    if arch == "transformer":
        return TransformerRegressor(
            hp["d_in"],
            hp["d_out"],
            hp["d_model"],
            hp["nhead"],
            hp["num_layers"],
            hp["dim_feedforward"],
            hp["dropout"],
            hp["max_len"],
        )
    if arch == "lstm":
        return LSTMRegressor(hp["d_in"], hp["d_out"], hp["hidden"], hp["layers"], hp["dropout"])
    return MambaRegressor(
        hp["d_in"],
        hp["d_out"],
        hp["d_model"],
        hp["d_state"],
        hp["d_conv"],
        hp["expand"],
        hp["layers"],
        hp["dropout"],
        hp.get("dt_rank"),
    )
