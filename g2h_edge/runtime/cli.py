"""``g2h-edge serve | replay | record | demo``: thin click commands over the runtime."""

from __future__ import annotations

import re
from pathlib import Path

import click

from g2h_edge.cli.options import torch_engine_options
from g2h_edge.io.mapping import trial_input_options
from g2h_edge.runtime.config import DEFAULT_LISTEN, DEFAULT_PUBLISH

__all__ = ["serve_cmd", "replay_cmd", "record_cmd", "demo_cmd"]


def _sides(value: str) -> tuple[str, ...]:
    sides = tuple(s.strip().upper() for s in value.split(",") if s.strip())
    if not sides or not set(sides) <= {"R", "L"}:
        raise click.BadParameter(f"{value!r}: use R, L or R,L")
    return sides


@click.command("serve")
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Model file: .pt (torch), .onnx (ONNX Runtime), "
    ".plan/.engine (TensorRT), .json (ensemble manifest). Repeat to publish every "
    "cycle from several models.",
)
@click.option(
    "--ensemble",
    "ensembles",
    multiple=True,
    help="Comma-separated model files "
    "of one task served as ONE model: the mean, plus the per-frame spread y_sd "
    "(e.g. LSTM_JM60.pt,Mamba_JM60.pt). Repeatable.",
)
@click.option("--listen", default=None, help=f"Bind the input SUB socket here [default {DEFAULT_LISTEN}].")
@click.option(
    "--connect",
    multiple=True,
    help="Connect the input SUB socket to a publisher that binds (instead of --listen). Repeatable.",
)
@click.option(
    "--publish", default=DEFAULT_PUBLISH, show_default=True, help="Bind the output PUB socket here."
)
@click.option("--sides", default="R,L", show_default=True, help="Hips to predict.")
@click.option(
    "--body-mass",
    "body_mass_kg",
    type=float,
    default=None,
    help="Body mass (kg) for streams whose meta has none: adds y_abs (N, Nm).",
)
@click.option(
    "--record",
    "record_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append every published message to this file (read it with g2h-edge record FILE).",
)
@click.option(
    "--allow-synthetic",
    is_flag=True,
    help="Serve models trained on synthetic data (their numbers are not physiology).",
)
@click.option(
    "--rate-hz",
    "default_rate_hz",
    type=float,
    default=None,
    help="Accept frames from streams without a meta, assuming this rate, IN_COLS order, degrees.",
)
@click.option(
    "--stream-timeout",
    "stream_timeout_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Forget a stream after this many silent seconds.",
)
@click.option(
    "--threads",
    "engine_threads",
    type=int,
    default=1,
    show_default=True,
    help="Intra-op threads per engine (2 pays off only with --keep-warm-ms: idle "
    "worker threads wake slowly).",
)
@click.option("--max-batch", type=int, default=8, show_default=True, help="Most cycles per engine call.")
@click.option(
    "--max-streams",
    type=int,
    default=256,
    show_default=True,
    help="Most live streams (about 2 MiB each at the protocol's caps; the "
    "defaults fit 1 GiB, docs/runtime.md). Beyond it the stream silent "
    "longest is evicted, or the new one refused.",
)
@click.option(
    "--keep-warm-ms",
    type=float,
    default=None,
    help="While idle, run each engine "
    "on a dummy cycle this often (ms) so real cycles find it warm (lower latency "
    "for a little CPU; e.g. 50).",
)
@click.option(
    "--busy-poll",
    is_flag=True,
    help="Never sleep waiting for input (lowest tail latency; keeps one core at 100 %).",
)
@torch_engine_options
@click.option(
    "--no-convention-check",
    is_flag=True,
    help="Skip the radians / gait2354 knee-sign checks (not recommended).",
)
@click.option(
    "--log-interval",
    "log_interval_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Print a one-line summary to stderr this often (0: never).",
)
@click.option(
    "--trust-native",
    is_flag=True,
    help="Serve .pt2/.plan files that your own "
    "`g2h-edge export` did not build (they are native code: only files you trust; "
    "docs/export.md).",
)
@click.option(
    "--curve-keys",
    type=click.Path(file_okay=False),
    default=None,
    help="CURVE-encrypt and authenticate inputs and outputs with the keys in this "
    "directory (g2h-edge keys generate).",
)
@click.option(
    "--insecure-public-bind",
    is_flag=True,
    help="Allow a non-loopback bind without --curve-keys (trusted networks only).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Take only the streams with crc32(id) % N == I (several servers behind g2h-edge proxy).",
)
def serve_cmd(
    engines,
    ensembles,
    listen,
    connect,
    publish,
    sides,
    body_mass_kg,
    record_path,
    allow_synthetic,
    default_rate_hz,
    stream_timeout_s,
    engine_threads,
    max_batch,
    max_streams,
    keep_warm_ms,
    busy_poll,
    torch_precision,
    torch_compile,
    no_convention_check,
    log_interval_s,
    trust_native,
    curve_keys,
    insecure_public_bind,
    shard,
):
    """Serve per-cycle hip predictions from live protocol-v1 frames (docs/protocol.md).

    Stops cleanly on SIGINT/SIGTERM: queued frames and in-flight cycles are published and
    the record file is flushed before exit 0.
    """
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.run import serve

    if connect and listen:
        raise click.UsageError("give --listen or --connect, not both")
    if not engines and not ensembles:
        raise click.UsageError("give at least one --engine FILE or --ensemble A,B")
    cfg = ServerConfig(
        engines=tuple(engines) + tuple(ensembles),
        listen=None if connect else (listen or DEFAULT_LISTEN),
        connect=tuple(connect),
        publish=publish,
        sides=_sides(sides),
        body_mass_kg=body_mass_kg,
        record_path=record_path,
        allow_synthetic=allow_synthetic,
        default_rate_hz=default_rate_hz,
        trust_native=trust_native,
        stream_timeout_s=stream_timeout_s,
        engine_threads=engine_threads,
        max_batch=max_batch,
        max_streams=max_streams,
        check_convention=not no_convention_check,
        keep_warm_ms=keep_warm_ms,
        busy_poll=busy_poll,
        torch_precision=torch_precision,
        torch_compile=torch_compile,
        curve_keys=curve_keys,
        insecure_public_bind=insecure_public_bind,
        shard=shard,
    )

    def ready(server):
        names = ", ".join(
            f"{e.name} [{e.backend}{', SYNTHETIC' if e.synthetic else ''}]" for e in server.engines
        )
        ep = server.endpoints
        src = ep.get("listen") or "connect " + ", ".join(cfg.connect)
        click.echo(
            f"g2h-edge serve: inputs {src} -> outputs {ep['publish']}; engines: {names}; Ctrl-C to stop",
            err=True,
        )

    return serve(cfg, on_ready=ready, on_status=_status_logger(log_interval_s))


def _status_logger(interval_s: float):
    """A status callback printing one summary line per interval (None when disabled)."""
    if interval_s <= 0:
        return None
    import time

    state = {"next": time.monotonic() + interval_s, "frames": 0, "cycles": 0}

    def log(status: dict) -> None:
        now = time.monotonic()
        if now < state["next"]:
            return
        tot, lat = status["totals"], status["latency_ms"]
        frames, cycles = tot.get("frames", 0), tot.get("cycles", 0)
        span = interval_s + (now - state["next"])
        click.echo(
            f"[{time.strftime('%H:%M:%S')}] streams {tot.get('live_streams', 0)}, "
            f"{(frames - state['frames']) / span:.0f} frames/s, "
            f"{(cycles - state['cycles']) / span:.1f} cycles/s, rejects "
            f"{sum(status['rejects'].values())}, last-second latency p99 "
            f"{lat.get('p99', float('nan')):.2f} ms",
            err=True,
        )
        state.update(next=now + interval_s, frames=frames, cycles=cycles)

    return log


def _default_stream(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.:/-]", "_", Path(path).stem)[:64]
    return stem if stem and stem[0].isalnum() else "s" + stem[:63]


@click.command("replay")
@trial_input_options(rate=False, rate_param="npz_rate_hz")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--connect", "connect", default=None, help=f"Connect to a server that binds [default {DEFAULT_LISTEN}]."
)
@click.option("--bind", "bind", default=None, help="Bind here instead (the server uses --connect).")
@click.option(
    "--speed", type=float, default=1.0, show_default=True, help="Playback speed (2 = twice real time)."
)
@click.option("--max-rate", is_flag=True, help="Send as fast as possible (no pacing).")
@click.option("--stream", default=None, help="Stream id [default: the file name].")
@click.option(
    "--with-events",
    is_flag=True,
    help="Send the trial's IC events (force "
    "plates) in the frames, so the server uses them instead of detecting.",
)
@click.option("--frames-per-message", type=int, default=10, show_default=True)
@click.option(
    "--rate-hz",
    "npz_rate_hz",
    type=float,
    default=100.0,
    show_default=True,
    help="Sampling rate of the stream made from a Gait2Hip NPZ.",
)
@click.option(
    "--body-mass",
    "body_mass_kg",
    type=float,
    default=None,
    help="Body mass (kg) sent in the meta (overrides the trial's).",
)
@click.option("--convert-gait2354", is_flag=True, help="Flip the old gait2354 knee sign.")
@click.option(
    "--wait", "wait_s", type=float, default=30.0, show_default=True, help="Seconds to wait for a subscriber."
)
@click.option(
    "--results",
    default=None,
    help="The server's output (its --publish address) "
    "to confirm the stream on [default: port 5556 on the --connect host, else "
    f"{DEFAULT_PUBLISH}].",
)
@click.option(
    "--confirm-wait",
    "confirm_wait_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait after the last send for the server to confirm.",
)
@click.option(
    "--no-confirm",
    is_flag=True,
    help="Only publish: do not watch the server's output (exit 0 once sent, as before).",
)
@click.option(
    "--curve-keys",
    type=click.Path(file_okay=False),
    default=None,
    help="Connect as a CURVE client (server.key + client.key_secret in this dir).",
)
def replay_cmd(
    file,
    connect,
    bind,
    speed,
    max_rate,
    stream,
    with_events,
    frames_per_message,
    npz_rate_hz,
    body_mass_kg,
    convert_gait2354,
    wait_s,
    results,
    confirm_wait_s,
    no_confirm,
    curve_keys,
):
    """Publish a recorded trial (.mot/.sto/.csv or Gait2Hip .npz) as protocol-v1 frames.

    Waits for a subscriber, paces at the trial's clock, sends `end` last; loses nothing.
    Then waits for the server to confirm the stream on its output and prints what it did.
    Exit status: 0 confirmed; 3 the server rejected or blocked the stream or some of its
    input (cycle-quality rejects such as cycle_too_short do not count); 4 the server never
    confirmed every frame (not running, killed, wrong --results); 2 bad input.
    """
    from g2h_edge.sources.replay import ReplayConfig, load_trial_file, replay

    if connect and bind:
        raise click.UsageError("give --connect or --bind, not both")
    trial = load_trial_file(file, npz_rate_hz=npz_rate_hz, convert_gait2354=convert_gait2354)
    cfg = ReplayConfig(
        address=bind or connect or DEFAULT_LISTEN,
        bind=bool(bind),
        stream=stream or _default_stream(file),
        speed=speed,
        max_rate=max_rate,
        with_events=with_events,
        frames_per_message=frames_per_message,
        body_mass_kg=body_mass_kg,
        wait_subscriber_s=wait_s,
        results=None if no_confirm else results or _default_results(connect, bind),
        confirm_wait_s=confirm_wait_s,
        curve_keys=curve_keys,
    )
    click.echo(
        f"replaying {file} as stream {cfg.stream!r}: {trial.q.shape[0]} frames at "
        f"{trial.rate_hz:g} Hz -> {cfg.address}; waiting for a subscriber...",
        err=True,
    )
    st = replay(trial, cfg)
    dropped = f" ({st.dropped_frames} frames with non-finite angles left out)" if st.dropped_frames else ""
    click.echo(
        f"sent {st.messages} messages, {st.frames} frames, {st.events} events in {st.wall_s:.2f} s{dropped}",
        err=True,
    )
    if st.confirmation is not None:
        from g2h_edge.sources.confirm import exit_code

        click.echo(st.confirmation.summary(st.frames), err=True)
        code = exit_code(st.confirmation)
        if code:
            click.get_current_context().exit(code)


def _default_results(connect: str | None, bind: str | None) -> str:
    """The server's default output: port 5556 on the host replay connects to."""
    m = re.fullmatch(r"tcp://(.+):\d+", connect or "")
    return f"tcp://{m.group(1)}:5556" if m and not bind else DEFAULT_PUBLISH


@click.command("record")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message (arrays as lists).")
@click.option(
    "--export",
    "export_npz",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the cycles to an NPZ (y, stream, side, cycle, t_start, t_end...); "
    "several models: one OUT_<model>.npz each.",
)
def record_cmd(file, as_json, export_npz):
    """Read back a `serve --record` file (a truncated tail from a crash is tolerated)."""
    from g2h_edge.runtime.record import export_cycles, print_record

    out = print_record(file, as_json=as_json, echo=click.echo)
    if export_npz:
        for target, model, n in export_cycles(out, export_npz):
            click.echo(f"wrote {n} cycles of {model} to {target}", err=True)


@click.command("demo")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default="g2h_demo",
    show_default=True,
    help="Where the plot and the record go.",
)
@click.option(
    "--speed", type=float, default=2.0, show_default=True, help="Replay speed of the example trial."
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "onnx", "torch"]),
    default="auto",
    show_default=True,
    help="auto: ONNX Runtime on the CPU when export works.",
)
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@click.option(
    "--with-events", is_flag=True, help="Use the example's IC events instead of detecting ICs online."
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Serve this bundle (.pt) instead of the bundled demo models. Repeatable.",
)
def demo_cmd(out_dir, speed, backend, no_plot, with_events, models):
    """Run the main job on the bundled example: serve + replay + live table + plot.

    The bundled models and the example trial are SYNTHETIC: the numbers are not physiology.
    """
    from g2h_edge.bench.demo import DemoConfig, run_demo

    run_demo(
        DemoConfig(
            out_dir=out_dir,
            speed=speed,
            backend=backend,
            plot=not no_plot,
            with_events=with_events,
            models=tuple(models),
        ),
        echo=click.echo,
    )
