"""Shared fixtures of the training tests: one tiny synthetic cohort and one tiny benchmark run."""

from __future__ import annotations

import json

import pytest

#: tiny versions of the three architectures (same code paths as the published sizes)
TINY = {
    "transformer": {"d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16},
    "lstm": {"hidden": 8, "layers": 1},
    "mamba": {"d_model": 8, "layers": 1, "d_state": 4, "expand": 1},
}
TINY_JSON = json.dumps(TINY)


@pytest.fixture(scope="session")
def tiny_cohort():
    """10 synthetic subjects x 3 cadences x 1 cycle (joint moments): 8 pool + 2 test subjects."""
    from g2h_edge.io.synth import make_cohort

    return make_cohort("jm", 10, seed=3, trials_per_condition=1)


@pytest.fixture(scope="session")
def cohort_file(tiny_cohort, tmp_path_factory):
    from g2h_edge.io import write_gait2hip_npz

    path = tmp_path_factory.mktemp("data") / "tiny_JM.npz"
    write_gait2hip_npz(path, tiny_cohort)
    return path


def run_cli(args):
    """Run ``g2h-edge ARGS`` in-process; returns (exit code, captured output)."""
    from click.testing import CliRunner

    from g2h_edge.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="session")
def cli_run():
    return run_cli


@pytest.fixture(scope="session")
def tiny_hparams():
    return TINY_JSON


@pytest.fixture(scope="session")
def bench_dir(cohort_file, tmp_path_factory):
    """The whole protocol, end to end through the CLI, tiny: 3 models, 2 folds, 1 epoch."""
    out = tmp_path_factory.mktemp("bench")
    code, text = run_cli(
        [
            "benchmark",
            "--data",
            str(cohort_file),
            "--models",
            "lstm,transformer,mamba",
            "--out",
            str(out),
            "--max-epochs",
            "1",
            "--folds",
            "2",
            "--patience",
            "1",
            "--hparams",
            TINY_JSON,
            "--quiet",
        ]
    )
    assert code == 0, text
    return out
