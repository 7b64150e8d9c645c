"""``g2h-edge demo``: the whole main job on the bundled example, with no arguments.

Server (ONNX Runtime on the CPU when the bundled models can be exported, else torch) +
replay of the bundled SYNTHETIC example trial over loopback ZeroMQ + a live table of every
published cycle + a PNG of the predicted waveforms. The bundled models are trained on the
project's synthetic cohort: their numbers are NOT physiology, and the demo says so.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge.errors import ConfigError, ModelError
from g2h_edge.runtime.config import ServerConfig
from g2h_edge.runtime.local import LocalServer, OutputCollector

__all__ = ["DemoConfig", "run_demo", "demo_bundles", "demo_engine_paths", "cycle_row", "SYNTHETIC_NOTE"]

SYNTHETIC_NOTE = (
    "NOTE: the bundled demo models were trained on SYNTHETIC data and the "
    "example trial is synthetic too: the numbers below are NOT physiology. "
    "Use the published checkpoints (g2h-edge models import) for real use."
)


@dataclass(frozen=True)
class DemoConfig:
    out_dir: str = "g2h_demo"
    speed: float = 2.0
    backend: str = "auto"  # auto | onnx | torch
    plot: bool = True
    with_events: bool = False  # use the trial's IC events instead of online detection
    cache_dir: str | None = None  # where ONNX exports are cached
    #: model bundles (.pt) to serve instead of the bundled demo models
    models: tuple[str, ...] = ()

    def __post_init__(self):
        if self.backend not in ("auto", "onnx", "torch"):
            raise ConfigError(f"DemoConfig.backend = {self.backend!r}: use auto, onnx, torch")
        if not (isinstance(self.speed, (int, float)) and self.speed > 0):
            raise ConfigError(f"DemoConfig.speed = {self.speed!r} must be > 0")


def demo_bundles() -> list[Path]:
    """The bundled demo model files (g2h_edge/data/demo_*.pt)."""
    data = Path(__file__).resolve().parents[1] / "data"
    found = sorted(data.glob("demo_*.pt"))
    if not found:
        raise ModelError(
            f"no bundled demo models (demo_*.pt) in {data}; reinstall g2h-edge "
            "or pass your own model to g2h-edge serve --engine",
            reason="no_demo",
        )
    return found


def _cache_dir(cfg: DemoConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "g2h-edge"


def demo_engine_paths(cfg: DemoConfig, echo=print) -> list[str]:
    """Engine files for the demo: ONNX exports of the bundles (cached) or the bundles."""
    bundles = [Path(m) for m in cfg.models] if cfg.models else demo_bundles()
    if cfg.backend == "torch":
        return [str(b) for b in bundles]
    try:
        from g2h_edge.export import export_onnx
    except ImportError as exc:
        if cfg.backend == "onnx":
            raise
        echo(f"note: ONNX export is unavailable ({exc}); serving the torch bundles instead")
        return [str(b) for b in bundles]
    cache = _cache_dir(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for b in bundles:
        digest = hashlib.sha256(b.read_bytes()).hexdigest()[:16]
        onnx_path = cache / f"{b.stem}-{digest}.onnx"
        if not onnx_path.is_file():
            echo(f"exporting {b.name} to ONNX ({onnx_path}) ...")
            tmp = onnx_path.with_suffix(".tmp.onnx")
            export_onnx(b, tmp)
            tmp.replace(onnx_path)
        out.append(str(onnx_path))
    return out


def _short(name: str) -> str:
    return name.replace("_moment", "").replace("hip_", "").removesuffix("_r")


def cycle_row(msg: dict) -> str:
    """One line of the live table for a cycle message."""
    peaks = " ".join(f"{_short(c)}={v:.2f}" for c, v in zip(msg["outputs"], msg["y"].max(axis=0)))
    dur = msg["t_end"] - msg["t_start"]
    q = msg.get("quality") or {}
    ood = q.get("ood_phase_z", q.get("ood_z"))
    flags = ",".join(q.get("flags") or []) or "-"
    return (
        f"{msg['stream']:<8} {msg['side']}  {msg['cycle']:>3}  {dur:5.2f}s  "
        f"{msg['model'][:22]:<22} {msg['latency_ms']:7.2f}  "
        f"{'' if ood is None else f'{ood:5.2f}':>5} {flags:<14} [{msg['unit']}] {peaks}"
    )


HEADER = (
    f"{'stream':<8} side cyc  dur     {'model':<22} {'lat ms':>7}  {'ood':>5} {'flags':<14} peak per output"
)


def _printer(echo):
    def on_message(msg):
        if msg["type"] == "cycle":
            echo(cycle_row(msg))
        elif msg["type"] == "reject":
            echo(f"{msg.get('stream') or '?':<8} reject {msg['reason']}: {msg['detail'][:100]}")

    return on_message


def run_demo(cfg: DemoConfig, echo=print) -> dict:
    """Run the demo; returns a summary dict (cycles, rejects, latency, plot paths)."""
    from g2h_edge.io.trial import read_trial
    from g2h_edge.sources.example import example_trial_path
    from g2h_edge.sources.replay import ReplayConfig, replay

    echo(SYNTHETIC_NOTE)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / "demo_record.g2hrec"
    if record.exists():
        record.unlink()
    engines = demo_engine_paths(cfg, echo)
    trial = read_trial(example_trial_path())
    scfg = ServerConfig(
        engines=tuple(engines),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        record_path=str(record),
        status_interval_s=0.25,
        engine_threads=1,
    )
    with LocalServer(scfg) as srv:
        names = ", ".join(f"{e.name} ({e.backend})" for e in srv.server.engines)
        echo(f"server: {srv.endpoints['listen']} -> {srv.endpoints['publish']}; {names}")
        echo(
            f"replaying {example_trial_path().name} ({trial.duration_s:.0f} s at "
            f"{trial.rate_hz:g} Hz, speed x{cfg.speed:g}, ICs "
            f"{'from the trial events' if cfg.with_events else 'detected online'})"
        )
        echo(HEADER)
        with OutputCollector(srv.endpoints["publish"], on_message=_printer(echo)) as col:
            if not col.wait_ready(30):
                raise ConfigError("the demo's subscriber did not connect", reason="no_status")
            replay(
                trial,
                ReplayConfig(
                    address=srv.endpoints["listen"],
                    stream="example",
                    speed=cfg.speed,
                    with_events=cfg.with_events,
                ),
            )
            ended = col.wait_ended("example", 60)
            cycles, rejects = col.of_type("cycle"), col.of_type("reject")
    summary = _summary(cycles, rejects, ended, record)
    echo(
        f"{summary['cycles']} cycle messages, rejects {summary['rejects'] or 'none'}; "
        f"latency p50 {summary['latency_p50_ms']:.2f} ms, p99 {summary['latency_p99_ms']:.2f}"
        f" ms (closing frame arrival -> publish); record: {record}"
    )
    if cfg.plot and cycles:
        summary["plots"] = plot_cycles(cycles, out_dir, echo)
    echo(SYNTHETIC_NOTE.replace("numbers below", "numbers above"))
    return summary


def _summary(cycles, rejects, ended, record) -> dict:
    lat = np.array([c["latency_ms"] for c in cycles]) if cycles else np.zeros(1)
    reasons: dict = {}
    for r in rejects:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    return {
        "cycles": len(cycles),
        "rejects": reasons,
        "ended": ended,
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
        "record": str(record),
        "plots": [],
    }


def plot_cycles(cycles: list, out_dir: Path, echo=print) -> list[str]:
    """One PNG per model: each output's predicted waveform of every cycle (R solid,
    L dashed), 0-100 % of the gait cycle."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        echo("note: matplotlib is not installed, no plot (pip install 'g2h-edge[plot]')")
        return []
    paths = []
    for model in sorted({c["model"] for c in cycles}):
        mine = [c for c in cycles if c["model"] == model]
        cols = mine[0]["outputs"]
        ncol = min(4, len(cols))
        nrow = -(-len(cols) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False)
        pct = np.linspace(0, 100, mine[0]["y"].shape[0])
        for k, col in enumerate(cols):
            ax = axes[k // ncol][k % ncol]
            for c in mine:
                ax.plot(
                    pct,
                    c["y"][:, k],
                    "-" if c["side"] == "R" else "--",
                    lw=0.8,
                    color="tab:blue" if c["side"] == "R" else "tab:orange",
                )
            ax.set_title(col, fontsize=8)
            ax.set_xlabel("% gait cycle", fontsize=7)
            ax.tick_params(labelsize=6)
        for k in range(len(cols), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        fig.suptitle(
            f"{model} [{mine[0]['unit']}], R solid / L dashed -- SYNTHETIC model and data, not physiology",
            fontsize=9,
        )
        fig.tight_layout()
        path = out_dir / (f"{model}.png" if model.startswith("demo") else f"demo_{model}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(str(path))
        echo(f"plot: {path}")
    return paths
