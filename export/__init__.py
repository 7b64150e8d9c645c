"""g2h_edge.export: ONNX export (fp32/bf16/int8), TensorRT plan building, op checks,
AOTInductor packages for the CPU (fp32/bf16).

Heavy dependencies (torch, onnx, onnxruntime, tensorrt) are imported inside the functions.
See docs/export.md.
"""

from g2h_edge.export.aoti import AotiReport, export_aoti
from g2h_edge.export.onnx import (
    EXPORTERS,
    FORMAT_TAG,
    INPUT_NAME,
    OUTPUT_NAME,
    PRECISIONS,
    ExportReport,
    export_onnx,
    read_metadata,
)
from g2h_edge.export.tensorrt import PlanReport, build_plan
from g2h_edge.export.trt_ops import TRT_TARGETS, TrtOpReport, check_trt_ops

__all__ = [
    "export_onnx",
    "ExportReport",
    "read_metadata",
    "FORMAT_TAG",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PRECISIONS",
    "EXPORTERS",
    "build_plan",
    "PlanReport",
    "check_trt_ops",
    "TrtOpReport",
    "TRT_TARGETS",
    "export_aoti",
    "AotiReport",
]
