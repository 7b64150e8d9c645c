"""``g2h-edge bench bridge``: device bytes -> protocol-v1 messages, frames/s on one core.

Scenarios (all on the same CPU, same run, single thread):

- ``1 stream, 4 KiB reads``: one device, bytes arrive in 4096-byte reads (frames batched).
- ``50 streams interleaved``: 50 devices' frames interleaved in one byte stream (little
  batching: about one or two frames per stream per read).
- ``1 frame per read``: every read holds exactly one frame (no batching at all).
- baseline ``naive``: a per-byte COBS state machine with a bit-by-bit CRC (the reference
  codec the tests use as an oracle) and one protocol-v1 message per frame.

Each scenario turns the bytes into the ZeroMQ multipart messages the bridge publishes
(msgpack bodies built by g2h_edge.wire), which is everything but the socket send.
"""

from __future__ import annotations

import time

import click
import numpy as np

from g2h_edge import wire

from .deframer import LinkDecoder
from .link import pack_angles, pack_meta, parse_frame, parse_payload, serial_frame
from .reference import ReferenceDeframer
from .translate import DeviceTranslator

__all__ = ["device_bytes", "run_fast", "run_naive", "run_bench", "bench_bridge_cmd"]

TARGET_FPS = 10_000  # 50 devices at 200 Hz


def device_bytes(
    n_frames: int, n_streams: int, rate_hz: float = 200.0, seed: int = 0
) -> tuple[bytes, list[int]]:
    """META per stream then ``n_frames`` ANGLES frames round-robin over the streams.

    Returns the serial bytes and the end offset of every frame (to cut per-frame reads).
    """
    rng = np.random.default_rng(seed)
    q = (rng.normal(size=(n_frames, 10)) * 20).astype(np.float32)
    parts = [b"\x00"] + [
        serial_frame(pack_meta(rate_hz, 70.0, stream=s, seq=0, t_us=0)) for s in range(n_streams)
    ]
    dt_us = int(1e6 / rate_hz)
    for i in range(n_frames):
        s, k = i % n_streams, i // n_streams + 1
        parts.append(serial_frame(pack_angles(q[i], stream=s, seq=k & 0xFFFF, t_us=(k * dt_us) & 0xFFFFFFFF)))
    ends = np.cumsum([len(p) for p in parts]).tolist()
    return b"".join(parts), ends


def run_fast(data: bytes, reads: list[bytes] | None = None, chunk: int = 4096) -> tuple:
    """Decode + translate; returns (seconds, frames forwarded, messages)."""
    if reads is None:
        reads = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    dec, tr = LinkDecoder(), DeviceTranslator(max_batch=wire.MAX_FRAMES_PER_MESSAGE)
    n_msgs = 0
    t0 = time.perf_counter()
    for block in reads:
        frames = dec.feed(block)
        if frames:
            n_msgs += len(tr.handle(frames))
    dt = time.perf_counter() - t0
    return dt, tr.counters()["angles"], n_msgs


def run_naive(data: bytes) -> tuple:
    """The per-byte reference decoder + one frames message per frame (baseline)."""
    dec = ReferenceDeframer()
    seqs: dict[int, int] = {}
    n = n_msgs = 0
    t0 = time.perf_counter()
    for raw in dec.feed(data):
        f = parse_frame(raw)
        if f.type != 1:
            continue
        q = np.asarray(parse_payload(f).q, dtype=np.float32).reshape(1, 10)
        k = seqs.get(f.stream, 0)
        seqs[f.stream] = k + 1
        wire.encode_frames(f"mcu{f.stream}", k, [f.t_us * 1e-6], q)
        n += 1
        n_msgs += 1
    return time.perf_counter() - t0, n, n_msgs


def run_bench(frames: int = 50_000, streams: int = 50) -> list[dict]:
    """Every scenario; each row: name, frames, seconds, frames_per_s, messages."""
    rows = []
    one, ends1 = device_bytes(frames, 1)
    many, _ = device_bytes(frames, streams)
    per_frame = [one[a:b] for a, b in zip([0] + ends1[:-1], ends1)]
    n_base = min(frames, 10_000)  # the naive path is slow: fewer frames
    base, _ = device_bytes(n_base, 1)
    for name, fn in (
        ("naive per-byte baseline, 1 stream", lambda: run_naive(base)),
        ("fast, 1 stream, 4 KiB reads", lambda: run_fast(one)),
        (f"fast, {streams} streams interleaved, 4 KiB reads", lambda: run_fast(many)),
        ("fast, 1 frame per read (no batching)", lambda: run_fast(one, reads=per_frame)),
    ):
        dt, n, msgs = fn()
        rows.append({"name": name, "frames": n, "seconds": dt, "frames_per_s": n / dt, "messages": msgs})
    return rows


@click.command("bridge")
@click.option(
    "--frames",
    default=50_000,
    show_default=True,
    type=click.IntRange(100, 10**7),
    help="ANGLES frames per scenario",
)
@click.option(
    "--streams",
    default=50,
    show_default=True,
    type=click.IntRange(1, 256),
    help="device streams in the interleaved scenario",
)
def bench_bridge_cmd(frames: int, streams: int) -> None:
    """Bridge frames/s from device bytes to protocol-v1 messages on one core."""
    rows = run_bench(frames, streams)
    base = rows[0]["frames_per_s"]
    click.echo(f"{'scenario':<48} {'frames':>8} {'msgs':>7} {'frames/s':>11} {'vs naive':>9}")
    for r in rows:
        click.echo(
            f"{r['name']:<48} {r['frames']:>8} {r['messages']:>7} "
            f"{r['frames_per_s']:>11,.0f} {r['frames_per_s'] / base:>8.1f}x"
        )
    worst = min(r["frames_per_s"] for r in rows[1:])
    verdict = "meets" if worst >= TARGET_FPS else "MISSES"
    click.echo(
        f"slowest fast scenario: {worst:,.0f} frames/s: {verdict} the target of "
        f"{TARGET_FPS:,} ANGLES frames/s (50 devices at 200 Hz) on one core"
    )
