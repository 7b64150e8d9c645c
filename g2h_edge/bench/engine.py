"""``g2h-edge bench engine``: latency and throughput of an engine vs torch eager, same run.

The baseline is the reference path of the paper's predict script: the published
architecture as an ``nn.Module`` in eager PyTorch, inputs standardised in numpy, then
``model(x)`` under ``torch.no_grad()``. Engine and baseline are timed in interleaved rounds
so that load from other processes hits both alike; numbers are per call and per cycle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import click
import numpy as np

from g2h_edge.cli.options import torch_engine_options
from g2h_edge.errors import EngineError

__all__ = ["BenchRow", "time_calls", "bench_pair", "reference_fn", "bench_engine_cmd"]


@dataclass(frozen=True)
class BenchRow:
    """Timing of one path at one batch size (milliseconds per call unless said)."""

    path: str
    batch: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cycles_per_s: float

    @property
    def ms_per_cycle(self) -> float:
        return self.p50_ms / self.batch


def time_calls(fn, x: np.ndarray, n: int) -> np.ndarray:
    """Wall time (s) of ``n`` calls of ``fn(x)``."""
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(x)
        out[i] = time.perf_counter() - t0
    return out


def _row(path: str, batch: int, times: np.ndarray) -> BenchRow:
    ms = times * 1e3
    return BenchRow(
        path,
        batch,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(ms.mean()),
        float(batch / times.mean()),
    )


def bench_pair(fns: dict, x: np.ndarray, *, iters: int, warmup: int, rounds: int = 5) -> list[BenchRow]:
    """Time each ``fns[name](x)`` ``iters`` times in ``rounds`` interleaved blocks."""
    for fn in fns.values():
        time_calls(fn, x, warmup)
    per = max(1, iters // rounds)
    acc = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            acc[name].append(time_calls(fn, x, per))
    return [_row(name, x.shape[0], np.concatenate(ts)) for name, ts in acc.items()]


def reference_fn(engine, bundle_path=None, threads=None):
    """The torch-eager reference path for ``engine``'s architecture.

    Weights: the bundle at ``bundle_path`` when given (a .pt engine is its own bundle),
    otherwise the published architecture with its default (seeded) initialisation, which
    costs the same except for the Mamba scan, whose speed depends on its decays.
    """
    import torch

    from g2h_edge.models import build_model, load_bundle

    if threads:
        torch.set_num_threads(int(threads))
    meta = engine.metadata
    if bundle_path is None and str(meta.get("path", "")).endswith(".pt"):
        bundle_path = meta["path"]
    if bundle_path is not None:
        b = load_bundle(bundle_path)
        arch, hparams, mean, std = b.arch, b.hparams, b.mean, b.std
        model = build_model(arch, hparams)
        model.load_state_dict(b.state_dict)
        weights = "bundle"
    else:
        if "arch" not in meta or "hparams" not in meta:
            raise EngineError(
                "the engine's metadata has no arch/hparams: pass --bundle", reason="bad_metadata"
            )
        torch.manual_seed(0)
        arch, hparams = meta["arch"], meta["hparams"]
        mean = np.asarray(meta["mean"], np.float32)
        std = np.asarray(meta["std"], np.float32)
        model = build_model(arch, hparams)
        weights = "default init"
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        xs = (x - mean) / std  # standardise as the paper's predict script does
        with torch.no_grad():
            return model(torch.from_numpy(xs.astype(np.float32))).numpy()

    return run, f"torch eager {arch} ({weights})"


def _cycles(mean, std, n: int, T: int, seed: int = 0) -> np.ndarray:
    """``n`` smooth synthetic cycles (n, T, 10) around mean with about one std of motion."""
    rng = np.random.default_rng(seed)
    phase = np.linspace(0.0, 2.0 * np.pi, T)[None, :, None]  # (1, T, 1)
    amp = rng.normal(0.0, 0.8, (n, 1, 10))
    off = rng.uniform(0.0, 2.0 * np.pi, (n, 1, 10))
    x = np.asarray(mean)[None, None] + np.asarray(std)[None, None] * amp * np.sin(phase + off)
    return x.astype(np.float32)


def _batches(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of ints") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"batch sizes must be >= 1, got {text!r}")
    return out


@click.command("engine")
@click.option(
    "--engine",
    "engine_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Engine file (.onnx, .plan, .pt).",
)
@click.option("--batch", "batch", default="1,64", show_default=True, help="Batch sizes.")
@click.option("--iters", default=200, show_default=True, type=int, help="Timed calls per path.")
@click.option("--warmup", default=20, show_default=True, type=int)
@click.option("--threads", default=None, type=int, help="Intra-op threads (engine and torch).")
@click.option(
    "--bundle",
    "bundle_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Bundle whose weights the torch baseline uses.",
)
@click.option("--no-reference", is_flag=True, help="Skip the torch-eager baseline.")
@click.option(
    "--trust-native",
    is_flag=True,
    help="Load a .pt2/.plan that your own `g2h-edge export` did not build (native code).",
)
@torch_engine_options
def bench_engine_cmd(
    engine_path,
    batch,
    iters,
    warmup,
    threads,
    bundle_path,
    no_reference,
    trust_native,
    torch_precision,
    torch_compile,
):
    """Engine latency p50/p99 and cycles/s, with the torch-eager reference as baseline."""
    from g2h_edge.engines import load_engine
    from g2h_edge.engines.common import torch_flags

    if iters < 5 or warmup < 0:
        raise click.BadParameter("--iters must be >= 5 and --warmup >= 0")
    engine = load_engine(
        engine_path,
        threads=threads,
        trust_native=trust_native,
        **torch_flags(engine_path, torch_precision, torch_compile),
    )
    engine.warmup(batch_sizes=tuple(_batches(batch)))  # compiled engines compile here
    label = engine.metadata.get("precision", "fp32")
    if engine.metadata.get("compile"):
        label += f", compiled {engine.metadata['compile']}"
    fns = {f"{engine.backend} ({label})": engine.infer}
    if not no_reference:
        ref, label = reference_fn(engine, bundle_path, threads)
        fns[label] = ref
    click.echo(
        f"engine {engine_path}: {engine.name} {engine.metadata.get('arch', '?')} "
        f"task {engine.task}, threads {threads or 'default'}" + (", SYNTHETIC" if engine.synthetic else "")
    )
    click.echo(f"{'path':44s} {'batch':>5s} {'p50 ms':>9s} {'p99 ms':>9s} {'ms/cycle':>9s} {'cycles/s':>10s}")
    for b in _batches(batch):
        x = _cycles(
            engine.metadata.get("mean", np.zeros(10)), engine.metadata.get("std", np.ones(10)), b, engine.T
        )  # (b, T, 10)
        rows = bench_pair(fns, x, iters=iters, warmup=warmup)
        for r in rows:
            click.echo(
                f"{r.path:44s} {r.batch:5d} {r.p50_ms:9.3f} {r.p99_ms:9.3f} "
                f"{r.ms_per_cycle:9.4f} {r.cycles_per_s:10.0f}"
            )
        if len(rows) == 2:
            ratio = rows[1].p50_ms / rows[0].p50_ms
            click.echo(f"  speed-up vs torch eager at batch {b}: {ratio:.2f}x (p50)")
    engine.close()
