"""Continuous trials: OpenSim .mot/.sto, CSV (plain, Nexus, Visual3D), .c3d (`c3d` extra).

A :class:`Trial` holds time (s), the ten input angles in degrees in IN_COLS order, the
initial-contact events when known, and the body mass. Columns are mapped through
:mod:`g2h_edge.io.mapping` (schema names, ``--map``, the Plug-in Gait preset); extra columns
are ignored; a missing required column, a ragged row, a non-number, non-finite or
non-increasing time raise :class:`DataError` naming the row and column. Non-finite angles
are marker dropouts: filled linearly up to ``max_gap_s``, otherwise kept as NaN rows that
publishers leave out and count (``Trial.dropout_frames``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.gait.convention import check_convention
from g2h_edge.gait.convention import convert_gait2354 as _flip_knees
from g2h_edge.io.mapping import (
    MappingConfig,
    current_mapping,
    fill_gaps,
    normalise_label,
    resolve_channels,
    unit_word,
)
from g2h_edge.io.tables import Table, parse_rows, read_mot_table, read_text_table
from g2h_edge.schema import IN_COLS, N_IN

__all__ = [
    "Trial",
    "read_trial",
    "read_events",
    "read_events_file",
    "write_trial_csv",
    "write_events_json",
    "events_path_for",
    "parse_table",
]

_TIME_NAMES = ("time", "time_s")
_FRAME_NAMES = ("frame", "item")


@dataclass
class Trial:
    """A continuous recording: ``t`` (n,) s, ``q`` (n, 10) deg in IN_COLS order."""

    t: np.ndarray  # (n,) float64 s, strictly increasing
    q: np.ndarray  # (n, 10) float32 deg
    rate_hz: float
    events: dict[str, np.ndarray] = field(default_factory=dict)  # {"R": (m,), "L": (m,)} s
    body_mass_kg: float | None = None
    source: str = ""
    #: frames whose angles are still non-finite (dropouts longer than max_gap_s)
    dropout_frames: int = 0
    #: frames filled by linear interpolation (dropouts up to max_gap_s)
    filled_frames: int = 0
    #: how the columns were found (e.g. "schema names", "preset pig")
    mapping: str = ""

    @property
    def n(self) -> int:
        return int(self.t.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0]) if self.n else 0.0


# ----------------------------------------------------------------------------- parsing
def parse_table(lines: list[str], first_row: int, sep: str | None, label: str):
    """Parse numeric rows (empty cells are NaN); ``first_row`` is the 1-based file line of
    ``lines[0]``. Returns (n, m) float64; DataError naming the line and column otherwise."""
    return parse_rows(lines, first_row, sep, label)


def _time_axis(tab: Table, cfg: MappingConfig, label: str) -> np.ndarray:
    """Time (s) from the configured/auto time column, a frame column and a rate, or a rate."""
    lookup = {normalise_label(h): i for i, h in reversed(list(enumerate(tab.labels)))}
    rate = cfg.rate_hz or tab.rate_hz

    def col(name: str, what: str) -> int:
        i = lookup.get(normalise_label(name))
        if i is None:
            raise DataError(
                f"{label}: no {what} column {name!r} among {tab.labels[:6]}...", reason="missing_column"
            )
        return i

    if cfg.time_column:
        return tab.data[:, col(cfg.time_column, "time")]
    if not cfg.frame_column:
        ti = next((lookup[n] for n in _TIME_NAMES if n in lookup), None)
        if ti is not None:
            return tab.data[:, ti]
    fname = cfg.frame_column or next((n for n in _FRAME_NAMES if n in lookup), None)
    if fname is not None:
        if rate is None:
            raise DataError(
                f"{label}: frames are numbered in column {fname!r} but the rate is unknown: pass --rate-hz",
                reason="no_rate",
            )
        return (tab.data[:, col(fname, "frame")] - 1.0) / float(rate)
    if cfg.rate_hz is not None:
        return np.arange(tab.data.shape[0], dtype=np.float64) / float(cfg.rate_hz)
    raise DataError(
        f"{label}: no time column (named 'time' or 'time_s') in the header "
        f"{tab.labels[:4]}...; name one with --time-column, or give "
        "--frame-column and/or --rate-hz",
        reason="missing_column",
    )


def _from_table(tab: Table, cfg: MappingConfig, label: str):
    """(t, q deg with NaN dropouts, GapReport, mapping description) from a Table."""
    if tab.data.shape[1] != len(tab.labels):
        raise DataError(
            f"{label}: the header names {len(tab.labels)} columns but rows have {tab.data.shape[1]}",
            reason="column_count",
        )
    try:
        plan = resolve_channels(tab.labels, cfg, what=label)
    except ConfigError as exc:
        raise DataError(str(exc), reason=exc.reason) from None
    t = np.asarray(_time_axis(tab, cfg, label), dtype=np.float64)
    if not np.isfinite(t).all():
        r = int(np.argmax(~np.isfinite(t)))
        raise DataError(
            f"{label}: non-finite value at line {tab.first_line + r}, column 'time'", reason="nan"
        )
    if t.size < 2:
        raise DataError(f"{label}: needs at least 2 rows, got {t.size}", reason="empty")
    dt = np.diff(t)
    if (dt <= 0).any():
        r = int(np.argmax(dt <= 0)) + 1
        raise DataError(
            f"{label}: time is not strictly increasing at line "
            f"{tab.first_line + r} (t={t[r]:g} after {t[r - 1]:g})",
            reason="time_not_monotonic",
        )
    if cfg.units is not None:
        rad = np.full(len(IN_COLS), cfg.units == "rad")
    else:
        rad = np.array(
            [
                unit_word(tab.unit_of(i)) == "rad" or normalise_label(tab.labels[i]).endswith("_rad")
                for i in plan.index
            ]
        )
    q = plan.apply(tab.data, rad)
    q, gaps = fill_gaps(t, q, cfg.max_gap_s)
    return t, q.astype(np.float32), gaps, plan.described


def _read_csv(path: Path, cfg: MappingConfig):
    return _from_table(read_text_table(path), cfg, str(path))


def _read_mot(path: Path, cfg: MappingConfig):
    """OpenSim storage: key=value header lines up to ``endheader``, then a column line."""
    tab, _ = read_mot_table(path)
    return _from_table(tab, cfg, str(path))


def _read_c3d(path: Path, cfg: MappingConfig):
    from g2h_edge.io.c3d import read_c3d_table

    tab, _events = read_c3d_table(path)
    return _from_table(tab, cfg, str(path))


# ----------------------------------------------------------------------------- events
def events_path_for(path) -> Path:
    """``<dir>/<stem without _angles>_events.json`` next to a trial file."""
    path = Path(path)
    stem = path.stem[: -len("_angles")] if path.stem.endswith("_angles") else path.stem
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
            raise DataError(
                f"{path}: {key} must be finite and strictly increasing: {ev.tolist()}", reason="bad_events"
            )
        events[side] = ev
    mass = doc.get("body_mass_kg")
    if mass is not None:
        if not isinstance(mass, (int, float)) or not 30.0 <= float(mass) <= 200.0:
            raise DataError(
                f"{path}: body_mass_kg={mass!r} is not a plausible mass in kg", reason="bad_events"
            )
        mass = float(mass)
    return events, mass


# ----------------------------------------------------------------------------- public
_READERS = {".csv": _read_csv, ".mot": _read_mot, ".sto": _read_mot, ".c3d": _read_c3d}


def read_events_file(path) -> tuple[dict[str, np.ndarray], float | None]:
    """Events and body mass from an events JSON or a c3d file's EVENT group."""
    path = Path(path)
    if path.suffix.lower() == ".c3d":
        from g2h_edge.io.c3d import read_c3d_events

        return read_c3d_events(path)
    return read_events(path)


def read_trial(
    path, *, convert_gait2354: bool = False, check: bool = True, mapping: MappingConfig | None = None
) -> Trial:
    """Read a trial (.mot/.sto/.csv/.c3d) and its events when present.

    Columns are found by ``mapping`` (default: :func:`current_mapping`, i.e. what the
    command's ``--map``/``--units``/... options say, else the schema names or Plug-in Gait
    labels). Angles come back in degrees; dropouts are filled up to ``mapping.max_gap_s``
    and otherwise kept as NaN rows. Events: ``mapping.events_path`` (.json or .c3d), else a
    c3d file's own EVENT group, else the sibling ``<stem>_events.json``. The convention is
    checked on the finite frames (:func:`check_convention`); ``convert_gait2354=True`` flips
    the knee sign of files in the old gait2354 convention first.
    """
    path = Path(path)
    cfg = mapping if mapping is not None else current_mapping()
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"{path}: unknown trial format {path.suffix!r}; use {sorted(_READERS)}",
            reason="unsupported_format",
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file", reason="not_found")
    t, q, gaps, described = reader(path, cfg)
    finite = np.isfinite(q).all(axis=1)
    if np.count_nonzero(finite) < 2:
        raise DataError(
            f"{path}: fewer than 2 frames have all ten angles (the rest are dropouts)", reason="nan"
        )
    if convert_gait2354:
        q = _flip_knees(q).astype(np.float32)
    if check:
        try:
            check_convention(q[finite])
        except DataError as exc:
            exc.args = (f"{path}: {exc.args[0]}",)
            raise
    events, mass = _events_for(path, cfg)
    rate = round(float(1.0 / np.median(np.diff(t))), 6)
    return Trial(
        t=t,
        q=q,
        rate_hz=rate,
        events=events,
        body_mass_kg=mass,
        source=str(path),
        dropout_frames=gaps.dropout_frames,
        filled_frames=gaps.filled_frames,
        mapping=described,
    )


def _events_for(path: Path, cfg: MappingConfig):
    if cfg.events_path:
        return read_events_file(cfg.events_path)
    if path.suffix.lower() == ".c3d":
        events, mass = read_events_file(path)
        if events:
            return events, mass
    ev_path = events_path_for(path)
    return read_events(ev_path) if ev_path.is_file() else ({}, None)


def write_trial_csv(path, trial: Trial) -> None:
    """Write ``time_s`` + the ten ``<name>_deg`` columns (the shared/data CSV layout)."""
    header = "time_s," + ",".join(c + "_deg" for c in IN_COLS)
    table = np.column_stack([trial.t, trial.q.astype(np.float64)])
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt=["%.6f"] + ["%.6f"] * N_IN)


def write_events_json(path, trial: Trial, extra: dict | None = None) -> None:
    """Write ``foot_strike_R/L`` and ``body_mass_kg`` as read by :func:`read_events`."""
    doc = {f"foot_strike_{s}": [float(v) for v in trial.events.get(s, [])] for s in ("R", "L")}
    doc["body_mass_kg"] = trial.body_mass_kg
    doc.update(extra or {})
    Path(path).write_text(json.dumps(doc, indent=1))
