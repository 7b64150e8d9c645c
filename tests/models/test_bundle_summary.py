"""The optional ``input_summary`` of a bundle: round trip, metadata, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2h_edge.errors import ModelError
from g2h_edge.gait.quality import input_summary
from g2h_edge.models import Bundle, build_model, bundle_metadata, default_hparams, load_bundle, save_bundle
from g2h_edge.schema import IN_COLS, JM_COLS


def _bundle(summary=None) -> Bundle:
    torch.manual_seed(0)
    hp = {**default_hparams("lstm", 3), "hidden": 8, "layers": 1}
    return Bundle(
        name="s",
        arch="lstm",
        hparams=hp,
        state_dict=build_model("lstm", hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=JM_COLS,
        mean=np.zeros(10),
        std=np.ones(10),
        task="jm",
        unit="Nm/kg",
        T=180,
        provenance={},
        synthetic=True,
        input_summary=summary,
    )


def test_summary_round_trip_and_metadata(tmp_path):
    x = np.random.default_rng(0).normal(0, 10, (6, 180, 10))
    s = input_summary(x)
    b = load_bundle(save_bundle(_bundle(s), tmp_path / "b.pt"))
    assert b.input_summary == s and bundle_metadata(b)["input_summary"] == s
    plain = load_bundle(save_bundle(_bundle(), tmp_path / "p.pt"))
    assert plain.input_summary is None and "input_summary" not in bundle_metadata(plain)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.update(mean=s["mean"][:3]), "input_summary mean/sd"),
        (lambda s: s.update(sd=np.zeros((18, 10)).tolist()), "sd > 0"),
        (lambda s: s.update(mean=np.zeros((18, 10))), "holds a ndarray"),
        (lambda s: s.pop("n_bins"), "must hold"),
    ],
)
def test_bad_summaries_are_refused(edit, match):
    s = input_summary(np.random.default_rng(1).normal(0, 10, (4, 180, 10)))
    edit(s)
    with pytest.raises(ModelError, match=match):
        _bundle(s)
