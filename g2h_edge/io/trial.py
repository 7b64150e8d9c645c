"""Continuous trials: OpenSim .mot/.sto, CSV with a header, (.c3d via the `c3d` extra).

A :class:`Trial` holds time (s), the ten input angles in degrees in IN_COLS order, the
initial-contact events when known, and the body mass. Columns are mapped by name; extra
columns are ignored; a missing required column, a ragged row, a non-number, NaN/inf or
non-increasing time raise :class:`DataError` naming the row and column.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError, require
from g2h_edge.gait.convention import check_convention
from g2h_edge.gait.convention import convert_gait2354 as _flip_knees
from g2h_edge.schema import IN_COLS, N_IN

__all__ = ["Trial", "read_trial", "read_events", "write_trial_csv", "write_events_json",
           "events_path_for", "parse_table"]

_TIME_NAMES = ("time", "time_s")


@dataclass
class Trial:
    """A continuous recording: ``t`` (n,) s, ``q`` (n, 10) deg in IN_COLS order."""

    t: np.ndarray                                   # (n,) float64 s, strictly increasing
    q: np.ndarray                                   # (n, 10) float32 deg
    rate_hz: float
    events: dict[str, np.ndarray] = field(default_factory=dict)   # {"R": (m,), "L": (m,)} s
    body_mass_kg: float | None = None
    source: str = ""

    @property
    def n(self) -> int:
        return int(self.t.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0]) if self.n else 0.0


# ----------------------------------------------------------------------------- parsing
def parse_table(lines: list[str], first_row: int, sep: str | None, label: str):
    """Parse numeric rows; ``first_row`` is the 1-based file line of ``lines[0]``.

    Returns (n, m) float64. Raises DataError naming the line and column on ragged rows or
    non-numbers.
    """
    rows = [ln for ln in lines if ln.strip()]
    if not rows:
        raise DataError(f"{label}: no data rows", reason="empty")
    try:
        return np.loadtxt(rows, delimiter=sep, ndmin=2, dtype=np.float64)
    except ValueError:
        pass  # find the first bad row for a useful message
    width = None
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        cells = ln.strip().split(sep)
        if width is None:
            width = len(cells)
        if len(cells) != width:
            raise DataError(f"{label}: line {first_row + i} has {len(cells)} columns, "
                            f"expected {width}", reason="column_count")
        for j, c in enumerate(cells):
            try:
                float(c)
            except ValueError:
                raise DataError(f"{label}: line {first_row + i}, column {j + 1}: "
                                f"{c.strip()!r} is not a number", reason="not_a_number") from None
    raise DataError(f"{label}: unreadable numeric table", reason="not_a_number")


def _map_columns(header: list[str], label: str) -> tuple[int, list[int], list[bool]]:
    """Index of time, indices of IN_COLS, and per-channel 'given in radians' flags."""
    names = [h.strip() for h in header]
    ti = next((i for i, h in enumerate(names) if h.lower() in _TIME_NAMES), None)
    if ti is None:
        raise DataError(f"{label}: no time column (named 'time' or 'time_s') in the header "
                        f"{names[:4]}...", reason="missing_column")
    lookup: dict[str, tuple[int, bool]] = {}
    for i, h in enumerate(names):
        # accept "name", "name_deg", "name_rad" and OpenSim 4 paths ".../name/value"
        base = h[:-len("/value")] if h.endswith("/value") else h
        m = re.fullmatch(r"([A-Za-z0-9_]+?)(_deg|_rad)?", base.rsplit("/", 1)[-1])
        if m and m.group(1) in IN_COLS:
            lookup.setdefault(m.group(1), (i, m.group(2) == "_rad"))
    missing = [c for c in IN_COLS if c not in lookup]
    if missing:
        raise DataError(f"{label}: missing required column(s) {missing}; expected the "
                        f"schema names {list(IN_COLS)} (optionally with _deg or _rad)",
                        reason="missing_column")
    return ti, [lookup[c][0] for c in IN_COLS], [lookup[c][1] for c in IN_COLS]


def _finish(table: np.ndarray, header: list[str], label: str, first_row: int,
            in_degrees: bool = True) -> tuple[np.ndarray, np.ndarray]:
    if table.shape[1] != len(header):
        raise DataError(f"{label}: the header names {len(header)} columns but rows have "
                        f"{table.shape[1]}", reason="column_count")
    ti, idx, rad = _map_columns(header, label)
    t = table[:, ti]
    q = table[:, idx]
    bad = ~np.isfinite(np.column_stack([t, q]))
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        col = "time" if c == 0 else IN_COLS[c - 1]
        raise DataError(f"{label}: non-finite value at line {first_row + r}, column {col!r}",
                        reason="nan")
    if t.size < 2:
        raise DataError(f"{label}: needs at least 2 rows, got {t.size}", reason="empty")
    dt = np.diff(t)
    if (dt <= 0).any():
        r = int(np.argmax(dt <= 0)) + 1
        raise DataError(f"{label}: time is not strictly increasing at line {first_row + r} "
                        f"(t={t[r]:g} after {t[r - 1]:g})", reason="time_not_monotonic")
    scale = np.where(np.array(rad) | (not in_degrees), 180.0 / math.pi, 1.0)
    return t.astype(np.float64), (q * scale).astype(np.float32)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    head = 0
    while head < len(lines) and (not lines[head].strip() or lines[head].startswith("#")):
        head += 1
    if head >= len(lines):
        raise DataError(f"{path}: empty CSV", reason="empty")
    header = lines[head].split(",")
    table = parse_table(lines[head + 1:], head + 2, ",", str(path))
    return _finish(table, header, str(path), head + 2)


def _read_mot(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """OpenSim storage: key=value header lines up to ``endheader``, then a column line."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    try:
        end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
    except StopIteration:
        raise DataError(f"{path}: no 'endheader' line: not an OpenSim .mot/.sto file",
                        reason="bad_header") from None
    meta = {}
    for ln in lines[:end]:
        if "=" in ln:
            k, v = ln.split("=", 1)
            meta[k.strip().lower()] = v.strip().lower()
    deg = meta.get("indegrees")
    if deg not in ("yes", "no"):
        raise DataError(f"{path}: header must say inDegrees=yes or inDegrees=no (got "
                        f"{deg!r}); without it the angle unit is unknown", reason="bad_header")
    col = end + 1
    while col < len(lines) and not lines[col].strip():
        col += 1
    if col >= len(lines):
        raise DataError(f"{path}: no column header after endheader", reason="bad_header")
    header = lines[col].split("\t") if "\t" in lines[col] else lines[col].split()
    table = parse_table(lines[col + 1:], col + 2, None, str(path))
    if "nrows" in meta and meta["nrows"].isdigit() and int(meta["nrows"]) != len(table):
        raise DataError(f"{path}: header says nRows={meta['nrows']} but the file has "
                        f"{len(table)} rows (truncated?)", reason="truncated")
    return _finish(table, header, str(path), col + 2, in_degrees=(deg == "yes"))


def _read_c3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    require("ezc3d", "c3d", "reading .c3d files")
    raise DataError(f"{path}: .c3d files hold marker trajectories, not the model's OpenSim "
                    f"joint angles; run OpenSim inverse kinematics (Rajagopal 2016 model) and "
                    f"read the resulting .mot", reason="unsupported_format")


# ----------------------------------------------------------------------------- events
def events_path_for(path) -> Path:
    """``<dir>/<stem without _angles>_events.json`` next to a trial file."""
    path = Path(path)
    stem = path.stem[:-len("_angles")] if path.stem.endswith("_angles") else path.stem
    return path.with_name(stem + "_events.json")


def read_events(path) -> tuple[dict[str, np.ndarray], float | None]:
    """Read foot_strike_R/L (s) and body_mass_kg from an events JSON file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable events JSON: {exc}", reason="bad_events") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: events JSON must be an object", reason="bad_events")
    events: dict[str, np.ndarray] = {}
    for side in ("R", "L"):
        key = f"foot_strike_{side}"
        if key not in doc:
            continue
        try:
            ev = np.asarray(doc[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"{path}: {key} must be a list of times in s", reason="bad_events") from None
        if not np.isfinite(ev).all() or (np.diff(ev) <= 0).any():
            raise DataError(f"{path}: {key} must be finite and strictly increasing: "
                            f"{ev.tolist()}", reason="bad_events")
        events[side] = ev
    mass = doc.get("body_mass_kg")
    if mass is not None:
        if not isinstance(mass, (int, float)) or not 30.0 <= float(mass) <= 200.0:
            raise DataError(f"{path}: body_mass_kg={mass!r} is not a plausible mass in kg",
                            reason="bad_events")
        mass = float(mass)
    return events, mass


# ----------------------------------------------------------------------------- public
_READERS = {".csv": _read_csv, ".mot": _read_mot, ".sto": _read_mot, ".c3d": _read_c3d}


def read_trial(path, *, convert_gait2354: bool = False, check: bool = True) -> Trial:
    """Read a trial (.mot/.sto/.csv) and its sibling events JSON when present.

    Angles come back in degrees (radians converted when the file says so). The convention
    is checked (:func:`check_convention`); ``convert_gait2354=True`` flips the knee sign of
    files in the old gait2354 convention first. ``check=False`` skips the check (tools only).
    """
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown trial format {path.suffix!r}; use "
                        f"{sorted(_READERS)}", reason="unsupported_format")
    if not path.is_file():
        raise DataError(f"{path}: no such file", reason="not_found")
    t, q = reader(path)
    if convert_gait2354:
        q = _flip_knees(q).astype(np.float32)
    if check:
        try:
            check_convention(q)
        except DataError as exc:
            exc.args = (f"{path}: {exc.args[0]}",)
            raise
    ev_path = events_path_for(path)
    events, mass = read_events(ev_path) if ev_path.is_file() else ({}, None)
    rate = round(float(1.0 / np.median(np.diff(t))), 6)
    return Trial(t=t, q=q, rate_hz=rate, events=events, body_mass_kg=mass, source=str(path))


def write_trial_csv(path, trial: Trial) -> None:
    """Write ``time_s`` + the ten ``<name>_deg`` columns (the shared/data CSV layout)."""
    header = "time_s," + ",".join(c + "_deg" for c in IN_COLS)
    table = np.column_stack([trial.t, trial.q.astype(np.float64)])
    np.savetxt(path, table, delimiter=",", header=header, comments="",
               fmt=["%.6f"] + ["%.6f"] * N_IN)


def write_events_json(path, trial: Trial, extra: dict | None = None) -> None:
    """Write ``foot_strike_R/L`` and ``body_mass_kg`` as read by :func:`read_events`."""
    doc = {f"foot_strike_{s}": [float(v) for v in trial.events.get(s, [])] for s in ("R", "L")}
    doc["body_mass_kg"] = trial.body_mass_kg
    doc.update(extra or {})
    Path(path).write_text(json.dumps(doc, indent=1))
