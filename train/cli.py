"""``g2h-edge benchmark``, ``g2h-edge train``, ``g2h-edge evaluate`` (thin: parse, configure, call)."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["benchmark_cmd", "train_cmd", "evaluate_cmd"]

_DEVICE = click.Choice(["cpu", "cuda"])


def _load_data(path: str):
    from g2h_edge.io import read_gait2hip_npz
    from g2h_edge.models import file_sha256

    return read_gait2hip_npz(path), file_sha256(path)


def _config(device, hparams_json, **changes):
    from g2h_edge.errors import ConfigError
    from g2h_edge.train.config import TrainConfig

    hp = {}
    if hparams_json:
        try:
            hp = json.loads(hparams_json)
        except ValueError as exc:
            raise ConfigError(
                f'--hparams is not valid JSON ({exc}): e.g. \'{{"transformer": {{"d_model": 32}}}}\''
            ) from None
    changes = {k: v for k, v in changes.items() if v is not None}
    return TrainConfig(device=device, hparams=hp, **changes)


def _echo_rows(rows) -> None:
    for r in rows:
        click.echo(
            f"  {r['speed']:>8}: n={r['n_trials']:4d} subjects={r['n_subjects']:3d}  "
            f"RMSE={r['subject_mean_RMSE']:.4f}  MAE={r['subject_mean_MAE']:.4f}  "
            f"pooled R2={r['subject_mean_R2']:.4f}  "
            f"channel R2={r['subject_mean_R2_channel_mean']:.4f}"
        )


@click.command("benchmark")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Gait2Hip NPZ (Gait2Hip_MF60.npz or Gait2Hip_JM60.npz, or the same schema).",
)
@click.option(
    "--models", default="lstm,transformer,mamba", show_default=True, help="Comma-separated architectures."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder (CSV, figures, bundles); a rerun resumes finished models.",
)
@click.option("--device", type=_DEVICE, default="cpu", show_default=True)
@click.option("--max-epochs", type=int, default=None, help="Epoch cap per fold [300].")
@click.option("--folds", type=int, default=None, help="GroupKFold folds on the pool [5].")
@click.option("--patience", type=int, default=None, help="Early-stopping patience in epochs [30].")
@click.option(
    "--hparams",
    "hparams_json",
    default=None,
    help='JSON overrides per architecture, e.g. \'{"transformer": {"d_model": 32}}\'.',
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def benchmark_cmd(data_path, models, out_dir, device, max_epochs, folds, patience, hparams_json, quiet):
    """Reproduce the Gait2Hip-60 protocol on one task file: subject hold-out, K-fold
    GroupKFold with early stopping, final fit on the pool, test metrics, Wilcoxon/Holm,
    figures and one model bundle per architecture."""
    from g2h_edge.train.benchmark import parse_archs, run_benchmark

    archs = parse_archs(models)
    cfg = _config(device, hparams_json, max_epochs=max_epochs, folds=folds, patience_epochs=patience)
    data, sha = _load_data(data_path)
    res = run_benchmark(
        data, archs, out_dir, cfg, source=Path(data_path).name, source_sha256=sha, progress=not quiet
    )
    for m in res.models:
        state = "reused" if m.resumed else f"trained, final epoch {m.final_epoch}"
        click.echo(f"{m.label} ({state}): {m.bundle_path}")
        _echo_rows(m.info.get("test_metrics_by_speed", []))
    if data.synthetic:
        click.echo("note: synthetic data: these numbers say nothing about physiology")
    click.echo(f"wrote {len(res.files)} files to {res.out_dir}")


@click.command("train")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model",
    "arch",
    type=click.Choice(["lstm", "transformer", "mamba"]),
    default="transformer",
    show_default=True,
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write (.pt)."
)
@click.option("--epochs", type=int, default=200, show_default=True, help="Fixed number of epochs.")
@click.option(
    "--holdout", is_flag=True, help="Train on the pool only and score the published hold-out test subjects."
)
@click.option("--device", type=_DEVICE, default="cpu", show_default=True)
@click.option("--lr", type=float, default=None, help="AdamW learning rate [1e-4].")
@click.option("--batch-size", type=int, default=None, help="Mini-batch size [64].")
@click.option("--hparams", "hparams_json", default=None, help="JSON overrides per architecture.")
@click.option(
    "--init",
    "init_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Fine-tune this bundle (published or own) on the file instead of training "
    "from scratch (lab adaptation; early stopping on held-out subjects).",
)
@click.option(
    "--refit-standardisation",
    is_flag=True,
    help="--init: refit the input mean/std on the file (default: keep the bundle's).",
)
@click.option(
    "--val-fraction",
    type=float,
    default=0.25,
    show_default=True,
    help="--init: share of the file's subjects held out for early stopping.",
)
@click.option("--name", default=None, help="Name of the new model.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(
    data_path,
    arch,
    output,
    epochs,
    holdout,
    device,
    lr,
    batch_size,
    hparams_json,
    init_path,
    refit_standardisation,
    val_fraction,
    name,
    quiet,
):
    """Train one model for a fixed number of epochs (no cross-validation) and save its bundle;
    with --init, fine-tune an existing bundle on the file (lab adaptation)."""
    from g2h_edge.models import save_bundle
    from g2h_edge.train.fixed import train_fixed

    if init_path:
        return _adapt(
            init_path,
            data_path,
            output,
            epochs,
            device,
            lr,
            batch_size,
            refit_standardisation,
            val_fraction,
            name,
            holdout,
            hparams_json,
        )
    cfg = _config(device, hparams_json, lr=lr, batch_size=batch_size)
    data, sha = _load_data(data_path)
    res = train_fixed(
        data,
        arch,
        epochs,
        cfg,
        holdout=holdout,
        source=Path(data_path).name,
        source_sha256=sha,
        progress=not quiet,
        name=name,
    )
    save_bundle(res.bundle, output)
    click.echo(
        f"wrote {output} ({arch}, {epochs} epochs, {res.seconds_per_epoch:.2f} s/epoch, "
        f"final train loss {res.train_loss[-1]:.4g}{', SYNTHETIC' if data.synthetic else ''})"
    )
    if res.test_speed_rows:
        click.echo(f"hold-out test subjects {' '.join(res.test_subjects)}:")
        _echo_rows(res.test_speed_rows)


def _adapt(
    init_path,
    data_path,
    output,
    epochs,
    device,
    lr,
    batch_size,
    refit,
    val_fraction,
    name,
    holdout,
    hparams_json,
) -> None:
    from g2h_edge.errors import ConfigError
    from g2h_edge.models import load_bundle, save_bundle
    from g2h_edge.train.adapt import finetune_data

    if holdout or hparams_json:
        raise ConfigError(
            "--init fine-tunes the bundle's own architecture on the whole file: drop --holdout/--hparams"
        )
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    base = load_bundle(init_path)
    cfg = _config(
        device,
        None,
        lr=lr if lr is not None else 5e-5,
        batch_size=batch_size,
        patience_epochs=max(3, epochs // 4),
    )
    data, _ = _load_data(data_path)
    res = finetune_data(
        base,
        data,
        epochs=epochs,
        cfg=cfg,
        val_fraction=val_fraction,
        refit_standardisation=refit,
        name=name,
        source=Path(data_path).name,
    )
    save_bundle(res.bundle, output)
    click.echo(
        f"wrote {output} ({res.bundle.name}: {base.name} fine-tuned on "
        f"{len(res.train_subjects)} subjects, validation {list(res.val_subjects) or 'none'}"
        f", best epoch {res.best_epoch} of {res.epochs_run}, {res.seconds:.0f} s"
        f"{', SYNTHETIC' if res.bundle.synthetic else ''})"
    )


@click.command("evaluate")
@click.option(
    "--model",
    "bundle_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Model bundle (.pt) made by train/benchmark or `g2h-edge models import`; "
    "or any engine file (.onnx, .plan, .pt2) or ensemble manifest (.json).",
)
@click.option(
    "--ensemble",
    default=None,
    help="Comma-separated model files of one task evaluated as their mean "
    "(e.g. LSTM_JM60.pt,Mamba_JM60.pt); instead of --model.",
)
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="External Gait2Hip NPZ with targets (Y); any speed_label strings.",
)
@click.option(
    "--side",
    type=click.Choice(["R", "L"]),
    default="R",
    show_default=True,
    help="L: the file holds left-hip cycles (left IC to left IC, left-hip targets); "
    "their inputs are mirrored (_r/_l swapped) here.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--device", type=_DEVICE, default="cpu", show_default=True)
def evaluate_cmd(bundle_path, ensemble, data_path, side, out_dir, device):
    """Zero-shot external evaluation (the paper's ONFH protocol): the bundle's own input
    standardisation, never refitted; subject-level metrics, per cadence (any speed labels),
    per channel, figures."""
    from g2h_edge.io import read_gait2hip_npz
    from g2h_edge.train.evaluate import evaluate_bundle, evaluate_engine
    from g2h_edge.train.loop import resolve_device

    if bool(bundle_path) == bool(ensemble):
        raise click.UsageError("give exactly one of --model FILE or --ensemble A,B")
    resolve_device(device)
    data = read_gait2hip_npz(data_path, any_speed_label=True)
    spec = ensemble or bundle_path
    label = Path(bundle_path).name if bundle_path else ensemble
    if bundle_path and Path(bundle_path).suffix.lower() == ".pt":
        from g2h_edge.models import load_bundle

        model = load_bundle(bundle_path)
        res = evaluate_bundle(
            model, data, out_dir, device=device, side=side, source=Path(data_path).name, bundle_source=label
        )
    else:
        from g2h_edge.engines.ensemble import load_any

        if device != "cpu":
            raise click.UsageError("--device applies to .pt bundles; other engines pick their own device")
        with load_any(spec) as model:
            res = evaluate_engine(
                model, data, out_dir, side=side, source=Path(data_path).name, bundle_source=label
            )
    click.echo(f"{res.name} on {Path(data_path).name} (zero-shot, side {side}):")
    _echo_rows(res.speed_rows)
    if model.synthetic or data.synthetic:
        click.echo("note: synthetic model or data: these numbers say nothing about physiology")
    click.echo(f"wrote {len(res.files)} files to {out_dir}")
