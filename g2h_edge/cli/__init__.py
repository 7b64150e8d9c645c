"""The ``g2h-edge`` command line.

The CLI is thin: each command parses options, builds a config and calls one library
function. Commands are imported lazily (``module:attribute``) so that ``g2h-edge --help`` is
fast and a missing optional extra only affects the command that needs it.
"""

from __future__ import annotations

import importlib

import click

from g2h_edge import __version__
from g2h_edge.errors import G2HError

__all__ = ["main", "LazyGroup"]


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            target, help_text = self.lazy[name]
            module, attr = target.split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as exc:
                # the command exists but its module (or an extra) is missing: say so when run
                return _unavailable(name, help_text, exc)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [(n, self.lazy[n][1]) for n in self.lazy]
        # the whole line, never click's 45-character cut ("Benchmarks (each prints...")
        rows += [(n, c.get_short_help_str(limit=200)) for n, c in self.commands.items()]
        rows.sort()
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _unavailable(name: str, help_text: str, exc: Exception) -> click.Command:
    def run():
        raise click.ClickException(f"'{name}' is unavailable: {exc}")

    return click.Command(name, callback=run, help=help_text)


BENCH = {
    "engine": (
        "g2h_edge.bench.engine:bench_engine_cmd",
        "Engine latency and cycles/s vs the torch-eager reference",
    ),
    "e2e": ("g2h_edge.bench.e2e:bench_e2e_cmd", "End-to-end server throughput and latency over loopback"),
    "bridge": (
        "g2h_edge.firmware_bridge.bench:bench_bridge_cmd",
        "Bridge frames/s from device bytes to protocol-v1",
    ),
    "accuracy": (
        "g2h_edge.bench.accuracy:bench_accuracy_cmd",
        "External R2/RMSE of single, ensemble and adapted models; score-error Spearman",
    ),
    "fuzz": (
        "g2h_edge.bench.fuzz:bench_fuzz_cmd",
        "Hostile messages vs two healthy streams: crashes, lost cycles, reject reasons",
    ),
    "ingest": (
        "g2h_edge.bench.ingest:bench_ingest_cmd",
        "Per-frame ingest cost (decode + stream state + detector) vs decode alone, in-process",
    ),
    "soak": (
        "g2h_edge.bench.soak:bench_soak_cmd",
        "Many streams for minutes: sequence gaps, cycles out vs expected, RSS over time",
    ),
}


@click.group(cls=LazyGroup, lazy=BENCH)
def bench():
    """Benchmarks (each prints ratios against a baseline measured in the same run)."""


COMMANDS = {
    "demo": ("g2h_edge.runtime.cli:demo_cmd", "Run the main job on the bundled example (start here)"),
    "serve": (
        "g2h_edge.runtime.cli:serve_cmd",
        "Serve per-cycle hip predictions from live frames over ZeroMQ",
    ),
    "replay": ("g2h_edge.runtime.cli:replay_cmd", "Publish a recorded trial as protocol-v1 frames"),
    "record": ("g2h_edge.runtime.cli:record_cmd", "Read back a --record file"),
    "lsl": ("g2h_edge.sources.cli:lsl_cmd", "Publish a live LSL stream of joint angles to the server"),
    "mvn": ("g2h_edge.sources.cli:mvn_cmd", "Publish Xsens MVN streamed joint angles (UDP) to the server"),
    "qtm": ("g2h_edge.sources.cli:qtm_cmd", "Publish joint angles from a Qualisys QTM analog device"),
    "models": ("g2h_edge.models.cli:models_cmd", "Import published checkpoints, inspect bundles"),
    "predict": (
        "g2h_edge.io.cli:predict_cmd",
        "Offline prediction for cycles (NPZ) or a trial cut at its events",
    ),
    "label": ("g2h_edge.io.cli:label_cmd", "Gait2Hip NPZ labels from a lab's OpenSim IK/ID/SO results"),
    "synth": ("g2h_edge.io.cli:synth_cmd", "Write a synthetic cohort in the Gait2Hip NPZ schema"),
    "benchmark": ("g2h_edge.train.cli:benchmark_cmd", "Reproduce the Gait2Hip-60 benchmark protocol"),
    "train": ("g2h_edge.train.cli:train_cmd", "Train one model for a fixed number of epochs"),
    "evaluate": ("g2h_edge.train.cli:evaluate_cmd", "Zero-shot external evaluation of a bundle"),
    "export": ("g2h_edge.export.cli:export_cmd", "Export ONNX models and TensorRT plans"),
    "bridge": (
        "g2h_edge.firmware_bridge.cli:bridge_cmd",
        "Connect a microcontroller (serial/UDP) to the bus",
    ),
    "keys": ("g2h_edge.runtime.netcli:keys_cmd", "Generate ZeroMQ CURVE keys for --curve-keys"),
    "proxy": ("g2h_edge.runtime.netcli:proxy_cmd", "XSUB/XPUB proxy in front of several sharded servers"),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="g2h-edge")
def cli():
    """g2h-edge: per-gait-cycle hip muscle forces and joint moments from streamed joint angles."""


cli.add_command(bench)


def main(argv=None):
    """Entry point: G2HError becomes a one-line error message and exit status 2."""
    try:
        rv = cli.main(args=argv, prog_name="g2h-edge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except G2HError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if isinstance(rv, int) and rv != 0:
        raise SystemExit(rv)
    return 0
