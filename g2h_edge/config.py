"""Helpers shared by every component's frozen config dataclass.

House rule: one frozen dataclass of config per component, units in the field names, and
unknown keys or wrong types are a :class:`~g2h_edge.errors.ConfigError`, never ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from g2h_edge.errors import ConfigError

__all__ = ["config_from_mapping", "check_numeric_fields"]

C = TypeVar("C")


def config_from_mapping(cls: type[C], values: Mapping[str, Any] | None) -> C:
    """Build config dataclass ``cls`` from a mapping; unknown or missing keys raise ConfigError."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"bad {cls.__name__}: {exc}") from None


def check_numeric_fields(obj) -> None:
    """Type-check the ``float`` and ``int`` fields of a (frozen) config dataclass in place.

    floats: any finite real number (ints are converted, bools refused); ints: integers only.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.type in ("float", float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"{type(obj).__name__}.{f.name} must be a number, got {value!r} ({type(value).__name__})"
                )
            if not math.isfinite(float(value)):
                raise ConfigError(f"{type(obj).__name__}.{f.name} must be finite, got {value!r}")
            object.__setattr__(obj, f.name, float(value))
        elif f.type in ("int", int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(
                    f"{type(obj).__name__}.{f.name} must be an integer, "
                    f"got {value!r} ({type(value).__name__})"
                )
