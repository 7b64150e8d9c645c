"""g2h_edge.engines: one inference interface over torch, ONNX Runtime and TensorRT.

``load_engine(path)`` picks the backend from the file suffix; backends import lazily, so
importing this package does not import torch, onnxruntime or tensorrt.
"""
from g2h_edge.engines.base import BACKENDS, SUFFIXES, Engine, load_engine, validate_input

__all__ = ["Engine", "load_engine", "validate_input", "BACKENDS", "SUFFIXES", "TorchEngine"]


def __getattr__(name):
    if name == "TorchEngine":
        from g2h_edge.engines.torch_engine import TorchEngine
        return TorchEngine
    raise AttributeError(f"module 'g2h_edge.engines' has no attribute {name!r}")
