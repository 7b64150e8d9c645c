"""g2h_edge.engines: one inference interface over torch, ONNX Runtime and TensorRT.

``load_engine(path)`` picks the backend from the file suffix and calls its
``from_file(path, options)``; backends import lazily, so importing this package does not
import torch, onnxruntime or tensorrt.
"""

from g2h_edge.engines.base import BACKENDS, SUFFIXES, Engine, load_engine, validate_input
from g2h_edge.engines.common import EngineOptions

__all__ = [
    "Engine",
    "load_engine",
    "validate_input",
    "BACKENDS",
    "SUFFIXES",
    "TorchEngine",
    "EngineOptions",
    "TorchOptions",
    "OnnxOptions",
    "AotiOptions",
    "TensorRTOptions",
]

_LAZY = {
    "TorchEngine": "torch_engine",
    "TorchOptions": "torch_engine",
    "OnnxOptions": "onnx_engine",
    "AotiOptions": "aoti_engine",
    "TensorRTOptions": "tensorrt_engine",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"g2h_edge.engines.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'g2h_edge.engines' has no attribute {name!r}")
