"""The ONNX Runtime engine: serves a ``.onnx`` file written by ``g2h-edge export onnx``.

Providers are taken in the order TensorRT > CUDA > CPU among those this onnxruntime build
has (or the list given). The session flushes denormals to zero (the Mamba scan multiplies
decays that underflow; denormal arithmetic is several times slower on x86), runs the graph
optimiser at the level asked ("all" by default), and binds inputs/outputs to numpy buffers
(I/O binding) so ONNX Runtime writes straight into the returned array.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge.engines.base import Engine
from g2h_edge.engines.common import EngineOptions, make_options, run_in_chunks
from g2h_edge.errors import EngineError

__all__ = ["OnnxEngine", "OnnxOptions", "PROVIDER_PREFERENCE", "GRAPH_OPT_LEVELS", "choose_providers"]

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
_FORMAT_TAG = "g2h-edge-onnx"  # g2h_edge.export.onnx.FORMAT_TAG (the core never imports export)


def choose_providers(available, requested=None) -> list[str]:
    """Providers to use: ``requested`` (all must be available) or the preference order."""
    available = list(available)
    if requested is None:
        chosen = [p for p in PROVIDER_PREFERENCE if p in available]
        return chosen or available
    if isinstance(requested, str):
        requested = [requested]
    requested = [p if isinstance(p, str) else p[0] for p in requested]
    missing = [p for p in requested if p not in available]
    if missing or not requested:
        raise EngineError(
            f"ONNX Runtime providers {missing or requested} are not available in "
            f"this installation (available: {available}); for CUDA/TensorRT "
            "install the gpu extra: pip install 'g2h-edge[gpu]'",
            reason="bad_provider",
        )
    return requested


def _decode(meta_map: dict) -> dict:
    out = {}
    for key, value in meta_map.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out


@dataclass(frozen=True)
class OnnxOptions(EngineOptions):
    """Options of the ONNX Runtime engine: ``threads`` intra-op threads (None: ONNX
    Runtime's default, one per core); ``providers`` (None: TensorRT > CUDA > CPU among the
    available); ``graph_opt`` one of GRAPH_OPT_LEVELS; ``spinning`` lets idle intra-op
    threads spin (lower latency, burns CPU; None keeps ONNX Runtime's default);
    ``io_binding`` binds numpy buffers instead of ``session.run``."""

    providers: tuple | None = None
    graph_opt: str = "all"
    spinning: bool | None = None
    io_binding: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.graph_opt not in GRAPH_OPT_LEVELS:
            raise EngineError(
                f"graph_opt {self.graph_opt!r} is not one of {list(GRAPH_OPT_LEVELS)}", reason="bad_option"
            )
        if isinstance(self.providers, (list, str)):  # hashable and one shape: a tuple
            object.__setattr__(
                self,
                "providers",
                tuple([self.providers] if isinstance(self.providers, str) else self.providers),
            )


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # a core dependency, but say so clearly
        raise EngineError(
            f"onnxruntime cannot be imported ({exc}); reinstall g2h-edge", reason="missing_backend"
        ) from exc
    return ort


def _check_integrity(data: bytes, meta: dict, path: Path) -> None:
    """ModelError when the graph's content hash differs from the one the export stored
    (a warning for an export written before the hash existed)."""
    import onnx

    from g2h_edge.integrity import CONTENT_KEY, check_content, onnx_graph_sha256

    check_content(
        meta.get(CONTENT_KEY),
        onnx_graph_sha256(onnx.load_model_from_string(data)),
        path=path,
        kind="ONNX model",
        fix="re-export it with `g2h-edge export onnx --model BUNDLE.pt` or restore a good copy",
        add="re-export it with `g2h-edge export onnx` to add one",
    )


class OnnxEngine(Engine):
    """An exported model in ONNX Runtime.

    Build it with :meth:`from_file`; the constructor takes an open
    ``onnxruntime.InferenceSession`` and its decoded metadata and reads no file.
    """

    backend = "onnxruntime"
    Options = OnnxOptions

    def __init__(
        self, session, metadata: dict, *, sha256: str = "unsaved", options: OnnxOptions | None = None
    ):
        if isinstance(session, (str, Path)):
            raise TypeError(
                "OnnxEngine takes an InferenceSession; use OnnxEngine.from_file(path) for a .onnx file"
            )
        opts = options or OnnxOptions()
        meta = dict(metadata)
        meta.update(
            backend=self.backend,
            providers=session.get_providers(),
            graph_opt=opts.graph_opt,
            threads=opts.threads,
        )
        super().__init__(meta, sha256=sha256)
        self.options = opts
        self.providers_ = list(session.get_providers())
        self._bind_io(session, opts.io_binding)

    @classmethod
    def from_file(cls, path, options: OnnxOptions | None = None, **kwargs) -> OnnxEngine:
        """Open the ``.onnx`` file ``path`` written by ``g2h-edge export onnx`` (EngineError
        when it is unreadable, not ONNX or not a g2h-edge export). ``kwargs`` build the
        options when ``options`` is None."""
        opts = options or make_options(OnnxOptions, kwargs, "ONNX engines")
        ort = _import_ort()
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read ONNX model {path}: {exc}", reason="io_error") from exc
        providers = choose_providers(ort.get_available_providers(), opts.providers)
        so = cls._session_options(ort, opts.threads, opts.graph_opt, opts.spinning)
        try:
            sess = ort.InferenceSession(data, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/...
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            raise EngineError(
                f"{path} is not a loadable ONNX model (corrupt, truncated or not ONNX): {first}",
                reason="corrupt",
            ) from exc
        meta = _decode(sess.get_modelmeta().custom_metadata_map)
        if meta.get("format") != _FORMAT_TAG:
            raise EngineError(
                f"{path} is an ONNX model but not a g2h-edge export (no "
                f"'format': '{_FORMAT_TAG}' in its metadata_props); export it "
                "with `g2h-edge export onnx`",
                reason="not_g2h_export",
            )
        _check_integrity(data, meta, path)
        meta["path"] = str(path)
        return cls(sess, meta, sha256=hashlib.sha256(data).hexdigest(), options=opts)

    @staticmethod
    def _session_options(ort, threads, graph_opt: str, spinning):
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[graph_opt]
        if threads is not None:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        if spinning is not None:
            so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        return so

    def _bind_io(self, sess, io_binding: bool) -> None:
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 3:
            where = self.metadata.get("path", "ONNX model")
            raise EngineError(
                f"{where}: expected one (B, T, 10) input and one "
                f"output, got {[(i.name, i.shape) for i in inputs]} -> "
                f"{[(o.name, o.shape) for o in outputs]}",
                reason="bad_graph",
            )
        self.session_ = sess
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        dim0 = inputs[0].shape[0]
        self.fixed_batch = int(dim0) if isinstance(dim0, int) else None
        self.io_binding = bool(io_binding)
        self.input_shape = tuple(inputs[0].shape)
        self.output_shape = tuple(outputs[0].shape)

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        sess = self.session_
        if not self.io_binding:
            return sess.run([self.output_name], {self.input_name: x})[0]
        y = np.empty((x.shape[0], self.T, len(self.out_cols)), np.float32)  # (B, T, K)
        binding = sess.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        binding.bind_output(self.output_name, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
        sess.run_with_iobinding(binding)
        return y

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None or x.shape[0] == self.fixed_batch:
            return self._run_once(x)
        # a fixed-batch export: full chunks, the last one padded with its final cycle
        n = self.fixed_batch
        return run_in_chunks(self._run_once, x, max_batch=n, pad_to=lambda _: n)

    def close(self) -> None:
        self.session_ = None
        super().close()
