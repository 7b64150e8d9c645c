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
from g2h_edge.errors import EngineError, MissingExtraError, require

__all__ = [
    "TensorRTEngine",
    "TensorRTOptions",
    "sidecar_path",
    "read_sidecar",
    "check_plan_compat",
    "require_tensorrt",
    "cuda_device_info",
    "SIDECAR_KEYS",
    "PLAN_FORMAT_TAG",
]

SIDECAR_KEYS = (
    "format",
    "tensorrt_version",
    "gpu_name",
    "compute_capability",
    "precision",
    "min_batch",
    "opt_batch",
    "max_batch",
    "plan_sha256",
    "built_utc",
)
PLAN_FORMAT_TAG = "g2h-edge-trt-plan"


def read_sidecar(plan) -> dict:
    """The sidecar of ``plan`` as a dict (EngineError when missing or unreadable)."""
    return read_json_sidecar(
        plan, keys=SIDECAR_KEYS, tag=PLAN_FORMAT_TAG, kind="TensorRT plan", rebuild="g2h-edge export trt"
    )


def check_plan_compat(
    meta: dict,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    plan_sha256: str,
    plan_name: str = "plan",
) -> None:
    """Refuse a plan built for another TensorRT version or GPU, or whose bytes changed."""
    problems = []
    if str(meta["tensorrt_version"]) != str(tensorrt_version):
        problems.append(f"built with TensorRT {meta['tensorrt_version']}, this is {tensorrt_version}")
    if str(meta["compute_capability"]) != str(compute_capability) or str(meta["gpu_name"]) != str(gpu_name):
        problems.append(
            f"built for {meta['gpu_name']} (sm {meta['compute_capability']}), "
            f"this GPU is {gpu_name} (sm {compute_capability})"
        )
    check_built_here(
        problems,
        kind="TensorRT plan",
        name=plan_name,
        why="Plans are specific to a TensorRT version and GPU",
        rebuild=f"g2h-edge export trt --onnx MODEL.onnx -o {plan_name}",
        reason="plan_mismatch",
        recorded_sha256=meta["plan_sha256"],
        sha256=plan_sha256,
    )


def require_tensorrt():
    """Import tensorrt and check a CUDA device exists; MissingExtraError naming ``gpu``."""
    trt = require("tensorrt", "gpu", "TensorRT plans")
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if not has_cuda:
        raise MissingExtraError(
            "torch with CUDA (and an NVIDIA GPU)", "gpu", "TensorRT plans; no CUDA device is visible"
        )
    return trt


def cuda_device_info(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device, via torch."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


@dataclass(frozen=True)
class TensorRTOptions(EngineOptions):
    """Options of the TensorRT engine: ``device`` is the CUDA device index. ``threads`` is
    accepted (one server option for every engine) and unused: a plan runs on the GPU."""

    device: int = 0
    #: load a plan this user's build key did not sign (g2h_edge.engines.trust)
    trust_native: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.trust_native, bool):
            raise EngineError(f"trust_native must be a bool, got {self.trust_native!r}", reason="bad_option")
        if not isinstance(self.device, int) or isinstance(self.device, bool) or self.device < 0:
            raise EngineError(
                f"TensorRT device must be a CUDA device index >= 0, got {self.device!r}", reason="bad_option"
            )


class TensorRTEngine(Engine):
    """A TensorRT plan on a CUDA device (torch tensors hold the device buffers).

    Build it with :meth:`from_file`; the constructor takes a deserialized
    ``ICudaEngine`` and its sidecar metadata and reads no file.
    """

    backend = "tensorrt"
    Options = TensorRTOptions

    def __init__(self, cuda_engine, metadata: dict, options: TensorRTOptions | None = None, *, keep_alive=()):
        trt = require_tensorrt()
        import torch

        if isinstance(cuda_engine, (str, Path)):
            raise TypeError(
                "TensorRTEngine takes a deserialized engine; use "
                "TensorRTEngine.from_file(path) for a .plan file"
            )
        opts = options or TensorRTOptions()
        self.keep_alive_ = tuple(keep_alive)  # the logger and runtime outlive the engine
        self.engine_ = cuda_engine
        self.context_ = cuda_engine.create_execution_context()
        names = [cuda_engine.get_tensor_name(i) for i in range(cuda_engine.num_io_tensors)]
        ins = [n for n in names if cuda_engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(
                f"{metadata.get('path', 'plan')}: expected one input and one "
                f"output tensor, got {ins} -> {outs}",
                reason="bad_graph",
            )
        self.input_name, self.output_name = ins[0], outs[0]
        self.device_ = torch.device("cuda", opts.device)
        self.stream_ = torch.cuda.Stream(device=self.device_)
        super().__init__(dict(metadata, backend=self.backend), sha256=metadata["plan_sha256"])
        self.options = opts
        self.min_batch, self.max_batch = int(metadata["min_batch"]), int(metadata["max_batch"])

    @classmethod
    def from_file(cls, path, options: TensorRTOptions | None = None, **kwargs) -> TensorRTEngine:
        """Check the plan ``path`` against its sidecar and this GPU, then deserialize it
        (EngineError naming what to rebuild). ``kwargs`` build the options when ``options``
        is None."""
        opts = options or make_options(TensorRTOptions, kwargs, "TensorRT engines")
        trt = require_tensorrt()
        path = Path(path)
        meta = read_sidecar(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read TensorRT plan {path}: {exc}", reason="io_error") from exc
        gpu, cc = cuda_device_info(opts.device)
        check_plan_compat(
            meta,
            tensorrt_version=trt.__version__,
            gpu_name=gpu,
            compute_capability=cc,
            plan_sha256=hashlib.sha256(data).hexdigest(),
            plan_name=path.name,
        )
        verify_sidecar(meta, kind="TensorRT plan", name=path.name, trust_native=opts.trust_native)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        cuda_engine = runtime.deserialize_cuda_engine(data)
        if cuda_engine is None:
            raise EngineError(
                f"TensorRT could not deserialize {path} (corrupt, or built for "
                "another TensorRT version): rebuild it on the target",
                reason="corrupt",
            )
        return cls(cuda_engine, dict(meta, path=str(path), gpu_name=gpu), opts, keep_alive=(logger, runtime))

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        import torch

        b = x.shape[0]
        with torch.cuda.stream(self.stream_):
            xd = torch.from_numpy(x).to(self.device_, non_blocking=False)  # (B, T, 10)
            yd = torch.empty(
                (b, self.T, len(self.out_cols)), dtype=torch.float32, device=self.device_
            )  # (B, T, K)
            self.context_.set_input_shape(self.input_name, tuple(xd.shape))
            self.context_.set_tensor_address(self.input_name, xd.data_ptr())
            self.context_.set_tensor_address(self.output_name, yd.data_ptr())
            if not self.context_.execute_async_v3(self.stream_.cuda_stream):
                raise EngineError(f"TensorRT execution failed for batch {b}", reason="run_failed")
            y = yd.cpu()
        self.stream_.synchronize()
        return y.numpy()

    def _run(self, x: np.ndarray) -> np.ndarray:
        # chunks the optimisation profile accepts; a short one padded with its last cycle
        return run_in_chunks(
            self._run_once, x, max_batch=self.max_batch, pad_to=lambda n: max(n, self.min_batch)
        )

    def close(self) -> None:
        self.context_ = self.engine_ = None
        self.keep_alive_ = ()
        super().close()
