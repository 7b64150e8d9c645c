"""``g2h-edge bench ingest``: the server's per-frame ingest cost, without sockets or engines.

Pre-encoded messages of N synthetic 200 Hz streams (interleaved in time, as the server
receives them) are decoded and fed to a :class:`~g2h_edge.runtime.pipeline.Pipeline`
back to back; the same messages decoded only are the same-run baseline. Prints µs per
frame for both and the ingest-only stream capacity (1 s / (µs per frame × rate)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import click

__all__ = ["IngestConfig", "build_schedule", "run_ingest", "bench_ingest_cmd"]


@dataclass(frozen=True)
class IngestConfig:
    streams: int = 100
    seconds: float = 10.0
    rate_hz: float = 200.0
    frames_per_message: int = 10
    ics: str = "detect"  # detect | external
    repeats: int = 3


def build_schedule(cfg: IngestConfig) -> tuple[list, int]:
    """(every message's parts in arrival order, frames in them)."""
    from g2h_edge.io.synth import make_stream
    from g2h_edge.sources.replay import ReplayConfig, build_messages, finite_frames

    trials = [make_stream(cfg.seconds, cfg.rate_hz, seed=100 + i, body_mass_kg=70.0) for i in range(4)]
    period = cfg.frames_per_message / cfg.rate_hz
    sched, frames = [], 0
    for j in range(cfg.streams):
        tr = trials[j % len(trials)]
        rc = ReplayConfig(
            stream=f"b{j:05d}", with_events=cfg.ics == "external", frames_per_message=cfg.frames_per_message
        )
        off = period * j / max(cfg.streams, 1)
        sched += [(t + off, j, parts) for t, parts in build_messages(tr, rc)]
        frames += int(finite_frames(tr)[0].shape[0])
    sched.sort(key=lambda x: (x[0], x[1]))
    return [p for _, _, p in sched], frames


def _pipeline():
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.pipeline import Pipeline

    cfg = ServerConfig(engines=("ingest-bench.onnx",), allow_synthetic=True, max_streams=100_000)
    return Pipeline(cfg)


def _time_decode(msgs: list) -> float:
    from g2h_edge.wire import decode_input

    t0 = time.perf_counter()
    for parts in msgs:
        decode_input(parts)
    return time.perf_counter() - t0


def _time_ingest(msgs: list) -> tuple[float, int, int]:
    """(seconds, ready cycles, rejects) of decode + Pipeline.handle over ``msgs``."""
    from g2h_edge.wire import decode_input

    pipe, cycles, rejects = _pipeline(), 0, 0
    handle = pipe.handle
    t0 = time.perf_counter()
    for parts in msgs:
        ready, rej = handle(decode_input(parts), t0)
        cycles += len(ready)
        rejects += len(rej)
    return time.perf_counter() - t0, cycles, rejects


def run_ingest(cfg: IngestConfig, echo=print) -> dict:
    """Run the benchmark (best of ``repeats``, decode-only and ingest alternating)."""
    import gc

    msgs, frames = build_schedule(cfg)
    dec, ing = [], []
    cycles = rejects = 0
    for _ in range(cfg.repeats):
        gc.collect()
        dec.append(_time_decode(msgs))
        gc.collect()
        s, cycles, rejects = _time_ingest(msgs)
        ing.append(s)
    us_dec = min(dec) / frames * 1e6
    us_ing = min(ing) / frames * 1e6
    out = {
        "frames": frames,
        "messages": len(msgs),
        "cycles": cycles,
        "rejects": rejects,
        "decode_us_per_frame": us_dec,
        "ingest_us_per_frame": us_ing,
        "streams_ingest_only": 1e6 / (us_ing * cfg.rate_hz),
    }
    echo(
        f"{cfg.streams} streams x {cfg.seconds:g} s at {cfg.rate_hz:g} Hz, "
        f"{cfg.frames_per_message} frames/message, ICs {cfg.ics}: {len(msgs)} messages, "
        f"{frames} frames, {cycles} cycles, {rejects} rejects"
    )
    echo(f"decode only (baseline):   {us_dec:6.2f} us/frame (best of {cfg.repeats})")
    echo(f"decode + Pipeline.handle: {us_ing:6.2f} us/frame (best of {cfg.repeats})")
    echo(
        f"ingest alone saturates one core at {out['streams_ingest_only']:.0f} streams "
        f"of {cfg.rate_hz:g} Hz (no inference, no publishing)"
    )
    return out


@click.command("ingest")
@click.option("--streams", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--seconds", type=click.FloatRange(1.0, 600.0), default=10.0, show_default=True)
@click.option("--rate-hz", type=click.FloatRange(10.0, 2000.0), default=200.0, show_default=True)
@click.option("--frames-per-message", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--ics", type=click.Choice(["detect", "external"]), default="detect", show_default=True)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True)
def bench_ingest_cmd(streams, seconds, rate_hz, frames_per_message, ics, repeats):
    """Per-frame ingest cost of the server (decode + stream state + detector), in-process."""
    run_ingest(IngestConfig(streams, seconds, rate_hz, frames_per_message, ics, repeats), echo=click.echo)
