"""One inference interface for every backend (torch, ONNX Runtime, TensorRT, AOTInductor).

An :class:`Engine` takes cycles in degrees, (B, T, 10) float32 in ``schema.IN_COLS`` order, and
returns per-kg outputs (B, T, K) float32 in ``engine.out_cols`` order. :meth:`Engine.infer`
validates the input (shape, dtype, finite values) and the output before returning, so a
backend only implements :meth:`Engine._run`. :func:`load_engine` picks the backend from the
file suffix.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from g2h_edge.engines.common import read_json_sidecar, sidecar_path
from g2h_edge.errors import EngineError
from g2h_edge.schema import IN_COLS, N_IN, TARGET_UNIT, TASKS

__all__ = [
    "Engine",
    "load_engine",
    "validate_input",
    "BACKENDS",
    "SUFFIXES",
    "METADATA_KEYS",
    "TORCH_PRECISIONS",
    "COMPILE_MODES",
    "sidecar_path",
    "read_json_sidecar",
]

#: backend names an engine may report
BACKENDS = ("torch", "onnxruntime", "tensorrt", "aoti")
#: file suffix -> (module, class) of the engine that serves it
SUFFIXES: dict[str, tuple[str, str]] = {
    ".pt": ("g2h_edge.engines.torch_engine", "TorchEngine"),
    ".onnx": ("g2h_edge.engines.onnx_engine", "OnnxEngine"),
    ".plan": ("g2h_edge.engines.tensorrt_engine", "TensorRTEngine"),
    ".engine": ("g2h_edge.engines.tensorrt_engine", "TensorRTEngine"),
    ".pt2": ("g2h_edge.engines.aoti_engine", "AotiEngine"),
}
#: torch engine options (:class:`~g2h_edge.engines.torch_engine.TorchOptions`)
TORCH_PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("default", "max-autotune")
#: metadata keys every engine needs (as written by ``g2h_edge.models.bundle_metadata``)
METADATA_KEYS = ("name", "in_cols", "out_cols", "unit", "task", "T", "synthetic")


def _all_finite(a: np.ndarray) -> bool:
    """True when every value of the float array ``a`` is finite. One reduction: a NaN or an
    inf anywhere makes the sum non-finite; only a non-finite sum (rare: bad values, or an
    overflow of large finite ones) pays for the element-wise check."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(a, axis=None)):
            return True
    return bool(np.isfinite(a).all())


def validate_input(x, T: int, n_in: int = N_IN) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (B, T, n_in) array, or raise EngineError."""
    if (
        type(x) is np.ndarray
        and x.dtype == np.float32
        and x.ndim == 3
        and x.shape[1] == T
        and x.shape[2] == n_in
        and x.shape[0] >= 1
        and x.flags.c_contiguous
        and _all_finite(x)
    ):
        return x  # the server's own cycles: the cheap path
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise EngineError(f"engine input is not an array: {exc}", reason="bad_input") from exc
    if arr.dtype.kind not in "fiu":
        raise EngineError(
            f"engine input must be numeric (degrees), got dtype {arr.dtype}", reason="bad_input"
        )
    if arr.ndim != 3 or arr.shape[1:] != (T, n_in) or arr.shape[0] < 1:
        hint = " (add a batch axis: x[None])" if arr.shape == (T, n_in) else ""
        raise EngineError(
            f"engine input must have shape (B>=1, {T}, {n_in}), got {arr.shape}{hint}", reason="bad_shape"
        )
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: caught below
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise EngineError(
            f"engine input has {int(bad.sum())} non-finite values (NaN/inf, first at index {first})",
            reason="non_finite",
        )
    return arr


class Engine(ABC):
    """A loaded model behind one interface.

    Attributes: ``name``, ``sha256`` (of the served file), ``backend``, ``in_cols``,
    ``out_cols``, ``unit``, ``task``, ``T``, ``synthetic``, ``metadata`` (dict).
    Subclasses call ``super().__init__(metadata, sha256=...)`` and implement ``_run``.
    """

    backend: str = ""

    def __init__(self, metadata: dict, *, sha256: str):
        missing = [k for k in METADATA_KEYS if k not in metadata]
        if missing:
            raise EngineError(f"engine metadata is missing {missing}", reason="bad_metadata")
        if tuple(metadata["in_cols"]) != IN_COLS:
            raise EngineError(
                f"engine in_cols {list(metadata['in_cols'])} do not match the schema's {list(IN_COLS)}",
                reason="bad_metadata",
            )
        task = metadata["task"]
        if (
            task not in TASKS
            or tuple(metadata["out_cols"]) != TASKS[task]
            or metadata["unit"] != TARGET_UNIT[task]
        ):
            raise EngineError(
                f"engine task/out_cols/unit {task!r}/{metadata['out_cols']}/"
                f"{metadata['unit']!r} are inconsistent",
                reason="bad_metadata",
            )
        self.metadata = dict(metadata)
        self.sha256 = str(sha256)
        self.name = str(metadata["name"])
        self.in_cols = tuple(metadata["in_cols"])
        self.out_cols = tuple(metadata["out_cols"])
        self.unit = str(metadata["unit"])
        self.task = str(task)
        self.T = int(metadata["T"])
        self.synthetic = bool(metadata["synthetic"])
        self.closed_ = False

    @abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """Backend inference on a validated float32 (B, T, 10) array -> (B, T, K)."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Degrees (B, T, 10) -> per-kg outputs (B, T, K) float32 (EngineError on bad input)."""
        if self.closed_:
            raise EngineError(f"engine {self.name!r} is closed", reason="closed")
        x = validate_input(x, self.T, len(self.in_cols))  # (B, T, 10) float32
        y = np.asarray(self._run(x))
        expected = (x.shape[0], self.T, len(self.out_cols))
        if y.shape != expected:
            raise EngineError(
                f"{self.backend} engine {self.name!r} returned shape {y.shape}, expected {expected}",
                reason="bad_output",
            )
        if not _all_finite(y):
            raise EngineError(
                f"{self.backend} engine {self.name!r} produced non-finite outputs", reason="non_finite_output"
            )
        return np.ascontiguousarray(y, dtype=np.float32)

    def warmup(self, batch_sizes=(1,)) -> None:
        """Run each batch size once (allocations, kernel selection) before serving."""
        for b in batch_sizes:
            self.infer(np.zeros((int(b), self.T, len(self.in_cols)), np.float32))

    def close(self) -> None:
        """Release the backend's resources; later ``infer`` calls raise EngineError."""
        self.closed_ = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        flag = ", SYNTHETIC" if self.synthetic else ""
        return (
            f"{type(self).__name__}({self.name!r}, backend={self.backend!r}, "
            f"task={self.task!r}, T={self.T}{flag})"
        )


def _engine_class(suffix: str):
    module, attr = SUFFIXES[suffix]
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise EngineError(
            f"no engine for {suffix} files in this installation ({module} could not be imported: {exc})",
            reason="missing_backend",
        ) from exc


def load_engine(path, options=None, **kwargs) -> Engine:
    """Load the engine for ``path`` by suffix: .pt torch, .onnx ONNX Runtime, .plan/.engine
    TensorRT, .pt2 AOTInductor package (``g2h-edge export aoti``); the backend's
    ``from_file(path, options)`` does the loading.

    ``options`` is that backend's options object (``TorchOptions``, ``OnnxOptions``,
    ``TensorRTOptions``, ``AotiOptions``; their ``threads`` sets intra-op threads), or give
    its fields as keywords (``load_engine("m.onnx", threads=1)``). A field the backend does
    not have, or another backend's options object, is an EngineError (``bad_option``).
    ``torch_precision``/``torch_compile`` (the CLI's names) are accepted as keywords too:
    TorchOptions fields for a ``.pt``, an error when set for another file; so is
    ``trust_native`` (``--trust-native``), which only native-code files (.pt2/.plan) use.

    Raises EngineError for a missing file or unknown suffix, and the loader's own error
    (ModelError for a bad bundle, EngineError/ExportError from the other backends).
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"engine file {path} does not exist", reason="missing_file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise EngineError(
            f"cannot tell the backend of {path.name}: use a .pt bundle, an "
            f".onnx model, a .plan/.engine TensorRT plan or a .pt2 AOTInductor "
            "package",
            reason="bad_suffix",
        )
    cls = _engine_class(suffix)
    if options is None:
        from g2h_edge.engines.common import make_options, torch_flags

        if kwargs.pop("trust_native", False) and suffix in (".pt2", ".plan", ".engine"):
            kwargs["trust_native"] = True  # the CLI flag: only native code has the field
        if "torch_precision" in kwargs or "torch_compile" in kwargs:  # the CLI flags' names
            kwargs.update(
                torch_flags(path, kwargs.pop("torch_precision", None), kwargs.pop("torch_compile", None))
            )
        options = make_options(cls.Options, kwargs, f"{suffix} files")
    elif kwargs or not isinstance(options, cls.Options):
        raise EngineError(
            f"{type(options).__name__} (with keywords {sorted(kwargs)}) cannot "
            f"load {path.name}: pass one {cls.Options.__name__} or keywords",
            reason="bad_option",
        )
    return cls.from_file(path, options)
