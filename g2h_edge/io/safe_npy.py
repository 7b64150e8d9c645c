"""Read the string arrays of foreign NPZ files without running arbitrary pickle code.

NumPy stores an object array in a ``.npy`` member as a pickle of the whole ndarray. The
Gait2Hip reference files may hold their column names and subject ids that way. Instead of
``allow_pickle=True`` (which executes whatever the pickle names), :func:`load_object_member`
parses the ``.npy`` header itself and unpickles the payload with :class:`StringArrayUnpickler`,
whose ``find_class`` admits only what an object ndarray of str/bytes/int/float needs.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from g2h_edge.errors import DataError

__all__ = ["StringArrayUnpickler", "load_object_member", "ALLOWED_ELEMENT_TYPES"]

#: python types an element of an admitted object array may have
ALLOWED_ELEMENT_TYPES = (str, bytes, int, float, np.integer, np.floating)

# the callables a pickled object ndarray refers to, taken from numpy itself so that nothing
# is imported by name (numpy 1.x pickles "numpy.core.multiarray", 2.x "numpy._core.multiarray")
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_SCALAR = np.float64(0.0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_mod, "_reconstruct")] = _RECONSTRUCT
    _ALLOWED_GLOBALS[(_mod, "scalar")] = _SCALAR


class StringArrayUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy ndarrays/dtypes; every other global is refused."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refused to unpickle {module}.{name}: the file's object array asks for code "
                f"that a plain array of strings/numbers never needs (possibly tampered); "
                f"re-save the array as a plain unicode array (np.array(..., dtype=str))",
                reason="unsafe_pickle",
            ) from None

    def persistent_load(self, pid):
        raise DataError("refused a pickle with persistent ids", reason="unsafe_pickle")


def _check_elements(arr: np.ndarray, label: str) -> None:
    for i, item in enumerate(arr.ravel()):
        if not isinstance(item, ALLOWED_ELEMENT_TYPES):
            raise DataError(
                f"{label}: element {i} has type {type(item).__name__}; only str, bytes, int "
                f"and float are accepted in object arrays",
                reason="unsafe_pickle",
            )


def load_object_member(zf: zipfile.ZipFile, key: str, label: str) -> np.ndarray:
    """Load member ``key`` (``key.npy``) of an open NPZ whose dtype is object, safely."""
    name = key + ".npy"
    try:
        raw = zf.read(name)
    except (KeyError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{label}: cannot read member {name!r}: {exc}", reason="truncated") from exc
    buf = io.BytesIO(raw)
    try:
        version = npy_format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as exc:
        raise DataError(f"{label}: bad .npy header: {exc}", reason="bad_npy") from exc
    if not dtype.hasobject:
        raise DataError(f"{label}: expected an object array, header says {dtype}", reason="bad_npy")
    try:
        arr = StringArrayUnpickler(buf).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 — any failure of a foreign pickle is bad data
        raise DataError(f"{label}: cannot unpickle the object array: {exc}", reason="bad_npy") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype != object:
        raise DataError(
            f"{label}: pickle did not hold an object ndarray (got {type(arr).__name__})",
            reason="unsafe_pickle",
        )
    if tuple(arr.shape) != tuple(shape):
        raise DataError(f"{label}: shape {arr.shape} differs from the header's {shape}", reason="bad_npy")
    _check_elements(arr, label)
    return arr
