"""One exception tree for the whole project.

Every error a user can cause is a :class:`G2HError`; the message names the bad value and
what to do about it. ``reason`` is a short stable code (snake_case) used in reject messages
and counters.
"""

from __future__ import annotations

__all__ = [
    "G2HError",
    "ConfigError",
    "DataError",
    "ConventionError",
    "WireError",
    "GaitError",
    "ModelError",
    "EngineError",
    "ExportError",
    "TrainError",
    "BridgeError",
    "MissingExtraError",
    "require",
]


class G2HError(Exception):
    """Base of every error raised on purpose by g2h-edge."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(G2HError):
    """Bad configuration: unknown key, wrong type, impossible value."""

    reason = "bad_config"


class DataError(G2HError):
    """A data file that cannot be read as what it claims to be."""

    reason = "bad_data"


class ConventionError(DataError):
    """Angles in the wrong units or sign convention (radians, gait2354 knee sign...)."""

    reason = "bad_convention"


class WireError(G2HError):
    """A message that violates the wire protocol."""

    reason = "bad_message"


class GaitError(G2HError):
    """A gait cycle that cannot be trusted. ``side``, ``index``, ``t_start`` and ``t_end``
    name the cycle when the error is about one (None otherwise)."""

    reason = "bad_cycle"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        side: str | None = None,
        index: int | None = None,
        t_start: float | None = None,
        t_end: float | None = None,
    ):
        super().__init__(message, reason=reason)
        self.side, self.index, self.t_start, self.t_end = side, index, t_start, t_end


class ModelError(G2HError):
    """A model checkpoint or bundle that cannot be loaded or is not what it claims."""

    reason = "bad_model"


class EngineError(G2HError):
    """An inference engine that cannot be built, loaded or run."""

    reason = "engine_error"


class ExportError(G2HError):
    """An export (ONNX, TensorRT) that failed or did not verify."""

    reason = "export_error"


class TrainError(G2HError):
    """Training or evaluation that cannot proceed."""

    reason = "train_error"


class BridgeError(G2HError):
    """Microcontroller link problems (framing, CRC, device)."""

    reason = "bridge_error"


class MissingExtraError(G2HError, ImportError):
    """An optional dependency is not installed."""

    reason = "missing_extra"

    def __init__(self, module: str, extra: str, purpose: str = ""):
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"the optional dependency {module!r} is not installed{what}; "
            f"install it with: pip install 'g2h-edge[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional dependency lazily, or raise :class:`MissingExtraError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra, purpose) from exc
