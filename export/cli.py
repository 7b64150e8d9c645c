"""``g2h-edge export onnx``, ``export trt`` and ``export aoti`` (thin: parse, call, print)."""

from __future__ import annotations

import click

__all__ = ["export_cmd"]


def _batch(value: str):
    if value == "dynamic":
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not 'dynamic' or a positive int") from None
    if n < 1:
        raise click.BadParameter(f"batch must be >= 1, got {n}")
    return n


@click.group("export")
def export_cmd():
    """Export ONNX models, TensorRT plans and AOTInductor packages."""


@export_cmd.command("onnx")
@click.option(
    "--model", "model", required=True, type=click.Path(dir_okay=False), help="Model bundle (.pt) to export."
)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="ONNX file to write.")
@click.option("--batch", default="dynamic", show_default=True, help="'dynamic' or a fixed batch size.")
@click.option("--opset", default=17, show_default=True, type=int, help="ONNX opset (17..20).")
@click.option(
    "--precision",
    default="fp32",
    show_default=True,
    type=click.Choice(["fp32", "bf16", "int8"]),
    help="fp32 (parity 1e-4), bf16 weights, or int8 MatMul weights.",
)
@click.option(
    "--int8-mode",
    default="fused",
    show_default=True,
    type=click.Choice(["fused", "dynamic", "static"]),
    help="int8 form: fused per-channel DynamicQuantizeMatMul (ONNX Runtime), "
    "onnxruntime.quantization dynamic (per-tensor) or static QDQ.",
)
@click.option(
    "--exporter",
    default="torchscript",
    show_default=True,
    type=click.Choice(["torchscript", "dynamo"]),
    help="torch.onnx exporter.",
)
@click.option(
    "--graph",
    default="static",
    show_default=True,
    type=click.Choice(["static", "generic"]),
    help="static: the Transformer or Mamba with the standardisation (and the "
    "Transformer's positions/scale) folded and a constant T (faster); "
    "generic: trace the bundle's module as is.",
)
def onnx_cmd(model, output, batch, opset, precision, int8_mode, exporter, graph):
    """Export a bundle to ONNX (degrees in, per kg out), verified in ONNX Runtime."""
    from g2h_edge.export.onnx import export_onnx

    rep = export_onnx(
        model,
        output,
        batch=_batch(batch),
        opset=opset,
        precision=precision,
        exporter=exporter,
        int8_mode=int8_mode,
        graph=graph,
    )
    trt = ", ".join(
        f"{v}: {'ok' if ok else 'UNSUPPORTED ' + str(list(rep.trt_unsupported[v]))}"
        for v, ok in rep.trt_ok.items()
    )
    click.echo(
        f"wrote {rep.path} ({rep.precision}, {rep.graph} graph, opset {rep.opset}, "
        f"batch {rep.batch}, "
        f"{rep.n_nodes} nodes, sha256 {rep.sha256[:16]}...)"
    )
    click.echo(f"max |onnxruntime - torch| = {rep.max_abs_diff:.3g}")
    click.echo(f"TensorRT op check: {trt}")


@export_cmd.command("trt")
@click.option(
    "--onnx",
    "onnx_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="fp32 ONNX export to build from.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Plan file to write (a .json sidecar is written next to it).",
)
@click.option("--fp16/--no-fp16", default=False, show_default=True, help="Allow FP16 kernels.")
@click.option("--min-batch", default=1, show_default=True, type=int)
@click.option("--opt-batch", default=1, show_default=True, type=int)
@click.option("--max-batch", default=64, show_default=True, type=int)
@click.option("--workspace-mb", default=1024, show_default=True, type=int)
def trt_cmd(onnx_path, output, fp16, min_batch, opt_batch, max_batch, workspace_mb):
    """Build a TensorRT plan on this machine's GPU (needs the gpu extra)."""
    from g2h_edge.export.tensorrt import build_plan, check_profile

    check_profile(min_batch, opt_batch, max_batch, workspace_mb)
    rep = build_plan(
        onnx_path,
        output,
        fp16=fp16,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_mb=workspace_mb,
    )
    m = rep.metadata
    click.echo(
        f"wrote {rep.plan} and {rep.sidecar.name} (TensorRT {m['tensorrt_version']}, "
        f"{m['gpu_name']} sm {m['compute_capability']}, {m['precision']}, batch "
        f"{min_batch}/{opt_batch}/{max_batch}, built in {rep.build_s:.1f} s)"
    )


@export_cmd.command("aoti")
@click.option(
    "--model",
    "model",
    required=True,
    type=click.Path(dir_okay=False),
    help="Model bundle (.pt) to compile (Transformer or Mamba).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Package to write (*.pt2; a .json sidecar is written next to it).",
)
@click.option(
    "--precision",
    default="bf16",
    show_default=True,
    type=click.Choice(["fp32", "bf16"]),
    help="bf16 uses the CPU's AMX/AVX-512 BF16 units; fp32 keeps the 1e-4 parity.",
)
@click.option(
    "--mode",
    default="max-autotune",
    show_default=True,
    type=click.Choice(["default", "max-autotune"]),
    help="max-autotune benchmarks GEMM kernels while compiling (slower build, faster engine).",
)
@click.option(
    "--max-batch",
    default=64,
    show_default=True,
    type=int,
    help="Largest batch one call takes (bigger batches are split).",
)
@click.option(
    "--threads",
    default=None,
    type=int,
    help="Intra-op threads the kernels are compiled for [default: one per core].",
)
def aoti_cmd(model, output, precision, mode, max_batch, threads):
    """Compile a bundle ahead of time for THIS CPU (PyTorch AOTInductor, needs g++)."""
    from g2h_edge.export.aoti import export_aoti

    rep = export_aoti(model, output, precision=precision, mode=mode, max_batch=max_batch, threads=threads)
    m = rep.metadata
    flag = ", SYNTHETIC model" if m.get("synthetic") else ""
    click.echo(
        f"wrote {rep.path} and {rep.sidecar.name} ({m['name']}, {rep.precision}, "
        f"{rep.mode}, batch 1..{rep.max_batch}, {rep.threads} threads, PyTorch "
        f"{m['torch_version']}, built in {rep.build_s:.1f} s{flag})"
    )
    click.echo(f"max |package - torch| = {rep.max_abs_diff:.3g}")
    click.echo(
        f"CPU features its kernels may use: {', '.join(m['cpu_flags']) or 'none'} "
        "(serve it on this kind of CPU only)"
    )
