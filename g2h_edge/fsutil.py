"""Small file-system helpers shared by the writers of models, exports and plans."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from g2h_edge.errors import G2HError

__all__ = ["write_atomic"]


def write_atomic(
    path, data: bytes | Callable[[Path], None], *, error: type[G2HError] = G2HError, what: str = "file"
) -> Path:
    """Write ``data`` (bytes, or a function that writes a given path) to ``path`` atomically.

    The content goes to ``<path>.tmp`` first and is renamed over ``path`` only when complete,
    so a crash or a full disk never leaves a half-written model next to a good name. An
    ``OSError`` becomes ``error`` (reason ``io_error``) naming the path.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise error(f"cannot write {what} {path}: {exc}", reason="io_error") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
