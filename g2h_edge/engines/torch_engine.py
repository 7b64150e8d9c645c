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

from pathlib import Path

import numpy as np
import torch

from g2h_edge.engines.base import COMPILE_MODES, TORCH_PRECISIONS, Engine
from g2h_edge.errors import EngineError
from g2h_edge.models.bundle import Bundle, bundle_metadata, file_sha256, load_bundle

__all__ = ["TorchEngine", "TORCH_PRECISIONS", "COMPILE_MODES", "bucket"]

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


class TorchEngine(Engine):
    """A bundle in PyTorch (eval mode, ``torch.inference_mode``).

    ``threads`` calls ``torch.set_num_threads`` (process-wide in PyTorch). ``device`` may be
    "cpu" or "cuda" (the Mamba block then uses mamba_ssm's kernels when installed).
    ``precision`` and ``compile``: see the module doc.
    """

    backend = "torch"

    def __init__(self, path, *, threads: int | None = None, device: str = "cpu",
                 precision: str = "fp32", compile: str | None = None):
        path = Path(path)
        bundle = load_bundle(path)
        self._setup(bundle, sha256=file_sha256(path), threads=threads, device=device,
                    precision=precision, compile_mode=compile)
        self.metadata["path"] = str(path)

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, threads: int | None = None, device: str = "cpu",
                    precision: str = "fp32", compile: str | None = None) -> TorchEngine:
        """An engine for an in-memory bundle (``sha256`` is then "unsaved")."""
        self = cls.__new__(cls)
        self._setup(bundle, sha256="unsaved", threads=threads, device=device,
                    precision=precision, compile_mode=compile)
        return self

    def _setup(self, bundle: Bundle, *, sha256: str, threads, device: str, precision: str,
               compile_mode: str | None) -> None:
        if precision not in TORCH_PRECISIONS:
            raise EngineError(f"torch precision {precision!r} is not one of "
                              f"{list(TORCH_PRECISIONS)}", reason="bad_option")
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise EngineError(f"torch compile mode {compile_mode!r} is not one of "
                              f"{list(COMPILE_MODES)}", reason="bad_option")
        if compile_mode is not None and bundle.arch == "lstm":
            raise EngineError(f"torch compile serves Transformer and Mamba bundles "
                              f"({bundle.name!r} is an LSTM, already a single fused op); serve "
                              "it eagerly or export it to ONNX", reason="bad_option")
        if compile_mode is not None and bundle.arch == "mamba" and precision != "fp32":
            raise EngineError("a compiled Mamba runs in fp32 only (its bf16 graph does not "
                              "compile with this PyTorch); drop --torch-precision bf16",
                              reason="bad_option")
        meta = bundle_metadata(bundle)
        meta.update(backend=self.backend, device=device, precision=precision,
                    compile=compile_mode)
        super().__init__(meta, sha256=sha256)
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
                raise EngineError(f"threads must be a positive int, got {threads!r}",
                                  reason="bad_option")
            torch.set_num_threads(threads)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.compile_mode = compile_mode
        try:
            self.device = torch.device(device)
            module = bundle.module()
            if compile_mode is not None and bundle.arch == "transformer":
                from g2h_edge.models.folded import FoldedTransformer
                module = FoldedTransformer(module, bundle.T, attention="sdpa")
            # (a compiled Mamba traces its chunked scan: MambaBlock.scan "auto")
            self.module_ = module.to(self.device, self.dtype)
        except (RuntimeError, AssertionError) as exc:  # e.g. CUDA requested but absent
            raise EngineError(f"cannot place model {bundle.name!r} on {device!r}: {exc}",
                              reason="bad_device") from exc
        self.arch = bundle.arch
        self.compiled_ = None
        self.buckets_: set[int] = set()
        if compile_mode is not None:
            self._compile()

    def _compile(self) -> None:
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True          # constant weights: prepacked for oneDNN/AMX
        inductor_config.cpp_wrapper = True       # C++ call wrapper: less Python per call
        inductor_config.autotune_num_choices_displayed = 0   # no autotune tables on stderr
        if hasattr(inductor_config, "max_autotune_report_choices_stats"):
            inductor_config.max_autotune_report_choices_stats = False
        # one compiled graph per (engine, batch bucket): room for several engines
        dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, 64)
        mode = "max-autotune-no-cudagraphs" if self.compile_mode == "max-autotune" else None
        # float32 in and out, casts inside the graph (fused into its first/last kernels)
        self.compiled_ = torch.compile(_CastIO(self.module_, self.dtype), mode=mode,
                                       dynamic=False)
        self._ensure_bucket(1)                   # a compiler problem shows at load time

    def _ensure_bucket(self, b: int) -> None:
        if b in self.buckets_:
            return
        x = torch.zeros((b, self.T, len(self.in_cols)), device=self.device)
        try:
            with torch.inference_mode():
                self.compiled_(x)
        except Exception as exc:  # inductor: no C++ compiler, unsupported op, ...
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            raise EngineError(f"torch.compile of {self.name!r} failed at batch {b} ({first}); "
                              "it needs a working C++ compiler (gcc/g++); serve without "
                              "--torch-compile instead", reason="compile_failed") from exc
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
        outs = [self._run_compiled(x[i:i + _MAX_BUCKET]) for i in range(0, x.shape[0],
                                                                          _MAX_BUCKET)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def _run_compiled(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        b = bucket(n)
        self._ensure_bucket(b)
        xt = torch.from_numpy(x).to(self.device)
        if b != n:  # pad with copies of the last cycle (any finite input would do)
            xt = torch.cat([xt, xt[-1:].expand(b - n, -1, -1)], dim=0)
        with torch.inference_mode():
            y = self.compiled_(xt)  # (b, T, K) float32
        return y[:n].cpu().numpy()

    def close(self) -> None:
        self.module_ = None
        self.compiled_ = None
        super().close()
