"""``g2h-edge bench soak``: many paced streams into a real ``g2h-edge serve`` process for
minutes; reports sequence gaps, frames and cycles out vs expected, and the server's RSS over
time (sampled from /proc), and says whether memory stayed flat.

The streams are synthetic walks (8 different ones, looped with continuous time and seq)
sent at their real rate with their IC events, so every IC after a stream's first one on a
side closes exactly one cycle: expected closes = ICs - 1 per stream and side, each either
published as a cycle or rejected with a reason (the loop seam may be rejected).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import click
import numpy as np

__all__ = ["SoakConfig", "run_soak", "bench_soak_cmd", "rss_mb", "is_flat"]


@dataclass(frozen=True)
class SoakConfig:
    streams: int = 50
    minutes: float = 10.0
    rate_hz: float = 100.0
    frames_per_message: int = 10
    engine: str | None = None
    sample_s: float = 10.0


def rss_mb(pid: int) -> float:
    """Resident set size of a process (MiB), from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def is_flat(samples: list, *, rel: float = 0.05, abs_mb: float = 10.0) -> tuple[bool, float]:
    """(flat?, growth MiB): mean RSS of the last third vs the middle third of the samples
    (the first third is warm-up); flat when it grew by less than max(rel, abs_mb)."""
    rss = np.array([r for _, r in samples], dtype=float)
    if rss.size < 3:
        return False, float("nan")
    k = rss.size // 3
    mid, last = rss[k : 2 * k].mean(), rss[2 * k :].mean()
    growth = float(last - mid)
    return bool(growth < max(rel * mid, abs_mb)), growth


class _Counter(threading.Thread):
    """Subscriber thread that only counts (a soak must not hoard its outputs)."""

    def __init__(self, endpoint: str):
        super().__init__(name="soak-sub", daemon=True)
        self.endpoint = endpoint
        self.cycles = Counter()
        self.rejects = Counter()
        self.reject_spans = []  # (t_start, t_end) of rejected cycles
        self.status = None
        self.ended = set()
        self.stop_ = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        import zmq

        from g2h_edge.wire import decode_output

        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.endpoint)
        while not self.stop_.is_set():
            if not sub.poll(100):
                continue
            msg = decode_output(sub.recv_multipart())
            if msg["type"] == "cycle":
                self.cycles[msg["stream"]] += 1
            elif msg["type"] == "reject":
                self.rejects[msg["reason"]] += 1
                self.reject_spans.append((msg.get("t_start"), msg.get("t_end")))
            else:
                self.status = msg
                self.ready.set()
                self.ended.update(k for k, v in msg["retired"].items() if v.get("state") == "ended")
        sub.close(0)
        ctx.term()


def _start_server(cfg: SoakConfig):
    from g2h_edge.bench.fuzz import _default_engine

    cmd = [
        sys.executable,
        "-m",
        "g2h_edge.cli",
        "serve",
        "--engine",
        cfg.engine or _default_engine(),
        "--allow-synthetic",
        "--listen",
        "tcp://127.0.0.1:*",
        "--publish",
        "tcp://127.0.0.1:*",
        "--log-interval",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stderr.readline()
        m = re.search(r"inputs (\S+) -> outputs (\S+);", line)
        if m:
            return proc, m.group(1), m.group(2)
        if not line:
            raise RuntimeError("g2h-edge serve did not start")


def _schedule(cfg: SoakConfig):
    """Per stream: (trial t, q, events) of one of 8 base walks; looped by the sender."""
    from g2h_edge.io.synth import make_stream

    base = [make_stream(60.0, cfg.rate_hz, seed=200 + k) for k in range(min(8, cfg.streams))]
    return base


def _send(cfg: SoakConfig, addr: str, base: list, out: dict, echo) -> None:
    """Publish every stream at its real rate for cfg.minutes; counts ICs per stream+side."""
    import zmq

    from g2h_edge.sources.replay import ReplayConfig, open_publisher, wait_for_subscriber
    from g2h_edge.wire import encode_end, encode_frames, encode_meta

    ctx = zmq.Context()
    sock = open_publisher(ctx, ReplayConfig(address=addr, linger_s=60))
    wait_for_subscriber(sock, 60)
    ids = [f"soak{i:03d}" for i in range(cfg.streams)]
    for sid in ids:
        sock.send_multipart(encode_meta(sid, cfg.rate_hz))
    fpm, period = cfg.frames_per_message, cfg.frames_per_message / cfg.rate_hz
    n_msgs = int(cfg.minutes * 60 / period)
    ics = Counter()
    t0 = time.perf_counter()
    for j in range(n_msgs):
        delay = t0 + j * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for k, sid in enumerate(ids):
            tr = base[k % len(base)]
            n = tr.t.shape[0]
            i0 = (j * fpm) % n
            loop = (j * fpm) // n
            span = float(tr.t[-1] - tr.t[0]) + 1.0 / cfg.rate_hz
            i1 = min(i0 + fpm, n)
            t = tr.t[i0:i1] + loop * span
            lo = tr.t[i0] if i0 else -np.inf  # events between two messages go
            hi = tr.t[i1] if i1 < n else np.inf  # with the later one
            ev = [(float(x) + loop * span, s) for s in "RL" for x in tr.events[s] if lo <= x < hi]
            ics.update((sid, s) for _, s in ev)
            sock.send_multipart(encode_frames(sid, j, t, tr.q[i0:i1], ic=ev or None))
        if j % int(60 / period) == 0 and j:
            echo(f"  {j * period / 60:.0f} min sent")
    for sid in ids:
        sock.send_multipart(encode_end(sid))
    out.update(
        ics=ics,
        messages=n_msgs * cfg.streams,
        frames=n_msgs * fpm * cfg.streams,
        late_s=max(0.0, time.perf_counter() - t0 - n_msgs * period),
    )
    sock.close()
    ctx.term()


def run_soak(cfg: SoakConfig, echo=print) -> dict:
    """Run the soak (see module doc); returns the figures."""
    base = _schedule(cfg)
    proc, listen, publish = _start_server(cfg)
    sub = _Counter(publish)
    sub.start()
    samples, sent = [], {}
    try:
        if not sub.ready.wait(60):
            raise RuntimeError("no status from the server")
        t0 = time.monotonic()
        sender = threading.Thread(target=_send, args=(cfg, listen, base, sent, echo), daemon=True)
        sender.start()
        while sender.is_alive():
            samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
            sender.join(cfg.sample_s)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(sub.ended) < cfg.streams:
            time.sleep(0.2)
        samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
        time.sleep(1.5)  # one more status after the last end
    finally:
        proc.terminate()
        proc.wait(60)
        sub.stop_.set()
        sub.join(5)
    tot = sub.status["totals"] if sub.status else {}
    expected = sum(max(n - 1, 0) for n in sent["ics"].values())
    cycle_rejects = {r: n for r, n in sub.rejects.items()}
    flat, growth = is_flat(samples)
    span = float(base[0].t[-1] - base[0].t[0]) + 1.0 / cfg.rate_hz  # the loop period
    at_seam = sum(
        1 for a, b in sub.reject_spans if a is not None and b is not None and int(a // span) != int(b // span)
    )
    return {
        "streams": cfg.streams,
        "minutes": cfg.minutes,
        "messages_sent": sent["messages"],
        "frames_sent": sent["frames"],
        "frames_counted": tot.get("frames", 0),
        "seq_gaps": tot.get("dropped_seq", 0),
        "duplicate_seq": tot.get("duplicate_seq", 0),
        "cycles_out": sum(sub.cycles.values()),
        "cycles_expected": expected,
        "rejects": cycle_rejects,
        "rejects_at_loop_seam": at_seam,
        "streams_ended": len(sub.ended),
        "loop_errors": tot.get("loop_errors", 0),
        "sender_late_s": sent["late_s"],
        "rss_mb": samples,
        "rss_flat": flat,
        "rss_growth_mb": growth,
        "server_exit": proc.returncode,
    }


def _report(res: dict, echo) -> None:
    echo(
        f"{res['streams']} streams x {res['minutes']:g} min: {res['messages_sent']} messages, "
        f"{res['frames_sent']} frames sent; server counted {res['frames_counted']} frames; "
        f"sequence gaps {res['seq_gaps']}, duplicates {res['duplicate_seq']}"
    )
    echo(
        f"cycles out {res['cycles_out']} vs expected closes {res['cycles_expected']} "
        f"(rejects {res['rejects']}, {res['rejects_at_loop_seam']} of them on a cycle "
        f"spanning the 60 s loop seam of the synthetic walks); "
        f"streams ended {res['streams_ended']}; loop errors {res['loop_errors']}; "
        f"sender behind schedule by {res['sender_late_s']:.2f} s"
    )
    echo("RSS (MiB) over time: " + ", ".join(f"{t:.0f}s {r:.1f}" for t, r in res["rss_mb"]))
    echo(
        f"RSS {'flat' if res['rss_flat'] else 'NOT flat'}: last third vs middle third "
        f"{res['rss_growth_mb']:+.1f} MiB"
    )


@click.command("soak")
@click.option("--streams", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--minutes", type=click.FloatRange(0.05, 24 * 60), default=10.0, show_default=True)
@click.option(
    "--sample-s",
    type=click.FloatRange(0.5, 600),
    default=10.0,
    show_default=True,
    help="RSS sampling interval.",
)
@click.option(
    "--engine",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Model to serve [default: the bundled synthetic demo model].",
)
def bench_soak_cmd(streams, minutes, sample_s, engine):
    """Streams at their real rate into a `g2h-edge serve` process for minutes."""
    res = run_soak(
        SoakConfig(streams=streams, minutes=minutes, sample_s=sample_s, engine=engine), echo=click.echo
    )
    _report(res, click.echo)
    ok = (
        res["seq_gaps"] == 0
        and res["frames_counted"] == res["frames_sent"]
        and res["cycles_out"] + sum(res["rejects"].values()) >= res["cycles_expected"]
    )
    raise SystemExit(0 if ok else 1)
