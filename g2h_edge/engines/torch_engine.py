"""The torch engine: serves a ``.pt`` model bundle in PyTorch.

Eager float32 by default. Two options trade exactness for speed on CPUs with bf16 units
(AVX-512 BF16 / AMX), docs/export.md "Compiled torch engine":

- ``precision="bf16"``: weights and activations in bfloat16 (outputs returned as float32);
- ``compile="default"|"max-autotune"`` (Transformer; Mamba in fp32): the bundle's
  Transformer in its folded form (:mod:`g2h_edge.models.folded`, fused attention), or the
  Mamba with its chunked scan, through ``torch.compile`` with Inductor's weight freezing. Each batch size is compiled once (seconds; max-autotune
  benchmarks GEMM kernels, ~15-20 s), so batches are padded to powers of two (1, 2, 4, ...,
  64; larger batches run in chunks of 64) and :meth:`warmup` compiles the sizes a server
  will use before it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from g2h_edge.engines.base import COMPILE_MODES, TORCH_PRECISIONS, Engine
from g2h_edge.engines.common import EngineOptions, make_options, run_in_chunks
from g2h_edge.errors import EngineError
from g2h_edge.models.bundle import Bundle, bundle_metadata, file_sha256, load_bundle

__all__ = ["TorchEngine", "TorchOptions", "TORCH_PRECISIONS", "COMPILE_MODES", "bucket"]

_MAX_BUCKET = 64


def bucket(b: int) -> int:
    """The compiled batch size that serves a batch of ``b`` (<= 64): next power of two."""
    return 1 << max(0, int(b) - 1).bit_length()


class _CastIO(torch.nn.Module):
    """float32 (B, T, 10) -> model in ``dtype`` -> float32 (B, T, K)."""

    def __init__(self, module, dtype):
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, x):
        return self.module(x.to(self.dtype)).float()


@dataclass(frozen=True)
class TorchOptions(EngineOptions):
    """Options of the torch engine: ``threads`` (``torch.set_num_threads``, process-wide in
    PyTorch), ``device`` ("cpu" | "cuda"), ``precision`` (TORCH_PRECISIONS) and ``compile``
    (None or one of COMPILE_MODES); see the module doc."""

    device: str = "cpu"
    precision: str = "fp32"
    compile: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.precision not in TORCH_PRECISIONS:
            raise EngineError(
                f"torch precision {self.precision!r} is not one of {list(TORCH_PRECISIONS)}",
                reason="bad_option",
            )
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise EngineError(
                f"torch compile mode {self.compile!r} is not one of {list(COMPILE_MODES)}",
                reason="bad_option",
            )
        if not isinstance(self.device, str):
            raise EngineError(f"torch device must be a string, got {self.device!r}", reason="bad_option")


class TorchEngine(Engine):
    """A bundle in PyTorch (eval mode, ``torch.inference_mode``).

    Build it with :meth:`from_file` (a ``.pt`` bundle) or :meth:`from_bundle` (in memory);
    the constructor takes the loaded :class:`Bundle` and reads no file. The Mamba block uses
    mamba_ssm's kernels on "cuda" when they are installed.
    """

    backend = "torch"
    Options = TorchOptions

    def __init__(
        self, bundle: Bundle, options: TorchOptions | None = None, *, sha256: str = "unsaved", path=None
    ):
        if not isinstance(bundle, Bundle):
            raise TypeError(
                "TorchEngine takes a loaded Bundle; use TorchEngine.from_file(path) for a .pt file"
            )
        opts = options or TorchOptions()
        self._check_arch(bundle, opts)
        meta = bundle_metadata(bundle)
        meta.update(backend=self.backend, device=opts.device, precision=opts.precision, compile=opts.compile)
        if path is not None:
            meta["path"] = str(path)
        super().__init__(meta, sha256=sha256)
        self.options = opts
        if opts.threads is not None:
            torch.set_num_threads(opts.threads)
        self.dtype = torch.bfloat16 if opts.precision == "bf16" else torch.float32
        self.compile_mode = opts.compile
        try:
            self.device = torch.device(opts.device)
            module = bundle.module()
            if opts.compile is not None and bundle.arch == "transformer":
                from g2h_edge.models.folded import FoldedTransformer

                module = FoldedTransformer(module, bundle.T, attention="sdpa")
            # (a compiled Mamba traces its chunked scan: MambaBlock.scan "auto")
            self.module_ = module.to(self.device, self.dtype)
        except (RuntimeError, AssertionError) as exc:  # e.g. CUDA requested but absent
            raise EngineError(
                f"cannot place model {bundle.name!r} on {opts.device!r}: {exc}", reason="bad_device"
            ) from exc
        self.arch = bundle.arch
        self.compiled_ = None
        self.buckets_: set[int] = set()
        if opts.compile is not None:
            self._compile()

    @classmethod
    def from_file(cls, path, options: TorchOptions | None = None, **kwargs) -> TorchEngine:
        """Load the ``.pt`` bundle ``path`` (ModelError when it is not a valid bundle).
        ``kwargs`` build the options when ``options`` is None."""
        opts = options or make_options(TorchOptions, kwargs, "torch engines")
        path = Path(path)
        bundle = load_bundle(path)
        return cls(bundle, opts, sha256=file_sha256(path), path=path)

    @classmethod
    def from_bundle(cls, bundle: Bundle, options: TorchOptions | None = None, **kwargs) -> TorchEngine:
        """An engine for an in-memory bundle (``sha256`` is then "unsaved")."""
        return cls(bundle, options or make_options(TorchOptions, kwargs, "torch engines"))

    @staticmethod
    def _check_arch(bundle: Bundle, opts: TorchOptions) -> None:
        if opts.compile is not None and bundle.arch == "lstm":
            raise EngineError(
                f"torch compile serves Transformer and Mamba bundles "
                f"({bundle.name!r} is an LSTM, already a single fused op); serve "
                "it eagerly or export it to ONNX",
                reason="bad_option",
            )
        if opts.compile is not None and bundle.arch == "mamba" and opts.precision != "fp32":
            raise EngineError(
                "a compiled Mamba runs in fp32 only (its bf16 graph does not "
                "compile with this PyTorch); drop --torch-precision bf16",
                reason="bad_option",
            )

    def _compile(self) -> None:
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant weights: prepacked for oneDNN/AMX
        inductor_config.cpp_wrapper = True  # C++ call wrapper: less Python per call
        inductor_config.autotune_num_choices_displayed = 0  # no autotune tables on stderr
        if hasattr(inductor_config, "max_autotune_report_choices_stats"):
            inductor_config.max_autotune_report_choices_stats = False
        # one compiled graph per (engine, batch bucket): room for several engines
        dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, 64)
        mode = "max-autotune-no-cudagraphs" if self.compile_mode == "max-autotune" else None
        # float32 in and out, casts inside the graph (fused into its first/last kernels)
        self.compiled_ = torch.compile(_CastIO(self.module_, self.dtype), mode=mode, dynamic=False)
        self._ensure_bucket(1)  # a compiler problem shows at load time

    def _ensure_bucket(self, b: int) -> None:
        if b in self.buckets_:
            return
        x = torch.zeros((b, self.T, len(self.in_cols)), device=self.device)
        try:
            with torch.inference_mode():
                self.compiled_(x)
        except Exception as exc:  # inductor: no C++ compiler, unsupported op, ...
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            raise EngineError(
                f"torch.compile of {self.name!r} failed at batch {b} ({first}); "
                "it needs a working C++ compiler (gcc/g++); serve without "
                "--torch-compile instead",
                reason="compile_failed",
            ) from exc
        self.buckets_.add(b)

    def warmup(self, batch_sizes=(1,)) -> None:
        """Run each batch size once; a compiled engine compiles the buckets they fall in."""
        if self.compiled_ is not None:
            for b in sorted({bucket(min(int(b), _MAX_BUCKET)) for b in batch_sizes}):
                self._ensure_bucket(b)
        super().warmup(batch_sizes)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.compiled_ is None:
            with torch.inference_mode():
                xt = torch.from_numpy(x).to(self.device, self.dtype)
                y = self.module_(xt)  # (B, T, K)
            return y.float().cpu().numpy()
        # chunks of <= 64 padded to their power-of-two bucket (one compiled graph each)
        return run_in_chunks(self._run_compiled, x, max_batch=_MAX_BUCKET, pad_to=bucket)

    def _run_compiled(self, x: np.ndarray) -> np.ndarray:
        self._ensure_bucket(x.shape[0])
        with torch.inference_mode():
            y = self.compiled_(torch.from_numpy(x).to(self.device))  # (b, T, K) float32
        return y.cpu().numpy()

    def close(self) -> None:
        self.module_ = None
        self.compiled_ = None
        super().close()
