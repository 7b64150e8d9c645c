"""``g2h-edge bench e2e``: publishers (processes) -> server -> subscriber over loopback.

Reports frames/s ingested, cycles/s, latency from the closing frame's arrival to
publication (p50/p99, from every cycle message), frame loss (frames sent minus frames the
server counted), the server's CPU use, and the ratio of the end-to-end latency to the
engine-only inference latency measured in the same run for the same batch sizes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass

import click
import numpy as np

from g2h_edge.cli.options import torch_engine_options

__all__ = ["E2EConfig", "run_e2e", "bench_e2e_cmd"]


@dataclass(frozen=True)
class E2EConfig:
    engines: tuple[str, ...]
    streams: int = 1
    rate_hz: float = 200.0
    seconds: float = 10.0
    frames_per_message: int = 10
    publishers: int = 1
    ics: str = "detect"  # detect | external
    threads: int | None = 1
    max_batch: int = 8
    keep_warm_ms: float | None = None
    busy_poll: bool = False
    torch_precision: str | None = None
    torch_compile: str | None = None


def _trials(cfg: E2EConfig, k: int):
    from g2h_edge.io.synth import make_stream

    return [make_stream(cfg.seconds, cfg.rate_hz, seed=100 + i, body_mass_kg=70.0) for i in range(k)]


def _publisher(cfg: E2EConfig, addr: str, ids: list, go, ready, out) -> None:
    """One publisher process: pre-encode every message of its streams, then send them on
    the trials' clocks (streams staggered over one message period)."""
    import zmq

    from g2h_edge.sources.replay import ReplayConfig, build_messages, open_publisher, wait_for_subscriber

    trials = _trials(cfg, min(4, len(ids)))
    period = cfg.frames_per_message / cfg.rate_hz
    sched = []
    for j, sid in enumerate(ids):
        rc = ReplayConfig(
            stream=sid, with_events=cfg.ics == "external", frames_per_message=cfg.frames_per_message
        )
        off = period * (j / max(len(ids), 1))
        sched += [(t + off, parts) for t, parts in build_messages(trials[j % len(trials)], rc)]
    sched.sort(key=lambda x: x[0])
    ctx = zmq.Context()
    sock = open_publisher(ctx, ReplayConfig(address=addr, linger_s=60))
    wait_for_subscriber(sock, 60)
    ready.set()
    go.wait()
    t0, wall0, late = sched[0][0], time.perf_counter(), 0.0
    for t, parts in sched:
        delay = wall0 + (t - t0) - time.perf_counter()
        if delay > 0.0005:
            time.sleep(delay)
        elif delay < 0:
            late = max(late, -delay)
        sock.send_multipart(parts)
    out.put(
        {
            "frames": sum(int(np.asarray(trials[j % len(trials)].t).shape[0]) for j in range(len(ids))),
            "max_late_s": late,
            "done_at": time.time(),
        }
    )
    sock.close()
    ctx.term()


def _collector(addr: str, n_streams: int, ready, out) -> None:
    """Subscriber process: keep every cycle's latency until all streams ended."""
    import zmq

    from g2h_edge.wire import decode_output

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(addr)
    lat, cpu, rejects, first_t, last_status, signalled = [], [], {}, None, None, False
    while True:
        if not sub.poll(120_000):
            break
        msg = decode_output(sub.recv_multipart())
        if msg["type"] == "cycle":
            lat.append(msg["latency_ms"])
            cpu.append(msg.get("cpu_ms", np.nan))
            first_t = first_t or time.perf_counter()
        elif msg["type"] == "reject":
            rejects[msg["reason"]] = rejects.get(msg["reason"], 0) + 1
        else:
            last_status = msg
            if not signalled:
                ready.set()
                signalled = True
            if msg["totals"].get("streams_ended", 0) >= n_streams:
                break
    out.put(
        {"latency_ms": lat, "cpu_ms": cpu, "rejects": rejects, "status": last_status, "done_at": time.time()}
    )
    sub.close(0)
    ctx.term()


def _engine_baseline(engines, batch_sizes, reps: int = 50) -> dict:
    """Engine-only infer latency (ms, median) per batch size, same engines, same process."""
    rng = np.random.default_rng(0)
    out = {}
    for b in batch_sizes:
        x = (rng.normal(size=(b, 180, 10)) * 10).astype(np.float32)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for eng in engines:
                eng.infer(x)
            times.append((time.perf_counter() - t0) * 1e3)
        out[b] = float(np.median(times))
    return out


def _engine_cold_baseline(engines, reps: int = 10, gap_s: float = 0.25) -> float:
    """Engine-only B=1 latency (ms, median) when calls come ``gap_s`` apart, like one
    stream's cycles: on a shared machine the caches are cold by then."""
    x = (np.random.default_rng(1).normal(size=(1, 180, 10)) * 10).astype(np.float32)
    times = []
    for _ in range(reps):
        time.sleep(gap_s)
        t0 = time.perf_counter()
        for eng in engines:
            eng.infer(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def run_e2e(cfg: E2EConfig, echo=print) -> dict:
    """Run the benchmark; returns the numbers it printed."""
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.server import Server

    scfg = ServerConfig(
        engines=cfg.engines,
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        engine_threads=cfg.threads,
        stream_timeout_s=max(30.0, cfg.seconds),
        max_batch=cfg.max_batch,
        cpu_timing=True,
        max_streams=max(cfg.streams, ServerConfig.max_streams),
        keep_warm_ms=cfg.keep_warm_ms,
        busy_poll=cfg.busy_poll,
        torch_precision=cfg.torch_precision,
        torch_compile=cfg.torch_compile,
    )
    server = Server(scfg).start()
    mpc = mp.get_context("spawn")
    go, res_q, col_q = mpc.Event(), mpc.Queue(), mpc.Queue()
    col_ready = mpc.Event()
    ids = [f"b{i:05d}" for i in range(cfg.streams)]
    col = mpc.Process(
        target=_collector, args=(server.endpoints["publish"], cfg.streams, col_ready, col_q), daemon=True
    )
    col.start()
    pubs, readies = [], []
    for p in range(cfg.publishers):
        ev = mpc.Event()
        proc = mpc.Process(
            target=_publisher,
            args=(cfg, server.endpoints["listen"], ids[p :: cfg.publishers], go, ev, res_q),
            daemon=True,
        )
        proc.start()
        pubs.append(proc)
        readies.append(ev)
    result: dict = {}

    def watcher():
        # wait for the subscriber and the publishers (the server loop runs meanwhile)
        for ev in [col_ready] + readies:
            ev.wait(300)
        t_start = time.perf_counter()
        cpu0 = time.process_time()
        go.set()
        sent = [res_q.get(timeout=cfg.seconds * 20 + 300) for _ in pubs]
        got = col_q.get(timeout=300)
        result.update(
            wall_s=time.perf_counter() - t_start, cpu_s=time.process_time() - cpu0, sent=sent, got=got
        )
        server.stop()

    th = threading.Thread(target=watcher, daemon=True)
    th.start()
    try:
        server.run()
    finally:
        th.join(5)
        for proc in pubs + [col]:
            proc.join(10)
    batches = max(server.batches_, 1)
    mean_batch = server.batched_cycles_ / batches
    try:
        sizes = sorted({1, max(1, int(round(mean_batch)))})
        base = _engine_baseline(server.engines, sizes)
        cold = _engine_cold_baseline(server.engines)
    finally:
        server.close()
    return _report(cfg, result, base, cold, mean_batch, echo)


def _report(cfg, result, base, cold, mean_batch, echo) -> dict:
    status = result["got"]["status"] or {}
    totals = status.get("totals", {})
    sent = sum(s["frames"] for s in result["sent"])
    lat = np.asarray(result["got"]["latency_ms"] or [np.nan])
    wall = result["wall_s"]
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    cpu = np.asarray(result["got"]["cpu_ms"] or [np.nan])
    c50, c99 = (float(np.percentile(cpu, q)) for q in (50, 99))
    out = {
        "streams": cfg.streams,
        "rate_hz": cfg.rate_hz,
        "frames_sent": sent,
        "frames_ingested": int(totals.get("frames", 0)),
        "frame_loss": sent - int(totals.get("frames", 0)),
        "frames_per_s": totals.get("frames", 0) / wall,
        "cycles": int(lat.size if np.isfinite(lat).all() else 0),
        "cycles_per_s": (lat.size if np.isfinite(lat).all() else 0) / wall,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "latency_max_ms": float(lat.max()),
        "cpu_p50_ms": c50,
        "cpu_p99_ms": c99,
        "server_cpu_pct": 100.0 * result["cpu_s"] / wall,
        "mean_batch": mean_batch,
        "engine_ms": base,
        "engine_cold_b1_ms": cold,
        "rejects": result["got"]["rejects"],
        "publisher_max_late_s": max(s["max_late_s"] for s in result["sent"]),
        # how long after the last message was sent the server had published everything
        # (includes up to one status interval, 1 s): ~1 s = keeping up, more = backlog
        "drain_after_last_send_s": result["got"]["done_at"] - max(s["done_at"] for s in result["sent"]),
    }
    b1 = base[min(base)]
    echo(
        f"bench e2e: {cfg.streams} stream(s) x {cfg.rate_hz:g} Hz for {cfg.seconds:g} s, "
        f"{cfg.frames_per_message} frames/message, ICs {cfg.ics}, engines "
        f"{', '.join(cfg.engines)}"
        + (f", keep-warm every {cfg.keep_warm_ms:g} ms" if cfg.keep_warm_ms else "")
        + (", busy poll" if cfg.busy_poll else "")
        + (
            f", torch {cfg.torch_precision or 'fp32'}"
            + (f" compiled ({cfg.torch_compile})" if cfg.torch_compile else "")
            if cfg.torch_precision or cfg.torch_compile
            else ""
        )
    )
    echo(
        f"  frames: sent {sent}, ingested {out['frames_ingested']}, loss {out['frame_loss']}"
        f" ({out['frames_per_s']:.0f} frames/s ingested)"
    )
    echo(
        f"  cycles: {out['cycles']} ({out['cycles_per_s']:.1f}/s), mean batch "
        f"{mean_batch:.2f}, rejects {out['rejects'] or 'none'}"
    )
    echo(
        f"  latency closing-frame arrival -> publish: p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
        f"max {out['latency_max_ms']:.3f} ms"
    )
    echo(
        f"  server thread CPU time, arrival -> publish (no waiting for a CPU): p50 "
        f"{c50:.3f} ms, p99 {c99:.3f} ms"
    )
    echo(
        "  baseline engine-only infer (same engines, median): "
        + ", ".join(f"B={b}: {ms:.3f} ms" for b, ms in base.items())
    )
    echo(
        f"  baseline engine-only infer B=1, one call every 0.25 s (caches cold, like one "
        f"stream's cycles): {cold:.3f} ms"
    )
    echo(
        f"  ratio e2e p50 / engine B=1: {p50 / b1:.2f}x; p99 / engine B=1: {p99 / b1:.2f}x; "
        f"p50 / cold engine B=1: {p50 / cold:.2f}x"
    )
    echo(
        f"  server CPU {out['server_cpu_pct']:.0f}% of one core; publishers at most "
        f"{out['publisher_max_late_s'] * 1e3:.1f} ms behind schedule; everything published "
        f"{out['drain_after_last_send_s']:.1f} s after the last send (<= ~1 s: kept up)"
    )
    try:
        load = os.getloadavg()
        echo(f"  machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} (1 min)")
        out["loadavg_1min"] = load[0]
    except OSError:
        pass
    return out


@click.command("e2e")
@click.option(
    "--engine", "engines", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option("--streams", type=int, default=1, show_default=True)
@click.option("--rate-hz", type=float, default=200.0, show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--frames-per-message", type=int, default=10, show_default=True)
@click.option(
    "--publishers",
    type=int,
    default=1,
    show_default=True,
    help="Publisher processes (streams are split between them).",
)
@click.option(
    "--ics",
    type=click.Choice(["detect", "external"]),
    default="detect",
    show_default=True,
    help="Detect ICs online, or send the true ICs in frames.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="Intra-op threads per engine.")
@click.option("--max-batch", type=int, default=8, show_default=True)
@click.option(
    "--keep-warm-ms",
    type=float,
    default=None,
    help="Server keeps the engines warm with a dummy call this often when idle.",
)
@click.option("--busy-poll", is_flag=True, help="Server never sleeps waiting for input.")
@torch_engine_options
def bench_e2e_cmd(
    engines,
    streams,
    rate_hz,
    seconds,
    frames_per_message,
    publishers,
    ics,
    threads,
    max_batch,
    keep_warm_ms,
    busy_poll,
    torch_precision,
    torch_compile,
):
    """End-to-end server throughput and latency over loopback (publishers -> server)."""
    run_e2e(
        E2EConfig(
            engines=tuple(engines),
            streams=streams,
            rate_hz=rate_hz,
            seconds=seconds,
            frames_per_message=frames_per_message,
            publishers=publishers,
            ics=ics,
            threads=threads,
            max_batch=max_batch,
            keep_warm_ms=keep_warm_ms,
            busy_poll=busy_poll,
            torch_precision=torch_precision,
            torch_compile=torch_compile,
        ),
        echo=click.echo,
    )
