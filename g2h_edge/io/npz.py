"""The Gait2Hip NPZ schema: read with checks, write without pickle.

Keys: ``X`` (N, 180, 10) joint angles in degrees (IN_COLS order), ``Y`` (N, 180, K) raw
targets in N (muscle forces) or N·m (joint moments), ``subject_id`` (N,), ``height_m`` (N,),
``weight_kg`` (N,), ``speed_label`` (N,) in {slow, med, fast}, ``in_cols`` (10,),
``out_cols`` (K,). ``Y``/``out_cols`` are optional (inputs-only files for prediction).
Files this project writes add ``synthetic`` (bool scalar) and store strings as plain unicode
arrays; foreign files may store strings as object or bytes arrays (see :mod:`.safe_npy`).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError
from g2h_edge.gait.convention import check_convention
from g2h_edge.gait.convention import convert_gait2354 as convert_gait2354_angles
from g2h_edge.io.safe_npy import load_object_member
from g2h_edge.schema import IN_COLS, N_IN, RAW_UNIT, SPEED_LABELS, TASKS, T

__all__ = [
    "Gait2HipData",
    "read_gait2hip_npz",
    "write_gait2hip_npz",
    "validate_gait2hip",
    "WEIGHT_RANGE_KG",
    "HEIGHT_RANGE_M",
]

WEIGHT_RANGE_KG = (30.0, 200.0)
HEIGHT_RANGE_M = (1.0, 2.3)
#: plausible median per-sample peak |Y|/weight (per kg) of a raw-unit file, per task
_PEAK_PER_KG_RANGE = {"mf": (1.0, 100.0), "jm": (0.1, 10.0)}
_META_KEYS = ("subject_id", "height_m", "weight_kg", "speed_label")


@dataclass
class Gait2HipData:
    """One Gait2Hip dataset in memory (see the module docstring for the schema).

    ``Y`` is None for inputs-only files; ``subject_id``/``height_m``/``weight_kg``/
    ``speed_label`` are None only when read with ``require_meta=False`` and absent.
    """

    X: np.ndarray  # (N, 180, 10) float32 deg
    Y: np.ndarray | None  # (N, 180, K) float32 raw N or Nm
    subject_id: np.ndarray | None  # (N,) str
    height_m: np.ndarray | None  # (N,) float32
    weight_kg: np.ndarray | None  # (N,) float32
    speed_label: np.ndarray | None  # (N,) str
    in_cols: tuple[str, ...] = IN_COLS
    out_cols: tuple[str, ...] = ()
    task: str | None = None
    synthetic: bool = False

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def raw_unit(self) -> str | None:
        return RAW_UNIT[self.task] if self.task else None

    def y_per_kg(self) -> np.ndarray:
        """Targets divided by body mass: (N, 180, K) float32 in N/kg or Nm/kg."""
        if self.Y is None or self.weight_kg is None:
            raise DataError("this dataset has no Y or no weight_kg", reason="missing_key")
        return (self.Y / self.weight_kg[:, None, None]).astype(np.float32)

    def subset(self, index) -> Gait2HipData:
        """Rows ``index`` (bool mask or integer indices) as a new dataset."""
        idx = np.asarray(index)
        take = lambda a: None if a is None else a[idx]
        return Gait2HipData(
            self.X[idx],
            take(self.Y),
            take(self.subject_id),
            take(self.height_m),
            take(self.weight_kg),
            take(self.speed_label),
            self.in_cols,
            self.out_cols,
            self.task,
            self.synthetic,
        )


# ----------------------------------------------------------------------------- reading
def _load_members(path: Path) -> dict[str, np.ndarray]:
    label = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError(f"{label}: no such file", reason="not_found") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(
            f"{label}: not a readable .npz (truncated or not a zip): {exc}", reason="truncated"
        ) from exc
    out: dict[str, np.ndarray] = {}
    with zf:
        names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        try:
            npz = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 — numpy raises several types here
            raise DataError(f"{label}: not a readable .npz: {exc}", reason="truncated") from exc
        with npz:
            for key in names:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise DataError(
                            f"{label}: key {key!r} unreadable: {exc}", reason="truncated"
                        ) from exc
                    out[key] = load_object_member(zf, key, f"{label}[{key}]")
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise DataError(
                        f"{label}: key {key!r} unreadable (truncated file?): {exc}", reason="truncated"
                    ) from exc
    return out


def _strings(arr: np.ndarray, key: str, label: str) -> np.ndarray:
    """Decode a str/bytes/object array to a unicode array."""
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8")
    if arr.dtype == object:
        vals = [v.decode("utf-8") if isinstance(v, bytes) else v for v in arr.ravel()]
        if not all(isinstance(v, str) for v in vals):
            raise DataError(
                f"{label}: {key} must hold strings, found {sorted({type(v).__name__ for v in vals})}",
                reason="bad_dtype",
            )
        return np.array(vals, dtype=str).reshape(arr.shape)
    raise DataError(f"{label}: {key} must be a string array, got dtype {arr.dtype}", reason="bad_dtype")


def _numbers(arr: np.ndarray, key: str, label: str) -> np.ndarray:
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{label}: {key} must be numeric, got dtype {arr.dtype}", reason="bad_dtype")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{label}: {key} has {int(bad.sum())} non-finite values "
            f"(first at index {where}); fix or drop those samples",
            reason="nan",
        )
    return arr


def _columns(arr, expected: tuple[str, ...] | None, key: str, label: str) -> tuple[str, ...]:
    cols = tuple(str(c) for c in _strings(np.asarray(arr), key, label).ravel())
    if expected is not None and cols != expected:
        if sorted(cols) == sorted(expected):
            i = next(i for i, (a, b) in enumerate(zip(cols, expected)) if a != b)
            raise DataError(
                f"{label}: {key} are in the wrong order: position {i} is "
                f"{cols[i]!r}, the schema wants {expected[i]!r} (order: "
                f"{list(expected)})",
                reason="column_order",
            )
        missing = [c for c in expected if c not in cols]
        extra = [c for c in cols if c not in expected]
        raise DataError(
            f"{label}: {key} do not match the schema: missing {missing}, unexpected {extra}", reason="columns"
        )
    return cols


def read_gait2hip_npz(
    path, *, require_meta: bool = True, convert_gait2354: bool = False, any_speed_label: bool = False
) -> Gait2HipData:
    """Read and validate a Gait2Hip NPZ file (raises :class:`DataError` on any problem).

    ``require_meta=False`` accepts files without subject_id/height_m/weight_kg/speed_label
    (inputs for ``g2h-edge predict``); ``X`` and ``in_cols`` are always required. Angle
    conventions are checked (radians, gait2354 knee sign -> :class:`ConventionError`);
    ``convert_gait2354=True`` flips the knee signs of X first (old OpenSim models).
    ``any_speed_label=True`` accepts speed labels other than slow/med/fast (external data:
    "self-selected", "1.2 m/s"...); they must still be non-empty strings.
    """
    path = Path(path)
    label = str(path)
    m = _load_members(path)
    required = ("X", "in_cols") + (_META_KEYS if require_meta else ())
    missing = [k for k in required if k not in m]
    if missing:
        raise DataError(
            f"{label}: missing key(s) {missing}; the Gait2Hip schema needs "
            f"{list(required)} (+ Y, out_cols for targets)",
            reason="missing_key",
        )
    if ("Y" in m) != ("out_cols" in m):
        raise DataError(f"{label}: Y and out_cols must come together", reason="missing_key")
    meta = {}
    for key in ("subject_id", "speed_label"):
        meta[key] = _strings(m[key], key, label) if key in m else None
    for key in ("height_m", "weight_kg"):
        meta[key] = _numbers(m[key], key, label) if key in m else None
    out_cols: tuple[str, ...] = ()
    task = None
    if "out_cols" in m:
        out_cols = _columns(m["out_cols"], None, "out_cols", label)
        task = next((k for k, v in TASKS.items() if sorted(v) == sorted(out_cols)), None)
        if task is None:
            raise DataError(
                f"{label}: out_cols {list(out_cols)} match neither the muscle-force "
                f"nor the joint-moment schema",
                reason="columns",
            )
        _columns(m["out_cols"], TASKS[task], "out_cols", label)
    synthetic = bool(np.asarray(m["synthetic"]).item()) if "synthetic" in m else False
    data = Gait2HipData(
        X=_numbers(m["X"], "X", label),
        Y=_numbers(m["Y"], "Y", label) if "Y" in m else None,
        in_cols=_columns(m["in_cols"], IN_COLS, "in_cols", label),
        out_cols=out_cols,
        task=task,
        synthetic=synthetic,
        **meta,
    )
    if convert_gait2354:
        data.X = convert_gait2354_angles(data.X).astype(np.float32)
    validate_gait2hip(data, label=label, any_speed_label=any_speed_label)
    return data


# ----------------------------------------------------------------------------- checks
def _check_shapes(d: Gait2HipData, label: str) -> None:
    if d.X.ndim != 3 or d.X.shape[1:] != (T, N_IN) or d.X.shape[0] < 1:
        raise DataError(
            f"{label}: X must have shape (N, {T}, {N_IN}) with N >= 1, got {d.X.shape}", reason="shape"
        )
    n = d.X.shape[0]
    if d.Y is not None:
        k = len(d.out_cols)
        if d.Y.shape != (n, T, k):
            raise DataError(
                f"{label}: Y must have shape ({n}, {T}, {k}) to match X and out_cols, got {d.Y.shape}",
                reason="shape",
            )
    for key in _META_KEYS:
        v = getattr(d, key)
        if v is not None and v.shape != (n,):
            raise DataError(f"{label}: {key} must have shape ({n},), got {v.shape}", reason="shape")


def _check_ranges(d: Gait2HipData, label: str, any_speed_label: bool = False) -> None:
    for key, (lo, hi), unit in (("weight_kg", WEIGHT_RANGE_KG, "kg"), ("height_m", HEIGHT_RANGE_M, "m")):
        v = getattr(d, key)
        if v is not None and ((v < lo) | (v > hi)).any():
            i = int(np.argmax((v < lo) | (v > hi)))
            raise DataError(
                f"{label}: {key}[{i}] = {v[i]:g} is outside the plausible "
                f"{lo:g}..{hi:g} {unit} (wrong unit, e.g. g or cm?)",
                reason="units",
            )
    if d.speed_label is not None:
        bad = sorted(set(d.speed_label.tolist()) - set(SPEED_LABELS))
        if any_speed_label:
            bad = sorted(v for v in set(d.speed_label.tolist()) if not str(v).strip())
        if bad:
            raise DataError(
                f"{label}: unknown speed_label(s) {bad}; expected one of "
                f"{list(SPEED_LABELS)}"
                + (
                    " (empty labels are refused)"
                    if any_speed_label
                    else " (external data: read it with any_speed_label=True, as g2h-edge evaluate does)"
                ),
                reason="speed_label",
            )
    if d.Y is not None and d.weight_kg is not None:
        peak = np.abs(d.Y).max(axis=(1, 2)) / d.weight_kg  # (N,) per kg
        med = float(np.median(peak))
        lo, hi = _PEAK_PER_KG_RANGE[d.task]
        if not lo <= med <= hi:
            raise DataError(
                f"{label}: Y should be raw {RAW_UNIT[d.task]} (not per kg); its "
                f"median per-cycle peak / weight_kg is {med:.3g}, outside the "
                f"plausible {lo:g}..{hi:g} (already divided by mass, or another "
                f"unit?)",
                reason="units",
            )


def validate_gait2hip(d: Gait2HipData, *, label: str = "data", any_speed_label: bool = False) -> None:
    """Check shapes, columns, finiteness, ranges, units and angle convention of ``d``."""
    if tuple(d.in_cols) != IN_COLS:
        raise DataError(f"{label}: in_cols must be {list(IN_COLS)}", reason="columns")
    if d.Y is not None and (d.task not in TASKS or tuple(d.out_cols) != TASKS[d.task]):
        raise DataError(f"{label}: task/out_cols mismatch ({d.task!r}, {list(d.out_cols)})", reason="columns")
    for key in ("X", "Y", "height_m", "weight_kg"):
        v = getattr(d, key)
        if v is not None and not np.isfinite(v).all():
            raise DataError(f"{label}: {key} has non-finite values", reason="nan")
    _check_shapes(d, label)
    _check_ranges(d, label, any_speed_label)
    check_convention(d.X.reshape(-1, N_IN))


# ----------------------------------------------------------------------------- writing
def write_gait2hip_npz(path, data: Gait2HipData) -> None:
    """Validate ``data`` and write it (plain arrays, no pickle; atomic rename)."""
    path = Path(path)
    validate_gait2hip(data, label=str(path))
    arrays: dict[str, np.ndarray] = {
        "X": np.asarray(data.X, dtype=np.float32),
        "in_cols": np.array(data.in_cols, dtype=str),
        "synthetic": np.array(bool(data.synthetic)),
    }
    if data.Y is not None:
        arrays["Y"] = np.asarray(data.Y, dtype=np.float32)
        arrays["out_cols"] = np.array(data.out_cols, dtype=str)
    for key in _META_KEYS:
        v = getattr(data, key)
        if v is not None:
            arrays[key] = np.asarray(v, dtype=str if key in ("subject_id", "speed_label") else np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
