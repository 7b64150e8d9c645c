"""``g2h-edge models``: import published checkpoints, inspect bundles and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import click

from g2h_edge.errors import ModelError

__all__ = ["models_cmd", "describe"]


@click.group("models")
def models_cmd():
    """Import published checkpoints into bundles, inspect bundles and checkpoints."""


@models_cmd.command("import")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="bundle file to write (.pt)",
)
@click.option("--name", default=None, help="model name (default: the checkpoint's file stem)")
def import_cmd(src: Path, out: Path, name: str | None):
    """Convert a published Gait2Hip-60 checkpoint SRC into a bundle, running no pickle code."""
    from g2h_edge.models.bundle import file_sha256, save_bundle
    from g2h_edge.models.checkpoint import import_checkpoint

    if out.suffix != ".pt":
        raise click.BadParameter(f"{out.name}: bundles are .pt files", param_hint="-o")
    bundle = import_checkpoint(src, name=name)
    save_bundle(bundle, out)
    click.echo(
        f"wrote {out} ({bundle.arch}, task {bundle.task}, {len(bundle.out_cols)} "
        f"outputs in {bundle.unit}, sha256 {file_sha256(out)[:16]}...)"
    )


@models_cmd.command("ensemble")
@click.argument(
    "members", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="manifest to write (.json)",
)
@click.option("--name", default=None, help="ensemble name (default: the members' names joined by +)")
def ensemble_cmd(members, out: Path, name: str | None):
    """Write an ensemble manifest: MEMBERS (2 or more model files of one task) served as one
    model (`serve/predict/evaluate --engine/--model OUT.json`); checks they load and agree."""
    from g2h_edge.engines.ensemble import load_ensemble, write_manifest

    if out.suffix.lower() != ".json":
        raise click.BadParameter(f"{out.name}: ensemble manifests are .json files", param_hint="-o")
    with load_ensemble(members, name=name) as ens:  # refuses mismatched members
        write_manifest(out, members, ens.name)
        click.echo(
            f"wrote {out}: {ens.name} ({len(members)} members, task {ens.task}, "
            f"{len(ens.out_cols)} outputs in {ens.unit}{', SYNTHETIC' if ens.synthetic else ''})"
        )


@models_cmd.command("info")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def info_cmd(file: Path, as_json: bool):
    """Print what a bundle or a published checkpoint FILE holds."""
    info = describe(file)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        click.echo(f"{key:>14}: {value}")


def describe(path) -> dict:
    """A plain-dict summary of a bundle or published checkpoint (ModelError if neither)."""
    from g2h_edge.models.bundle import file_sha256, load_bundle

    path = Path(path)
    try:
        bundle = load_bundle(path)
    except ModelError as exc:
        if exc.reason == "corrupt":
            raise ModelError(
                f"{path} is neither a g2h-edge bundle nor a published checkpoint: {exc}", reason="corrupt"
            ) from exc
        if exc.reason != "not_a_bundle":
            raise
        return _describe_checkpoint(path)
    return {
        "file": str(path),
        "kind": "g2h-edge bundle",
        "name": bundle.name,
        "arch": bundle.arch,
        "hparams": bundle.hparams,
        "task": bundle.task,
        "unit": bundle.unit,
        "T": bundle.T,
        "in_cols": list(bundle.in_cols),
        "out_cols": list(bundle.out_cols),
        "synthetic": bundle.synthetic,
        "warning": "SYNTHETIC: trained on synthetic data, not physiology" if bundle.synthetic else "",
        "provenance": bundle.provenance,
        "params": bundle.n_params(),
        "sha256": file_sha256(path),
    }


def _describe_checkpoint(path: Path) -> dict:
    from g2h_edge.models.bundle import file_sha256
    from g2h_edge.models.checkpoint import _strings, read_checkpoint

    obj = read_checkpoint(path)
    sd = obj["state_dict"]
    params = sum(int(t.numel()) for t in sd.values()) if isinstance(sd, dict) else None
    hp = obj["hparams"] if isinstance(obj["hparams"], dict) else {}
    return {
        "file": str(path),
        "kind": "published checkpoint (import it with `g2h-edge models import`)",
        "arch": obj["model_type"],
        "hparams": hp,
        "unit": obj.get("target_unit"),
        "T": hp.get("T"),
        "in_cols": _strings(obj["in_cols"], "in_cols", path),
        "out_cols": _strings(obj["out_cols"], "out_cols", path),
        "synthetic": False,
        "provenance": {k: obj[k] for k in obj if k.startswith("test_metrics_") and isinstance(obj[k], dict)}
        | {"test_subjects": [str(s) for s in obj.get("test_subjects", [])]},
        "params": params,
        "sha256": file_sha256(path),
    }
