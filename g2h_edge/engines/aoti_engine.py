"""The AOTInductor engine: serves a ``.pt2`` package built by ``g2h-edge export aoti``.

A package is machine code compiled on and for one CPU (:mod:`g2h_edge.export.aoti`): its
kernels use that CPU's instruction set (AMX, AVX-512; a CPU without them would die on an
illegal instruction), a fixed intra-op thread count, and the PyTorch version's C++ ABI. Its
``<package>.json`` sidecar records the model metadata, the PyTorch version, the machine, the
CPU's ISA flags, the thread count, the precision, the batch range and the package's sha256.
Loading checks all of it first and refuses a package that cannot run here, with a message to
rebuild it on the target.

``threads`` sets PyTorch's intra-op threads (the attention and other library kernels); the
compiled GEMM kernels always use the thread count they were built with
(``engine.metadata["threads"]``). None uses that count for everything.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge.engines.base import Engine
from g2h_edge.engines.common import (
    EngineOptions,
    check_built_here,
    make_options,
    read_json_sidecar,
    run_in_chunks,
    sidecar_path,
)
from g2h_edge.engines.trust import verify_sidecar
from g2h_edge.errors import EngineError
from g2h_edge.models.bundle import file_sha256

__all__ = [
    "AotiEngine",
    "AotiOptions",
    "sidecar_path",
    "read_sidecar",
    "check_package_compat",
    "cpu_isa_flags",
    "SIDECAR_KEYS",
    "AOTI_FORMAT_TAG",
    "AOTI_PRECISIONS",
    "AOTI_MODES",
    "ISA_FLAGS",
]

AOTI_FORMAT_TAG = "g2h-edge-aoti"
AOTI_PRECISIONS = ("fp32", "bf16")
AOTI_MODES = ("default", "max-autotune")
SIDECAR_KEYS = (
    "format",
    "precision",
    "mode",
    "min_batch",
    "max_batch",
    "threads",
    "torch_version",
    "machine",
    "cpu_flags",
    "package_sha256",
    "built_utc",
)
#: /proc/cpuinfo flags that decide which kernels a compiled package may contain
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "bf16",
    "i8mm",
)


def cpu_isa_flags(cpuinfo: str | None = None) -> set[str]:
    """The :data:`ISA_FLAGS` this CPU has (from /proc/cpuinfo on Linux; an empty set where
    it cannot be read, which makes every package built elsewhere refuse to load)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags & set(ISA_FLAGS)


def read_sidecar(package) -> dict:
    """The sidecar of ``package`` as a dict (EngineError when missing or unreadable)."""
    meta = read_json_sidecar(
        package,
        keys=SIDECAR_KEYS,
        tag=AOTI_FORMAT_TAG,
        kind="AOTInductor package",
        rebuild="g2h-edge export aoti",
    )
    if (
        meta["precision"] not in AOTI_PRECISIONS
        or not isinstance(meta["cpu_flags"], list)
        or not all(
            isinstance(meta[k], int) and not isinstance(meta[k], bool) and meta[k] >= 1
            for k in ("min_batch", "max_batch", "threads")
        )
    ):
        raise EngineError(
            f"sidecar {sidecar_path(package)} has invalid values (precision, "
            "cpu_flags, batch range or threads)",
            reason="bad_sidecar",
        )
    return meta


def check_package_compat(
    meta: dict,
    *,
    torch_version: str,
    machine: str,
    cpu_flags: set,
    package_sha256: str,
    package_name: str = "package",
) -> None:
    """Refuse a package built for another PyTorch, machine or CPU, or whose bytes changed."""
    problems = []
    if str(meta["torch_version"]) != str(torch_version):
        problems.append(f"built with PyTorch {meta['torch_version']}, this is {torch_version}")
    if str(meta["machine"]) != str(machine):
        problems.append(f"built for {meta['machine']}, this machine is {machine}")
    lacking = sorted(set(meta["cpu_flags"]) - set(cpu_flags))
    if lacking:
        problems.append(f"its kernels use CPU features this CPU lacks: {lacking}")
    check_built_here(
        problems,
        kind="AOTInductor package",
        name=package_name,
        why="A package is machine code for the CPU and PyTorch that built it",
        rebuild=f"g2h-edge export aoti --model BUNDLE.pt -o {package_name}",
        reason="package_mismatch",
        recorded_sha256=meta["package_sha256"],
        sha256=package_sha256,
        also=" (or serve the .onnx export)",
    )


@dataclass(frozen=True)
class AotiOptions(EngineOptions):
    """Options of the AOTInductor engine: ``threads`` sets PyTorch's intra-op threads (the
    compiled GEMM kernels keep the count they were built with; see the module doc);
    ``trust_native`` loads a package this user's build key did not sign
    (:mod:`g2h_edge.engines.trust`)."""

    trust_native: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.trust_native, bool):
            raise EngineError(f"trust_native must be a bool, got {self.trust_native!r}", reason="bad_option")


def load_package(path: Path):
    """``(runner, folder)``: the package loaded with its files extracted into a private
    temporary folder (the loader extracts into $TMPDIR), which is removed when the load
    fails; the caller removes it after closing the runner."""
    import torch

    folder = tempfile.mkdtemp(prefix="g2h-aoti-load-")
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = folder  # read by the C++ loader for its extraction
    try:
        return torch._inductor.aoti_load_package(str(path)), folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before


class AotiEngine(Engine):
    """An AOTInductor package on the CPU (see the module doc)."""

    backend = "aoti"
    Options = AotiOptions

    def __init__(self, runner, metadata: dict, options: AotiOptions | None = None):
        import torch

        if isinstance(runner, (str, Path)):
            raise TypeError(
                "AotiEngine takes a loaded package runner; use AotiEngine.from_file(path) for a .pt2 file"
            )
        opts = options or AotiOptions()
        super().__init__(dict(metadata, backend=self.backend), sha256=metadata["package_sha256"])
        self.options = opts
        built = int(metadata["threads"])
        torch.set_num_threads(built if opts.threads is None else opts.threads)
        self.runner_ = runner
        self.cleanup_ = None  # set by from_file: removes the extracted files
        self.min_batch, self.max_batch = int(metadata["min_batch"]), int(metadata["max_batch"])
        self.run_ = self._direct_runner(torch)

    @classmethod
    def from_file(cls, path, options: AotiOptions | None = None, **kwargs) -> AotiEngine:
        """Check the package ``path`` against its sidecar and this machine, then load it
        (EngineError naming what to rebuild). ``kwargs`` build the options when ``options``
        is None."""
        import torch

        opts = options or make_options(AotiOptions, kwargs, "AOTInductor engines")
        path = Path(path)
        meta = read_sidecar(path)
        try:
            sha = file_sha256(path)  # streamed: the package is not kept
        except OSError as exc:
            raise EngineError(f"cannot read AOTInductor package {path}: {exc}", reason="io_error") from exc
        check_package_compat(
            meta,
            torch_version=torch.__version__,
            machine=platform.machine(),
            cpu_flags=cpu_isa_flags(),
            package_sha256=sha,
            package_name=path.name,
        )
        verify_sidecar(meta, kind="AOTInductor package", name=path.name, trust_native=opts.trust_native)
        built = int(meta["threads"])
        if opts.threads is not None and opts.threads != built:
            warnings.warn(
                f"{path.name} was compiled for {built} intra-op threads: its "
                f"GEMM kernels use {built} whatever --threads says ({opts.threads} "
                "applies to the attention and library kernels); rebuild it "
                f"with `g2h-edge export aoti --threads {opts.threads}` to change "
                "that",
                RuntimeWarning,
                stacklevel=2,
            )
        try:
            runner, folder = load_package(path)
        except Exception as exc:  # a zip that is not a package, a .so that does not load
            first = (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
            raise EngineError(
                f"cannot load AOTInductor package {path} ({first}): rebuild it with `g2h-edge export aoti`",
                reason="corrupt",
            ) from exc
        try:
            engine = cls(runner, dict(meta, path=str(path)), opts)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # removed by close(), or when the engine is collected, or at exit
        engine.cleanup_ = weakref.finalize(engine, shutil.rmtree, folder, True)
        return engine

    def _direct_runner(self, torch):
        """The package's flat ``run([x]) -> [y]`` when it computes exactly what the package
        call does, else the call itself. The call flattens and rebuilds its arguments with
        torch's pytree on every cycle (≈0.02 ms of a ≈0.43 ms bf16 Transformer call here);
        our packages take one tensor and return one, so the flat entry point is checked
        once, on a probe batch, and used when it agrees."""

        def call(inputs):
            return [self.runner_(*inputs)]

        loader = getattr(self.runner_, "loader", None)
        if loader is None or not hasattr(loader, "run"):
            return call
        probe = torch.zeros((self.min_batch, self.T, len(self.in_cols)))
        try:
            with torch.inference_mode():
                flat, ref = loader.run([probe]), call([probe])
        except Exception:  # noqa: BLE001 - any failure of the flat path: keep the call
            return call
        if len(flat) == 1 and flat[0].shape == ref[0].shape and torch.equal(flat[0], ref[0]):
            return loader.run
        return call

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        run = self.run_
        with torch.inference_mode():
            return run_in_chunks(
                lambda c: run([torch.from_numpy(c)])[0].numpy(),
                x,
                max_batch=self.max_batch,
                pad_to=lambda n: max(n, self.min_batch),
            )

    def close(self) -> None:
        self.runner_ = self.run_ = None
        if self.cleanup_ is not None:  # the extracted package (the library stays mapped)
            self.cleanup_()
        super().close()
