"""c3d files (``c3d`` extra, ezc3d): model-output angle points and the EVENT group.

Labs export joint angles into c3d as POINTs (Vicon Nexus: ``LHipAngles`` with X/Y/Z =
the three Cardan angles, listed in ``POINT:ANGLES``, ``POINT:ANGLE_UNITS`` "deg"; Qualisys
and Visual3D write the same layout with their own names). :func:`read_c3d_table` turns
every POINT into three columns ``<label>_X/_Y/_Z`` (a ``Subject:`` prefix is kept and also
answered to without it), with NaN where the point is invalid (residual < 0 or NaN), and a
time axis ``(first_frame + i) / rate`` (ezc3d's 0-based header first frame, the clock that
the EVENT times use). The mapping layer then picks the ten inputs (Plug-in Gait preset by
default when its labels are present; ``--map`` otherwise).

:func:`read_c3d_events` reads initial contacts from the EVENT group: labels
``Foot Strike`` (Vicon; side from ``EVENT:CONTEXTS`` Right/Left) and the one-word styles
``RHS``/``LHS``/``RFS``/``LFS``/``RIC``/``LIC`` (Visual3D, Qualisys), or labels that name the
side (``Right Foot Strike``, ``Left_Foot_Strike``). Times are ``TIMES[0]*60 + TIMES[1]`` s.
Foot-off events are ignored (cycles run IC to IC). Body mass: ``PROCESSING:Bodymass`` (Vicon)
when present.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError, require
from g2h_edge.io.tables import Table

__all__ = ["read_c3d_table", "read_c3d_events", "ic_side_of_event"]

_STRIKE_WORDS = {
    "foot strike",
    "foot_strike",
    "footstrike",
    "heel strike",
    "heel_strike",
    "initial contact",
    "ic",
    "hs",
    "fs",
}
_ONE_WORD = {"rhs": "R", "lhs": "L", "rfs": "R", "lfs": "L", "ric": "R", "lic": "L"}


def _ezc3d():
    return require("ezc3d", "c3d", "reading .c3d files")


def _open(path: Path):
    ezc3d = _ezc3d()
    if not path.is_file():
        raise DataError(f"{path}: no such file", reason="not_found")
    try:
        return ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises plain RuntimeError/IOError on broken files
        raise DataError(f"{path}: not a readable c3d file ({exc})", reason="bad_c3d") from None


def _param(c, group: str, name: str, default=None):
    try:
        return c["parameters"][group][name]["value"]
    except KeyError:
        return default


def read_c3d_table(path) -> tuple[Table, dict]:
    """Angle points as a :class:`Table` (``time`` + ``<label>_X/_Y/_Z``) and its events."""
    path = Path(path)
    c = _open(path)
    rate = float(c["header"]["points"]["frame_rate"])
    labels = [str(x).strip() for x in (_param(c, "POINT", "LABELS", []) or [])]
    pts = np.asarray(c["data"]["points"], dtype=np.float64)  # (4, P, n)
    if rate <= 0 or pts.ndim != 3 or pts.shape[1] == 0 or pts.shape[2] < 2:
        raise DataError(
            f"{path}: the c3d holds no point data to read angles from (rate {rate:g} Hz, points {pts.shape})",
            reason="empty",
        )
    n_pts, n = pts.shape[1], pts.shape[2]
    labels = (labels + [f"point{i}" for i in range(len(labels), n_pts)])[:n_pts]
    xyz = pts[:3].copy()  # (3, P, n)
    res = c["data"].get("meta_points", {}).get("residuals")
    if res is not None and np.shape(res) == (1, n_pts, n):
        xyz[:, np.asarray(res)[0] < 0] = np.nan  # invalid samples
    bad = ~np.isfinite(xyz).all(axis=0)  # (P, n)
    xyz[:, bad] = np.nan
    first = float(c["header"]["points"]["first_frame"])
    t = (first + np.arange(n, dtype=np.float64)) / rate
    cols = [t] + [xyz[k, p] for p in range(n_pts) for k in range(3)]
    names = ["time"] + [f"{lab}_{ax}" for lab in labels for ax in "XYZ"]
    unit = str((_param(c, "POINT", "ANGLE_UNITS", [""]) or [""])[0]).strip()
    units = [""] + [unit if _is_angle(c, lab) else "" for lab in labels for _ in "XYZ"]
    tab = Table(
        labels=names,
        data=np.column_stack(cols),
        units=units,
        rate_hz=rate,
        first_line=1,
        layout="c3d",
        source=str(path),
    )
    return tab, read_c3d_events(path, c=c)[0]


def _is_angle(c, label: str) -> bool:
    angles = {str(a).strip() for a in (_param(c, "POINT", "ANGLES", []) or [])}
    return label in angles


def ic_side_of_event(label: str, context: str) -> str | None:
    """'R'/'L' when (label, context) is an initial contact, else None."""
    lab = re.sub(r"\s+", " ", str(label).strip().lower().replace("_", " "))
    ctx = str(context).strip().lower()
    if lab.replace(" ", "") in _ONE_WORD:
        return _ONE_WORD[lab.replace(" ", "")]
    side = "R" if ctx.startswith("r") else "L" if ctx.startswith("l") else None
    for prefix, s in (("right ", "R"), ("left ", "L"), ("r ", "R"), ("l ", "L")):
        if lab.startswith(prefix):
            lab, side = lab[len(prefix) :], s
            break
    if lab in _STRIKE_WORDS or lab.replace(" ", "_") in _STRIKE_WORDS:
        return side
    return None


def read_c3d_events(path, *, c=None) -> tuple[dict[str, np.ndarray], float | None]:
    """Initial contacts {"R": (m,), "L": (k,)} s from the EVENT group, and the body mass."""
    path = Path(path)
    c = c if c is not None else _open(path)
    labels = [str(x) for x in (_param(c, "EVENT", "LABELS", []) or [])]
    contexts = [str(x) for x in (_param(c, "EVENT", "CONTEXTS", []) or [])]
    times = np.asarray(_param(c, "EVENT", "TIMES", np.zeros((2, 0))), dtype=np.float64)
    if labels and (times.ndim != 2 or times.shape[0] != 2 or times.shape[1] < len(labels)):
        raise DataError(
            f"{path}: EVENT:TIMES has shape {times.shape}, expected (2, {len(labels)}) (minutes, seconds)",
            reason="bad_events",
        )
    out: dict[str, list[float]] = {"R": [], "L": []}
    unsided = []
    for i, lab in enumerate(labels):
        ctx = contexts[i] if i < len(contexts) else ""
        side = ic_side_of_event(lab, ctx)
        t = float(times[0, i] * 60.0 + times[1, i])
        if side is None:
            if ic_side_of_event(lab, "right") is not None:
                unsided.append(lab)
            continue
        out[side].append(t)
    if unsided and not (out["R"] or out["L"]):
        raise DataError(
            f"{path}: foot-strike events {unsided[:3]} name no side (EVENT:CONTEXTS should be Right/Left)",
            reason="bad_events",
        )
    events = {s: np.unique(np.asarray(v)) for s, v in out.items() if v}
    mass = _param(c, "PROCESSING", "Bodymass")
    mass = float(np.ravel(mass)[0]) if mass is not None and np.size(mass) else None
    if mass is not None and not 30.0 <= mass <= 200.0:
        mass = None  # Vicon writes 0 when the subject has no mass
    return events, mass
