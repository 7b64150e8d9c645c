"""``g2h-edge predict``, ``synth`` and ``label`` (thin: parse options, call one function)."""

from __future__ import annotations

from pathlib import Path

import click

from g2h_edge.io.mapping import trial_input_options
from g2h_edge.schema import TASKS

__all__ = ["predict_cmd", "synth_cmd", "label_cmd"]


@click.command("predict")
@click.option(
    "--model",
    "model_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Model bundle (.pt), ONNX model (.onnx), TensorRT plan or ensemble manifest (.json).",
)
@click.option(
    "--ensemble",
    default=None,
    help="Comma-separated model files of one task predicted as their mean, with "
    "the spread y_sd (instead of --model).",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Gait2Hip NPZ with X (N,180,10) in degrees and in_cols, or a trial "
    "(.csv/.mot/.sto/.c3d) cut into cycles at its IC events.",
)
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="OUT.npz (y, out_cols, unit, model...) or OUT.csv (long format).",
)
@click.option(
    "--raw-unit", is_flag=True, help="Also write outputs in N / N*m (needs weight_kg in the input)."
)
@click.option(
    "--allow-synthetic",
    is_flag=True,
    help="Run a model trained on synthetic data (outputs are not physiology).",
)
@click.option(
    "--convert-gait2354",
    is_flag=True,
    help="Inputs use the old gait2354 knee sign (negative flexion): flip it.",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=1),
    help="CPU threads for the engine (default: the backend's choice).",
)
@click.option(
    "--trust-native",
    is_flag=True,
    help="Load .pt2/.plan files that your own `g2h-edge export` did not build (they are "
    "native code: only files you trust; docs/export.md).",
)
@trial_input_options(kwarg="mapping")
def predict_cmd(
    model_path,
    ensemble,
    input_path,
    output_path,
    raw_unit,
    allow_synthetic,
    convert_gait2354,
    batch_size,
    threads,
    trust_native,
    mapping,
):
    """Offline prediction for time-normalised cycles (right IC to right IC, 180 frames),
    or for a trial file cut into cycles at its events (left hips mirrored), with per-cycle
    quality flags and out-of-distribution scores."""
    from g2h_edge.engines.ensemble import parse_spec
    from g2h_edge.io.predict import PredictConfig, predict_file

    if bool(model_path) == bool(ensemble):
        raise click.UsageError("give exactly one of --model FILE or --ensemble A,B")
    members = tuple(parse_spec(ensemble)) if ensemble else ()
    cfg = PredictConfig(
        model_path=model_path or Path(ensemble),
        input_path=input_path,
        output_path=output_path,
        raw_unit=raw_unit,
        allow_synthetic=allow_synthetic,
        convert_gait2354=convert_gait2354,
        batch_size=batch_size,
        threads=threads,
        trust_native=trust_native,
        mapping=mapping,
        ensemble=members,
    )
    res = predict_file(cfg)
    for line in res.warnings:
        click.echo(line, err=True)
    if res.cycles is not None:
        c = res.cycles
        click.echo(
            f"{input_path}: {c.frames_in} frames ({c.dropout_frames} dropout frames "
            f"left out), {c.n} cycles ({c.side.count('R')} R, {c.side.count('L')} L), "
            f"rejects {c.reject_counts() or 'none'}",
            err=True,
        )
    flagged = [(i, q["flags"]) for i, q in enumerate(res.quality or []) if q["flags"]]
    for i, flags in flagged[:20]:
        click.echo(f"cycle {i}: {', '.join(flags)}", err=True)
    if len(flagged) > 20:
        click.echo(f"... {len(flagged) - 20} more flagged cycles (see quality_flags)", err=True)
    n = res.y.shape[0]
    raw = f" (+ {res.raw_unit})" if res.y_raw is not None else ""
    click.echo(
        f"{n} cycles -> {output_path}: {len(res.out_cols)} outputs in {res.unit}{raw}; "
        f"model {res.model_name} [{res.backend}] sha256 {res.model_sha256[:12]}; "
        f"{len(flagged)} cycles flagged"
    )


@click.command("synth")
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="FILE.npz (cohort) or, with --stream, FILE.csv (+ events JSON beside it).",
)
@click.option(
    "--task",
    type=click.Choice(sorted(TASKS)),
    default="mf",
    show_default=True,
    help="mf: 14 hip muscle forces; jm: 3 hip joint moments.",
)
@click.option("--subjects", default=10, show_default=True, type=click.IntRange(1, 999))
@click.option(
    "--trials",
    "trials_per_condition",
    default=4,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Cycles per subject and cadence.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--stream",
    "stream_s",
    default=None,
    type=click.FloatRange(0.5, 3600.0),
    help="Write a continuous stream of this many seconds instead of a cohort.",
)
@click.option(
    "--rate",
    "rate_hz",
    default=100.0,
    show_default=True,
    type=click.FloatRange(50.0, 1000.0),
    help="Stream sampling rate (Hz).",
)
@click.option(
    "--cadence",
    "cadence_spm",
    default=115.0,
    show_default=True,
    type=click.FloatRange(40.0, 200.0),
    help="Stream cadence (steps/min).",
)
@click.option(
    "--noise-deg",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 10.0),
    help="Stream: Gaussian noise added to every angle (deg).",
)
def synth_cmd(
    output_path, task, subjects, trials_per_condition, seed, stream_s, rate_hz, cadence_spm, noise_deg
):
    """Write a SYNTHETIC cohort (Gait2Hip NPZ schema) or a continuous synthetic stream."""
    from g2h_edge.errors import ConfigError

    if stream_s is not None:
        from g2h_edge.io.synth import make_stream
        from g2h_edge.io.trial import events_path_for, write_events_json, write_trial_csv

        if output_path.suffix.lower() != ".csv":
            raise ConfigError(f"--stream writes CSV: name the output *.csv, got {output_path}")
        tr = make_stream(stream_s, rate_hz, seed=seed, cadence_spm=cadence_spm, noise_deg=noise_deg)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        write_trial_csv(output_path, tr)
        ev = events_path_for(output_path)
        write_events_json(ev, tr, {"source": tr.source, "synthetic": True})
        click.echo(
            f"synthetic stream: {tr.n} frames at {rate_hz:g} Hz, {len(tr.events['R'])} "
            f"right / {len(tr.events['L'])} left ICs -> {output_path}, {ev}"
        )
        return
    from g2h_edge.io.npz import write_gait2hip_npz
    from g2h_edge.io.synth import make_cohort

    if output_path.suffix.lower() != ".npz":
        raise ConfigError(f"the cohort is written as NPZ: name the output *.npz, got {output_path}")
    data = make_cohort(task, subjects, seed, trials_per_condition)
    write_gait2hip_npz(output_path, data)
    click.echo(
        f"synthetic cohort ({task}, NOT physiology): {data.n} cycles of {subjects} "
        f"subjects x 3 cadences x {trials_per_condition} -> {output_path}"
    )


@click.command("label")
@click.option(
    "--ik",
    "ik_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="OpenSim inverse-kinematics .mot (Rajagopal coordinates).",
)
@click.option(
    "--id",
    "id_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="OpenSim inverse-dynamics .sto (N*m): joint-moment labels (task jm).",
)
@click.option(
    "--so",
    "so_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="OpenSim static-optimisation *_force.sto (N): muscle-force labels (mf).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Run OpenSim 4.6 (opensim extra) on this scaled .osim instead of reading --ik/--id/--so.",
)
@click.option(
    "--trc",
    "trc_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --model: marker trajectories (.trc) for inverse kinematics.",
)
@click.option(
    "--ik-setup",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --model: the lab's IK setup XML (marker weights).",
)
@click.option(
    "--grf-xml",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --model: ExternalLoads XML pointing at the GRF .mot.",
)
@click.option(
    "--task",
    type=click.Choice(sorted(TASKS)),
    default=None,
    help="With --model: jm (IK+ID) or mf (IK+ID+static optimisation).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="With --model: where OpenSim's .mot/.sto go [default: beside -o].",
)
@click.option("--subject", "subject_id", required=True, help="Subject id stored per cycle.")
@click.option(
    "--speed",
    "speed_label",
    type=click.Choice(["slow", "med", "fast"]),
    required=True,
    help="Cadence condition of the trial.",
)
@click.option("--height-m", type=click.FloatRange(1.0, 2.3), required=True)
@click.option(
    "--body-mass",
    "body_mass_kg",
    type=click.FloatRange(30.0, 200.0),
    default=None,
    help="kg [default: body_mass_kg of the events JSON / c3d].",
)
@click.option(
    "--id-per-kg",
    is_flag=True,
    help="The --id file holds Nm/kg: multiply by the body mass (the NPZ holds N*m).",
)
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Gait2Hip NPZ to write.",
)
@click.option("--append", is_flag=True, help="Add the cycles to an existing NPZ.")
@trial_input_options(kwarg="mapping")
def label_cmd(
    ik_path,
    id_path,
    so_path,
    model_path,
    trc_path,
    ik_setup,
    grf_xml,
    task,
    work_dir,
    subject_id,
    speed_label,
    height_m,
    body_mass_kg,
    id_per_kg,
    output_path,
    append,
    mapping,
):
    """Turn a lab's OpenSim results (IK .mot + ID .sto or SO force .sto, cycles cut at the
    events) into Gait2Hip NPZ training labels; or run OpenSim 4.6 first (--model)."""
    from g2h_edge.errors import ConfigError
    from g2h_edge.io.label import LabelConfig, label_trial, write_labels

    if model_path is not None:
        from g2h_edge.io.opensim_run import OpenSimRun, run_opensim

        if task is None or trc_path is None:
            raise ConfigError("--model needs --trc and --task jm|mf")
        res = run_opensim(
            OpenSimRun(
                model_path=model_path,
                trc_path=trc_path,
                out_dir=work_dir or str(output_path.parent),
                ik_setup=ik_setup,
                grf_xml=grf_xml,
                static_optimization=(task == "mf"),
            )
        )
        ik_path, so_path = res.ik_path, res.so_path
        id_path = res.id_path if task == "jm" else None
        click.echo(
            f"OpenSim {res.version}: IK -> {ik_path}, ID -> {id_path}"
            + (f", SO -> {so_path}" if so_path else ""),
            err=True,
        )
    if ik_path is None or (id_path is None) == (so_path is None):
        raise ConfigError(
            "give --ik and exactly one of --id (joint moments) or --so (muscle "
            "forces), or --model with --trc to run OpenSim"
        )
    task = "jm" if id_path else "mf"
    res = label_trial(
        LabelConfig(
            ik_path=ik_path,
            task=task,
            targets_path=id_path or so_path,
            subject_id=subject_id,
            speed_label=speed_label,
            height_m=height_m,
            body_mass_kg=body_mass_kg,
            mapping=mapping,
            id_per_kg=id_per_kg,
        )
    )
    total = write_labels(output_path, res.data, append=append)
    rej = {}
    for r in res.rejects:
        rej[r[3]] = rej.get(r[3], 0) + 1
    click.echo(
        f"{ik_path}: {res.frames_in} frames, {res.data.n} cycles ({res.side.count('R')} "
        f"R, {res.side.count('L')} L mirrored), rejects {rej or 'none'} -> "
        f"{output_path} ({total.n} cycles, task {task}, Y in "
        f"{'N*m' if task == 'jm' else 'N'})"
    )
