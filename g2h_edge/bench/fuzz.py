"""``g2h-edge bench fuzz``: hostile messages against a real server while two healthy
replayed streams run; the baseline is a clean run of the same healthy streams.

Reports: crashes (server thread dead, loop errors, internal_error rejects), healthy cycles
lost or changed vs the clean run, every hostile message's reject reason (expected count from
the generator vs what the server reported, per reason), and the server's rate on the mix.
All over real ZeroMQ sockets on loopback (server on a thread of this process).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import click
import numpy as np

from g2h_edge.bench.hostile import MESSAGE_REASONS, HostileGenerator

__all__ = ["FuzzConfig", "run_fuzz", "bench_fuzz_cmd", "HEALTHY"]

HEALTHY = ("healthyA", "healthyB")


@dataclass(frozen=True)
class FuzzConfig:
    messages: int = 100_000
    seed: int = 0
    #: engine file (None: the bundled synthetic demo joint-moment model)
    engine: str | None = None
    #: length of each healthy stream (s of trial time; replayed as fast as possible)
    healthy_s: float = 60.0
    pool: int = 16
    timeout_s: float = 600.0


def _default_engine() -> str:
    from importlib.resources import files

    return str(files("g2h_edge") / "data" / "demo_transformer_jm.pt")


def _healthy_messages(cfg: FuzzConfig) -> dict:
    """{stream: [parts]}: A with the trial's IC events, B with ICs detected online."""
    from g2h_edge.io.synth import make_stream
    from g2h_edge.sources.replay import ReplayConfig, build_messages

    out = {}
    for k, sid in enumerate(HEALTHY):
        trial = make_stream(cfg.healthy_s, 100.0, seed=11 + k, noise_deg=0.2, body_mass_kg=70.0)
        rc = ReplayConfig(stream=sid, with_events=(k == 0))
        out[sid] = [parts for _, parts in build_messages(trial, rc)]
    return out


def _server_cfg():
    from g2h_edge.runtime.config import ServerConfig

    return ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.25,
        stream_timeout_s=3600.0,
    )


def _one_run(engines, healthy: dict, fuzz: list, tail: list, timeout_s: float) -> dict:
    """Send the healthy streams (one publisher socket each) interleaved with ``fuzz`` (a
    third socket), then ``tail``; wait until every stream ended; return what came out."""
    import zmq

    from g2h_edge.runtime.local import LocalServer, OutputCollector
    from g2h_edge.sources.replay import ReplayConfig, open_publisher, wait_for_subscriber

    ctx = zmq.Context()
    with LocalServer(_server_cfg(), engines=engines) as srv:
        with OutputCollector(srv.endpoints["publish"]) as col:
            if not col.wait_ready(60):
                raise RuntimeError("the server published no status")
            socks = {
                name: open_publisher(ctx, ReplayConfig(address=srv.endpoints["listen"], linger_s=60))
                for name in [*healthy, "fuzz"]
            }
            for s in socks.values():
                wait_for_subscriber(s, 30)
            t0 = time.perf_counter()
            n_f, n_h = len(fuzz), max(len(m) for m in healthy.values())
            h_at = {sid: 0 for sid in healthy}
            for i in range(max(n_f, 1)):
                if i < n_f:
                    socks["fuzz"].send_multipart(fuzz[i])
                for sid, msgs in healthy.items():  # spread the healthy messages evenly
                    while h_at[sid] < len(msgs) and h_at[sid] * max(n_f, 1) <= i * n_h:
                        socks[sid].send_multipart(msgs[h_at[sid]])
                        h_at[sid] += 1
            for sid, msgs in healthy.items():
                for parts in msgs[h_at[sid] :]:
                    socks[sid].send_multipart(parts)
            for parts in tail:
                socks["fuzz"].send_multipart(parts)
            ends = [*healthy] + [bytes(p[0]).decode() for p in tail]
            ok = col.wait_for(lambda c: all(s in c.ended_ for s in ends), timeout_s, on_self=True)
            sent_s = time.perf_counter() - t0
            n = col.statuses_  # one more status: final counters
            col.wait_for(lambda c: c.statuses_ >= n + 2, 10, on_self=True)
            for s in socks.values():
                s.close(0)
            alive = srv.thread_.is_alive()
            status = col.of_type("status")[-1]
            msgs = list(col.messages)
    ctx.term()
    return {"ok": ok, "alive": alive, "status": status, "messages": msgs, "wall_s": sent_s}


def _healthy_cycles(messages) -> dict:
    return {
        (m["stream"], m["side"], m["cycle"], m["model"]): (m["t_start"], m["t_end"], m["y"])
        for m in messages
        if m["type"] == "cycle" and m["stream"] in HEALTHY
    }


def run_fuzz(cfg: FuzzConfig, echo=print) -> dict:
    """Clean run, then the fuzz run; returns the figures (see module doc)."""
    from g2h_edge.engines import load_engine

    engines = [load_engine(cfg.engine or _default_engine(), threads=1)]
    try:
        healthy = _healthy_messages(cfg)
        echo(f"clean run: {sum(map(len, healthy.values()))} healthy messages, 2 streams")
        clean = _one_run(engines, healthy, [], [], cfg.timeout_s)
        gen = HostileGenerator(cfg.seed, cfg.pool)
        fuzz = gen.setup() + [None] * cfg.messages
        expected = Counter()
        for i in range(cfg.messages):
            parts, reason = gen.next()
            fuzz[cfg.pool + i] = parts
            expected[reason or "accepted"] += 1
        echo(f"fuzz run: {cfg.messages} hostile messages (seed {cfg.seed}) + the same healthy streams")
        dirty = _one_run(engines, healthy, fuzz, gen.teardown(), cfg.timeout_s)
    finally:
        for eng in engines:
            eng.close()
    return _compare(cfg, clean, dirty, expected)


def _compare(cfg: FuzzConfig, clean: dict, dirty: dict, expected: Counter) -> dict:
    a, b = _healthy_cycles(clean["messages"]), _healthy_cycles(dirty["messages"])
    lost, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    same = [k for k in a if k in b]
    dy = max((float(np.max(np.abs(a[k][2] - b[k][2]))) for k in same), default=0.0)
    moved = sum(a[k][:2] != b[k][:2] for k in same)
    reasons = Counter()
    healthy_rejects = {True: Counter(), False: Counter()}
    for run, res in ((True, clean), (False, dirty)):
        for m in res["messages"]:
            if m["type"] == "reject" and m.get("stream") in HEALTHY:
                healthy_rejects[run][m["reason"]] += 1
    for m in dirty["messages"]:
        if m["type"] == "reject" and m.get("stream") not in HEALTHY:
            reasons[m["reason"]] += 1
    msg_level = {r: reasons[r] for r in reasons if r in MESSAGE_REASONS}
    exp = {r: n for r, n in expected.items() if r != "accepted"}
    mismatch = {
        r: (exp.get(r, 0), msg_level.get(r, 0))
        for r in set(exp) | set(msg_level)
        if exp.get(r, 0) != msg_level.get(r, 0)
    }
    tot = dirty["status"]["totals"]
    status_rejects = Counter(dirty["status"]["rejects"])
    return {
        "messages": cfg.messages,
        "seed": cfg.seed,
        "finished": dirty["ok"] and clean["ok"],
        "server_alive": dirty["alive"],
        "loop_errors": tot.get("loop_errors", 0),
        "internal_errors": status_rejects.get("internal_error", 0),
        "healthy_cycles_clean": len(a),
        "healthy_cycles_fuzz": len(b),
        "healthy_lost": len(lost),
        "healthy_extra": len(extra),
        "healthy_moved": moved,
        "healthy_max_abs_dy": dy,
        "healthy_rejects_clean": dict(healthy_rejects[True]),
        "healthy_rejects_fuzz": dict(healthy_rejects[False]),
        "expected_rejects": dict(sorted(exp.items())),
        "message_rejects": dict(sorted(msg_level.items())),
        "stream_rejects": {r: n for r, n in sorted(reasons.items()) if r not in MESSAGE_REASONS},
        "accepted_hostile": expected.get("accepted", 0),
        "reject_mismatch": mismatch,
        "published_rejects_match_status": sum(reasons.values()) + sum(healthy_rejects[False].values())
        == sum(status_rejects.values()),
        "fuzz_wall_s": dirty["wall_s"],
        "clean_wall_s": clean["wall_s"],
        "fuzz_msgs_per_s": cfg.messages / max(dirty["wall_s"], 1e-9),
    }


def _report(res: dict, echo) -> None:
    ok = (
        res["finished"]
        and res["server_alive"]
        and not res["loop_errors"]
        and not res["internal_errors"]
        and not res["healthy_lost"]
        and not res["healthy_extra"]
        and not res["reject_mismatch"]
    )
    echo(
        f"crashes: server alive={res['server_alive']}, loop_errors={res['loop_errors']}, "
        f"internal_error rejects={res['internal_errors']}"
    )
    echo(
        f"healthy cycles: clean {res['healthy_cycles_clean']}, under fuzz "
        f"{res['healthy_cycles_fuzz']} (lost {res['healthy_lost']}, extra "
        f"{res['healthy_extra']}, boundaries moved {res['healthy_moved']}, max |dy| "
        f"{res['healthy_max_abs_dy']:.2e}); healthy rejects clean "
        f"{res['healthy_rejects_clean']} / fuzz {res['healthy_rejects_fuzz']}"
    )
    echo(f"hostile messages: {res['messages']} ({res['accepted_hostile']} hostile but valid)")
    echo(f"{'reason':24s} {'expected':>9s} {'reported':>9s}")
    for r in sorted(set(res["expected_rejects"]) | set(res["message_rejects"])):
        echo(f"{r:24s} {res['expected_rejects'].get(r, 0):9d} {res['message_rejects'].get(r, 0):9d}")
    echo(f"stream-level rejects of fuzz streams (not per message): {res['stream_rejects']}")
    echo(
        f"fuzz run {res['fuzz_wall_s']:.1f} s ({res['fuzz_msgs_per_s']:.0f} hostile msgs/s "
        f"sent+handled), clean run {res['clean_wall_s']:.1f} s"
    )
    echo("RESULT: " + ("PASS" if ok else f"FAIL (mismatch {res['reject_mismatch']})"))


@click.command("fuzz")
@click.option(
    "--messages",
    type=click.IntRange(1, 10_000_000),
    default=100_000,
    show_default=True,
    help="Hostile messages to send.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--engine",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Model to serve [default: the bundled synthetic demo model].",
)
@click.option(
    "--healthy-seconds",
    "healthy_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Length of each of the two healthy streams (trial time).",
)
def bench_fuzz_cmd(messages, seed, engine, healthy_s):
    """Fuzz a real server over loopback while two healthy streams run (exit 1 on failure)."""
    res = run_fuzz(
        FuzzConfig(messages=messages, seed=seed, engine=engine, healthy_s=healthy_s), echo=click.echo
    )
    _report(res, click.echo)
    ok = (
        res["server_alive"]
        and not res["loop_errors"]
        and not res["internal_errors"]
        and not res["healthy_lost"]
        and not res["reject_mismatch"]
    )
    raise SystemExit(0 if ok else 1)
