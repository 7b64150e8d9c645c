"""The torch engine: serves a ``.pt`` model bundle in eager PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from g2h_edge.engines.base import Engine
from g2h_edge.errors import EngineError
from g2h_edge.models.bundle import Bundle, bundle_metadata, file_sha256, load_bundle

__all__ = ["TorchEngine"]


class TorchEngine(Engine):
    """A bundle in eager PyTorch (float32, eval mode, ``torch.inference_mode``).

    ``threads`` calls ``torch.set_num_threads`` (process-wide in PyTorch). ``device`` may be
    "cpu" or "cuda" (the Mamba block then uses mamba_ssm's kernels when installed).
    """

    backend = "torch"

    def __init__(self, path, *, threads: int | None = None, device: str = "cpu"):
        path = Path(path)
        bundle = load_bundle(path)
        self._setup(bundle, sha256=file_sha256(path), threads=threads, device=device)
        self.metadata["path"] = str(path)

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, threads: int | None = None,
                    device: str = "cpu") -> "TorchEngine":
        """An engine for an in-memory bundle (``sha256`` is then "unsaved")."""
        self = cls.__new__(cls)
        self._setup(bundle, sha256="unsaved", threads=threads, device=device)
        return self

    def _setup(self, bundle: Bundle, *, sha256: str, threads, device: str) -> None:
        meta = bundle_metadata(bundle)
        meta.update(backend=self.backend, device=device)
        super().__init__(meta, sha256=sha256)
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
                raise EngineError(f"threads must be a positive int, got {threads!r}",
                                  reason="bad_option")
            torch.set_num_threads(threads)
        try:
            self.device = torch.device(device)
            self.module_ = bundle.module().to(self.device)
        except (RuntimeError, AssertionError) as exc:  # e.g. CUDA requested but absent
            raise EngineError(f"cannot place model {bundle.name!r} on {device!r}: {exc}",
                              reason="bad_device") from exc
        self.arch = bundle.arch

    def _run(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = self.module_(torch.from_numpy(x).to(self.device))  # (B, T, K)
        return y.float().cpu().numpy()

    def close(self) -> None:
        self.module_ = None
        super().close()
