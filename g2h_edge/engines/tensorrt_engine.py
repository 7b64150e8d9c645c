"""The TensorRT engine: serves a ``.plan`` built by ``g2h-edge export trt``.

A plan is only valid for the TensorRT version and GPU model it was built with, so every plan
has a ``<plan>.json`` sidecar (written by :func:`g2h_edge.export.tensorrt.build_plan`) with the
model metadata plus ``tensorrt_version``, ``gpu_name``, ``compute_capability``, precision,
batch profile, build time and the plan's sha256. Loading checks all of it first and refuses a
plan built elsewhere with a message that says to rebuild it on the target.

``tensorrt`` and a CUDA build of torch (used for device buffers and the stream) are optional
(the ``gpu`` extra) and imported only when an engine is created.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from g2h_edge.engines.base import Engine, read_json_sidecar, sidecar_path
from g2h_edge.errors import EngineError, MissingExtraError, require

__all__ = ["TensorRTEngine", "sidecar_path", "read_sidecar", "check_plan_compat",
           "require_tensorrt", "cuda_device_info", "SIDECAR_KEYS", "PLAN_FORMAT_TAG"]

SIDECAR_KEYS = ("format", "tensorrt_version", "gpu_name", "compute_capability", "precision",
                "min_batch", "opt_batch", "max_batch", "plan_sha256", "built_utc")
PLAN_FORMAT_TAG = "g2h-edge-trt-plan"


def read_sidecar(plan) -> dict:
    """The sidecar of ``plan`` as a dict (EngineError when missing or unreadable)."""
    return read_json_sidecar(plan, keys=SIDECAR_KEYS, tag=PLAN_FORMAT_TAG, kind="TensorRT plan",
                             rebuild="g2h-edge export trt")


def check_plan_compat(meta: dict, *, tensorrt_version: str, gpu_name: str,
                      compute_capability: str, plan_sha256: str, plan_name: str = "plan"
                      ) -> None:
    """Refuse a plan built for another TensorRT version or GPU, or whose bytes changed."""
    problems = []
    if str(meta["tensorrt_version"]) != str(tensorrt_version):
        problems.append(f"built with TensorRT {meta['tensorrt_version']}, this is "
                        f"{tensorrt_version}")
    if str(meta["compute_capability"]) != str(compute_capability) \
            or str(meta["gpu_name"]) != str(gpu_name):
        problems.append(f"built for {meta['gpu_name']} (sm {meta['compute_capability']}), "
                        f"this GPU is {gpu_name} (sm {compute_capability})")
    if problems:
        raise EngineError(f"TensorRT plan {plan_name} cannot run here: {'; '.join(problems)}. "
                          "Plans are specific to a TensorRT version and GPU: rebuild it on the "
                          "target with `g2h-edge export trt --onnx MODEL.onnx -o "
                          f"{plan_name}`", reason="plan_mismatch")
    if str(meta["plan_sha256"]) != str(plan_sha256):
        raise EngineError(f"TensorRT plan {plan_name} does not match its sidecar (sha256 "
                          f"{plan_sha256[:12]}... vs {str(meta['plan_sha256'])[:12]}...): the "
                          "file was changed or truncated; rebuild it", reason="corrupt")


def require_tensorrt():
    """Import tensorrt and check a CUDA device exists; MissingExtraError naming ``gpu``."""
    trt = require("tensorrt", "gpu", "TensorRT plans")
    try:
        import torch
        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if not has_cuda:
        raise MissingExtraError("torch with CUDA (and an NVIDIA GPU)", "gpu",
                                "TensorRT plans; no CUDA device is visible")
    return trt


def cuda_device_info(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device, via torch."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


class TensorRTEngine(Engine):
    """A TensorRT plan on a CUDA device (torch tensors hold the device buffers)."""

    backend = "tensorrt"

    def __init__(self, path, *, device: int = 0):
        trt = require_tensorrt()
        import torch

        path = Path(path)
        meta = read_sidecar(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read TensorRT plan {path}: {exc}", reason="io_error"
                              ) from exc
        gpu, cc = cuda_device_info(device)
        check_plan_compat(meta, tensorrt_version=trt.__version__, gpu_name=gpu,
                          compute_capability=cc, plan_sha256=hashlib.sha256(data).hexdigest(),
                          plan_name=path.name)
        self.logger_ = trt.Logger(trt.Logger.WARNING)
        self.runtime_ = trt.Runtime(self.logger_)
        self.engine_ = self.runtime_.deserialize_cuda_engine(data)
        if self.engine_ is None:
            raise EngineError(f"TensorRT could not deserialize {path} (corrupt, or built for "
                              "another TensorRT version): rebuild it on the target",
                              reason="corrupt")
        self.context_ = self.engine_.create_execution_context()
        names = [self.engine_.get_tensor_name(i) for i in range(self.engine_.num_io_tensors)]
        ins = [n for n in names if self.engine_.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(f"{path}: expected one input and one output tensor, got "
                              f"{ins} -> {outs}", reason="bad_graph")
        self.input_name, self.output_name = ins[0], outs[0]
        self.device_ = torch.device("cuda", device)
        self.stream_ = torch.cuda.Stream(device=self.device_)
        meta.update(backend=self.backend, path=str(path), gpu_name=gpu)
        super().__init__(meta, sha256=meta["plan_sha256"])
        self.min_batch, self.max_batch = int(meta["min_batch"]), int(meta["max_batch"])

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        import torch

        b = x.shape[0]
        with torch.cuda.stream(self.stream_):
            xd = torch.from_numpy(x).to(self.device_, non_blocking=False)  # (B, T, 10)
            yd = torch.empty((b, self.T, len(self.out_cols)), dtype=torch.float32,
                             device=self.device_)  # (B, T, K)
            self.context_.set_input_shape(self.input_name, tuple(xd.shape))
            self.context_.set_tensor_address(self.input_name, xd.data_ptr())
            self.context_.set_tensor_address(self.output_name, yd.data_ptr())
            if not self.context_.execute_async_v3(self.stream_.cuda_stream):
                raise EngineError(f"TensorRT execution failed for batch {b}",
                                  reason="run_failed")
            y = yd.cpu()
        self.stream_.synchronize()
        return y.numpy()

    def _run(self, x: np.ndarray) -> np.ndarray:
        # split into chunks the optimisation profile accepts; pad a short one with its last cycle
        out = []
        for i in range(0, x.shape[0], self.max_batch):
            chunk = x[i:i + self.max_batch]  # (<=max, T, 10)
            n = chunk.shape[0]
            if n < self.min_batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.min_batch - n, 0)])
            out.append(self._run_once(np.ascontiguousarray(chunk))[:n])
        return np.concatenate(out, axis=0)

    def close(self) -> None:
        self.context_ = self.engine_ = self.runtime_ = None
        super().close()
