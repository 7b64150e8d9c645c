"""Architectures: published names and shapes, output shapes, hyper-parameter checks."""

from __future__ import annotations

import pytest
import torch

from g2h_edge.errors import ModelError
from g2h_edge.models import ARCHS, build_model, default_hparams


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("d_out", [14, 3])
def test_output_shape(arch, d_out):
    hp = default_hparams(arch, d_out)
    assert hp["T"] == 180 and hp["d_in"] == 10 and hp["d_out"] == d_out
    model = build_model(arch, hp).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 180, 10)).shape == (2, 180, d_out)


@pytest.mark.parametrize(
    "arch, key, shape",
    [
        ("transformer", "pos_encoder.pos_embed.weight", (500, 128)),
        ("transformer", "encoder.layers.1.self_attn.in_proj_weight", (384, 128)),
        ("transformer", "encoder.layers.0.linear1.weight", (256, 128)),
        ("transformer", "output_proj.weight", (14, 128)),
        ("lstm", "lstm.weight_hh_l1", (512, 128)),
        ("lstm", "fc.weight", (14, 128)),
        ("mamba", "blocks.1.A_log", (256, 16)),
        ("mamba", "blocks.0.x_proj.weight", (40, 256)),
        ("mamba", "blocks.0.conv1d.weight", (256, 1, 4)),
        ("mamba", "norm.weight", (128,)),
    ],
)
def test_published_parameter_names(arch, key, shape):
    sd = build_model(arch, default_hparams(arch, 14)).state_dict()
    assert tuple(sd[key].shape) == shape


def test_transformer_is_post_norm_relu():
    layer = build_model("transformer", default_hparams("transformer", 3)).encoder.layers[0]
    assert layer.norm_first is False and layer.activation_relu_or_gelu == 1


BAD = [
    ("cnn", {}, "unknown architecture 'cnn'"),
    ("lstm", {"hidden": 8, "layers": 2, "dropout": 0.1, "d_in": 10, "T": 180}, r"missing \['d_out'\]"),
    ("lstm", {**default_hparams("lstm", 3), "bidirectional": True}, r"unknown \['bidirectional'\]"),
    ("lstm", {**default_hparams("lstm", 3), "hidden": -4}, r"hparams\['hidden'\] = -4"),
    ("lstm", {**default_hparams("lstm", 3), "layers": True}, r"hparams\['layers'\] = True"),
    ("mamba", {**default_hparams("mamba", 3), "dropout": 1.0}, r"hparams\['dropout'\] = 1.0"),
    ("mamba", {**default_hparams("mamba", 3), "d_state": 2.5}, r"hparams\['d_state'\] = 2.5"),
    ("transformer", {**default_hparams("transformer", 3), "nhead": 3}, "not divisible by nhead"),
    ("transformer", {**default_hparams("transformer", 3), "T": 600}, "exceeds max_len 500"),
    ("lstm", [128, 2], "hparams must be a dict"),
]


@pytest.mark.parametrize("arch, hparams, match", BAD)
def test_bad_hparams(arch, hparams, match):
    with pytest.raises(ModelError, match=match):
        build_model(arch, hparams)
