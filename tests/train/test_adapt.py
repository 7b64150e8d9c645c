"""Lab adaptation (``train --init``) and evaluation with any speed label / ``--side L``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from g2h_edge.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def base_bundle(cohort_file, cli_run, tiny_hparams, tmp_path_factory):
    """A tiny Transformer trained 1 epoch on the synthetic cohort (the bundle to adapt)."""
    out = tmp_path_factory.mktemp("base") / "Transformer_JM60.pt"
    code, text = cli_run(
        [
            "train",
            "--data",
            cohort_file,
            "--model",
            "transformer",
            "-o",
            out,
            "--epochs",
            "1",
            "--hparams",
            tiny_hparams,
            "--quiet",
        ]
    )
    assert code == 0, text
    return out


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory):
    """4 'lab' subjects (other seed), one cycle per cadence."""
    from g2h_edge.io import write_gait2hip_npz
    from g2h_edge.io.synth import make_cohort

    path = tmp_path_factory.mktemp("lab") / "lab_JM.npz"
    write_gait2hip_npz(path, make_cohort("jm", 4, seed=7, trials_per_condition=1))
    return path


def test_train_init_finetunes_and_keeps_standardisation(base_bundle, lab_file, cli_run, tmp_path):
    from g2h_edge.models import load_bundle

    out = tmp_path / "adapted.pt"
    code, text = cli_run(
        ["train", "--init", base_bundle, "--data", lab_file, "-o", out, "--epochs", "3", "--lr", "1e-3"]
    )
    assert code == 0, text
    base, new = load_bundle(base_bundle), load_bundle(out)
    assert load_bundle(base_bundle).name == "Transformer_JM-10subj"  # own, not "...60"
    assert new.name == "Transformer_JM-adapted-4subj" and "60" not in new.name
    assert new.arch == base.arch and new.hparams == base.hparams
    np.testing.assert_array_equal(new.mean, base.mean)  # standardisation kept
    np.testing.assert_array_equal(new.std, base.std)
    changed = [k for k in base.state_dict if not torch.equal(base.state_dict[k], new.state_dict[k])]
    assert changed, "fine-tuning changed no weight"
    prov = new.provenance
    assert prov["adapted_from"] == base.name and len(prov["val_subjects"]) == 1
    assert not set(prov["val_subjects"]) & set(prov["train_subjects"])  # subject-grouped
    assert new.synthetic and "SYNTHETIC" in text
    assert new.input_summary["n_cycles"] == 9  # 3 train subjects x 3 cadences


def test_own_model_names():
    from g2h_edge.train.adapt import adapted_name
    from g2h_edge.train.modelling import own_model_name

    assert own_model_name("lstm", "jm", 60) == "LSTM_JM60"
    assert own_model_name("mamba", "mf", 12) == "Mamba_MF-12subj"
    assert adapted_name("LSTM_JM60", 4) == "LSTM_JM-adapted-4subj"
    assert adapted_name("Mamba_MF-12subj", 3) == "Mamba_MF-adapted-3subj"


def test_train_init_refit_standardisation(base_bundle, lab_file, tmp_path):
    from g2h_edge.io import read_gait2hip_npz
    from g2h_edge.models import load_bundle
    from g2h_edge.train.adapt import finetune_data
    from g2h_edge.train.config import TrainConfig

    res = finetune_data(
        load_bundle(base_bundle),
        read_gait2hip_npz(lab_file),
        epochs=1,
        cfg=TrainConfig(),
        refit_standardisation=True,
        val_fraction=0.0,
        name="lab",
    )
    assert res.bundle.name == "lab" and res.val_subjects == ()
    assert not np.allclose(res.bundle.mean, load_bundle(base_bundle).mean)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--holdout"], "drop --holdout"),
        (["--val-fraction", "1.5"], "val-fraction"),
    ],
)
def test_train_init_bad_options(base_bundle, lab_file, tmp_path, cli_run, args, match):
    with pytest.raises(ConfigError, match=match):
        cli_run(["train", "--init", base_bundle, "--data", lab_file, "-o", tmp_path / "x.pt", *args])


def test_finetune_refuses_other_task(base_bundle, tmp_path):
    from g2h_edge.io.synth import make_cohort
    from g2h_edge.models import load_bundle
    from g2h_edge.train.adapt import finetune_data

    with pytest.raises(DataError, match="predicts task 'jm'"):
        finetune_data(load_bundle(base_bundle), make_cohort("mf", 2, seed=1, trials_per_condition=1))


def test_evaluate_custom_speed_labels_and_left_side(base_bundle, tmp_path, cli_run):
    """A file with free-text speed labels is accepted, and --side L mirrors the inputs."""
    from g2h_edge.io import read_gait2hip_npz, write_gait2hip_npz
    from g2h_edge.io.npz import Gait2HipData
    from g2h_edge.io.synth import make_cohort
    from g2h_edge.models import load_bundle
    from g2h_edge.schema import mirror_sides
    from g2h_edge.train.metrics import speed_table

    d = make_cohort("jm", 3, seed=5, trials_per_condition=1)
    labels = np.array(["self-selected" if s == "med" else "1.6 m/s" for s in d.speed_label])
    ext = dataclasses.replace(d, speed_label=labels)
    path = tmp_path / "ext.npz"
    with pytest.raises(DataError, match="unknown speed_label"):
        write_gait2hip_npz(path, ext)  # the strict schema still refuses
    np.savez(
        path,
        X=ext.X,
        Y=ext.Y,
        in_cols=np.array(ext.in_cols),
        out_cols=np.array(ext.out_cols),
        subject_id=ext.subject_id,
        height_m=ext.height_m,
        weight_kg=ext.weight_kg,
        speed_label=labels,
    )
    assert isinstance(read_gait2hip_npz(path, any_speed_label=True), Gait2HipData)
    for side in ("R", "L"):
        out = tmp_path / side
        code, text = cli_run(
            ["evaluate", "--model", base_bundle, "--data", path, "--out", out, "--side", side]
        )
        assert code == 0, text
        assert "self-selected" in text and "1.6 m/s" in text and f"side {side}" in text
        b = load_bundle(base_bundle)
        x = mirror_sides(ext.X) if side == "L" else ext.X
        with torch.no_grad():
            pred = b.module()(torch.as_tensor(np.asarray(x, np.float32))).numpy()
        rows = speed_table(ext.Y / ext.weight_kg[:, None, None], pred, ext.subject_id, labels)
        name = b.name
        from g2h_edge.train import report

        written = report.read_csv(out / f"{name}_external_metrics_by_speed_mean.csv")
        assert [r["speed"] for r in written] == ["overall", "1.6 m/s", "self-selected"]
        assert float(written[0]["subject_mean_RMSE"]) == pytest.approx(rows[0]["subject_mean_RMSE"], rel=1e-4)


def test_evaluate_an_ensemble(base_bundle, lab_file, cli_run, tmp_path):
    """--ensemble A,B scores the mean of the members' predictions."""
    from g2h_edge.io import read_gait2hip_npz
    from g2h_edge.models import load_bundle
    from g2h_edge.train.metrics import pooled_metrics

    other = tmp_path / "other.pt"
    code, text = cli_run(
        [
            "train",
            "--init",
            base_bundle,
            "--data",
            lab_file,
            "-o",
            other,
            "--epochs",
            "1",
            "--lr",
            "1e-2",
            "--val-fraction",
            "0",
        ]
    )
    assert code == 0, text
    code, text = cli_run(
        ["evaluate", "--ensemble", f"{base_bundle},{other}", "--data", lab_file, "--out", tmp_path / "ens"]
    )
    assert code == 0, text
    d = read_gait2hip_npz(lab_file)
    with torch.no_grad():
        preds = [load_bundle(p).module()(torch.as_tensor(d.X)).numpy() for p in (base_bundle, other)]
    want = pooled_metrics(d.Y / d.weight_kg[:, None, None], np.mean(preds, 0))
    import json

    rec = json.loads(next((tmp_path / "ens").glob("*_external_run.json")).read_text())
    assert rec["overall_pooled"]["RMSE"] == pytest.approx(want["RMSE"], rel=1e-4)
    code, text = cli_run(["evaluate", "--data", lab_file, "--out", tmp_path / "x"])
    assert code != 0 and "exactly one of --model" in text
