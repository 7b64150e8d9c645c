"""Precision report: latency and accuracy cost of fp32 / bf16 / int8 ONNX exports.

    python -m g2h_edge.bench.precision_report --reference ../shared/reference --data ../shared/data

For each published checkpoint: exports fp32, bf16 and int8 to a temp dir; times them at
batch 1 and 64 next to the torch-eager reference path (interleaved rounds, same run); and
reports per precision the max abs difference to fp32 and the R2 on
- the parity inputs, against the published outputs (``parity.npz``), and
- real cycles (``schreiber2019`` segmented at the force-plate foot strikes): for joint-moment
  models against the OpenSim hip moments, for muscle-force models against the fp32 output
  (there is no measured muscle force).
With ``--aoti`` the Transformer and Mamba checkpoints also get a bf16 AOTInductor package
(``g2h-edge export aoti``, max-autotune) in the same table, as precision ``aoti-bf16``.
Prints a markdown table. Nothing derived from the checkpoints is written outside the temp dir.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["r2", "precision_report", "main"]

PRECISIONS = ("fp32", "bf16", "int8")


def r2(y: np.ndarray, ref: np.ndarray) -> float:
    """Pooled R2 per output channel over all cycles and frames, averaged over channels."""
    y, ref = y.reshape(-1, y.shape[-1]), ref.reshape(-1, ref.shape[-1])
    ss_res = ((y - ref) ** 2).sum(0)
    ss_tot = ((ref - ref.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - ss_res / np.maximum(ss_tot, 1e-12)))


def _latency(engines: dict, ref_fn, batches, iters: int) -> dict:
    from g2h_edge.bench.engine import bench_pair

    out = {}
    for b in batches:
        x = np.random.default_rng(0).normal(0.0, 1.0, (b, 180, 10)).astype(np.float32)
        x = x * 5.0 + 10.0
        fns = {k: e.infer for k, e in engines.items()}
        fns["torch"] = ref_fn
        n = iters if b == 1 else max(10, iters // 10)  # big batches: fewer, longer calls
        for row in bench_pair(fns, x, iters=n, warmup=max(2, n // 10), rounds=5):
            out[(row.path, b)] = row.p50_ms / b
    return out


def precision_report(
    reference_dir,
    data_dir=None,
    *,
    names=None,
    threads: int = 2,
    iters: int = 200,
    batches=(1, 64),
    verbose: bool = False,
    aoti: bool = False,
) -> list[dict]:
    """One dict per (checkpoint, precision); see module doc."""
    from g2h_edge.bench.engine import reference_fn
    from g2h_edge.engines.onnx_engine import OnnxEngine
    from g2h_edge.errors import ExportError
    from g2h_edge.export.cycles import real_cycles
    from g2h_edge.export.onnx import export_onnx
    from g2h_edge.models import import_checkpoint, save_bundle

    reference_dir = Path(reference_dir)
    names = names or sorted(p.stem for p in reference_dir.glob("*.pt"))
    with np.load(reference_dir / "parity.npz") as z:
        parity = {k: z[k] for k in z.files}
    real = real_cycles(data_dir) if data_dir else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="g2h-report-") as tmp:
        for name in names:
            bp = save_bundle(import_checkpoint(reference_dir / f"{name}.pt"), Path(tmp) / f"{name}.pt")
            engines, label = {}, {}
            for prec in PRECISIONS:
                label[prec] = prec
                try:
                    rep = export_onnx(
                        bp, Path(tmp) / f"{name}_{prec}.onnx", precision=prec, verify_batches=(1,)
                    )
                except ExportError as exc:  # fused int8 finds nothing to quantise (LSTM)
                    if exc.reason != "quantize_failed":
                        raise
                    rep = export_onnx(
                        bp,
                        Path(tmp) / f"{name}_{prec}.onnx",
                        precision=prec,
                        verify_batches=(1,),
                        int8_mode="dynamic",
                    )
                    label[prec] = f"{prec} (dynamic)"
                engines[prec] = OnnxEngine.from_file(rep.path, threads=threads)
            if aoti and name.startswith(("Transformer", "Mamba")):
                from g2h_edge.engines.aoti_engine import AotiEngine
                from g2h_edge.export.aoti import export_aoti

                pkg = export_aoti(bp, Path(tmp) / f"{name}_aoti.pt2", precision="bf16", threads=threads)
                engines["aoti-bf16"] = AotiEngine.from_file(pkg.path, threads=threads)
                label["aoti-bf16"] = "aoti-bf16"
            ref_fn, _ = reference_fn(engines["fp32"], bp, threads)
            lat = _latency(engines, ref_fn, batches, iters)
            X, Y = parity["X"], parity[f"Y_{name}"]
            outs = {p: e.infer(X) for p, e in engines.items()}
            real_outs = {p: e.infer(real.x) for p, e in engines.items()} if real else {}
            for prec in engines:
                row = {
                    "model": name,
                    "precision": label[prec],
                    "parity_maxdiff_vs_fp32": float(np.abs(outs[prec] - outs["fp32"]).max()),
                    "parity_r2": r2(outs[prec], Y),
                }
                for b in batches:
                    row[f"ms_per_cycle_b{b}"] = lat[(prec, b)]
                    row[f"torch_ms_per_cycle_b{b}"] = lat[("torch", b)]
                if real:
                    y = real_outs[prec]
                    row["real_maxdiff_vs_fp32"] = float(np.abs(y - real_outs["fp32"]).max())
                    row["real_r2"] = r2(y, real.y) if name.endswith("JM60") else r2(y, real_outs["fp32"])
                rows.append(row)
                if verbose:
                    print(row, flush=True)
            for e in engines.values():
                e.close()
    return rows


def _table(rows: list[dict], batches) -> str:
    cols = (
        ["model", "precision"]
        + [f"ms_per_cycle_b{b}" for b in batches]
        + [f"torch_ms_per_cycle_b{b}" for b in batches]
        + ["parity_maxdiff_vs_fp32", "parity_r2", "real_maxdiff_vs_fp32", "real_r2"]
    )
    cols = [c for c in cols if c in rows[0]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            "| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m g2h_edge.bench.precision_report", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--reference", required=True)
    ap.add_argument("--data", default=None)
    ap.add_argument("--names", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument(
        "--aoti", action="store_true", help="also a bf16 AOTInductor package per Transformer/Mamba checkpoint"
    )
    args = ap.parse_args(argv)
    rows = precision_report(
        args.reference,
        args.data,
        names=args.names,
        threads=args.threads,
        iters=args.iters,
        verbose=True,
        aoti=args.aoti,
    )
    print(_table(rows, (1, 64)))


if __name__ == "__main__":
    main()
