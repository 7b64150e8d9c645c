"""Text tables as labs export them -> labelled numeric columns (:class:`Table`).

Recognised layouts (chosen from the first lines, see docs/data_formats.md):

- **plain CSV**: ``#`` comment lines, one header row, then numbers (``,``/``;``/tab).
- **Vicon Nexus export** (``Model Outputs``/``Joints``/``Trajectories`` sections): a section
  title line, the rate line, a names row (``Subject:LHipAngles`` over its X/Y/Z columns), a
  component row (``Frame,Sub Frame,X,Y,Z,...``), a units row (``deg``), then numbers up to a
  blank line. Columns become ``LHipAngles_X`` (``Subject:`` kept too), the rate comes from the
  file, and units from the units row. With several sections, the one holding ``--section``
  (default ``Model Outputs``) is read.
- **Visual3D ASCII export**: tab-separated, five header rows (file names, signal names,
  signal types, folders, ``ITEM`` + components X/Y/Z), then numbers with the 1-based frame in
  ``ITEM``. Columns become ``<signal>_X``; the rate must be given (``--rate-hz``).
- **OpenSim .mot/.sto**: ``key=value`` lines up to ``endheader``, the column names, numbers.

Empty cells and ``NaN`` are kept as NaN (marker dropouts); anything else that is not a
number is an error naming its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError

__all__ = ["Table", "read_text_table", "parse_rows", "read_mot_table"]


@dataclass
class Table:
    """Labelled numeric columns read from a file."""

    labels: list[str]
    data: np.ndarray  # (n, m) float64, NaN where empty
    units: list[str] = field(default_factory=list)  # per column ('' when unknown)
    rate_hz: float | None = None  # when the file states it
    first_line: int = 1  # 1-based file line of data row 0
    layout: str = "csv"
    source: str = ""

    def unit_of(self, i: int) -> str:
        return self.units[i] if i < len(self.units) else ""


def _cell(text: str) -> float:
    t = text.strip()
    if not t:
        return float("nan")
    return float(t)


def parse_rows(
    lines: list[str], first_line: int, sep: str | None, label: str, width: int | None = None
) -> np.ndarray:
    """Numeric rows -> (n, m) float64; empty cells are NaN. ``first_line``: the 1-based file
    line of ``lines[0]``. Raises DataError naming the line and column."""
    rows, out = [(i, ln) for i, ln in enumerate(lines) if ln.strip()], []
    if not rows:
        raise DataError(f"{label}: no data rows", reason="empty")
    for i, ln in rows:
        cells = ln.rstrip("\r\n").split(sep) if sep else ln.split()
        if sep and width is not None and len(cells) > width and not any(c.strip() for c in cells[width:]):
            cells = cells[:width]  # trailing separators (spreadsheets)
        if width is None:
            width = len(cells)
        if len(cells) != width:
            raise DataError(
                f"{label}: line {first_line + i} has {len(cells)} columns, expected {width}",
                reason="column_count",
            )
        try:
            out.append([_cell(c) for c in cells])
        except ValueError:
            j = next(j for j, c in enumerate(cells) if not _is_num(c))
            raise DataError(
                f"{label}: line {first_line + i}, column {j + 1}: {cells[j].strip()!r} is not a number",
                reason="not_a_number",
            ) from None
    return np.asarray(out, dtype=np.float64).reshape(len(out), width)


def _is_num(c: str) -> bool:
    try:
        _cell(c)
        return True
    except ValueError:
        return False


def _sep_of(line: str) -> str:
    return "\t" if "\t" in line else ";" if line.count(";") > line.count(",") else ","


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
        return True
    except ValueError:
        return False


def _nexus_sections(lines: list[str]) -> list[int]:
    """Line indices of Nexus section titles (a lone word line followed by a rate line)."""
    out = []
    for i in range(len(lines) - 1):
        title = lines[i].strip().strip(",")
        if (
            title
            and not _is_number(title)
            and "," not in title
            and _is_number(lines[i + 1].strip().strip(",") or "x")
        ):
            out.append(i)
    return out


def _read_nexus(lines: list[str], starts: list[int], label: str, section: str) -> Table:
    pick = next((s for s in starts if lines[s].strip().strip(",").lower() == section.lower()), None)
    if pick is None:
        names = [lines[s].strip().strip(",") for s in starts]
        if len(starts) > 1:
            raise DataError(
                f"{label}: Nexus export without a {section!r} section (it has "
                f"{names}); export the model outputs",
                reason="bad_header",
            )
        pick = starts[0]
    if pick + 5 > len(lines):
        raise DataError(f"{label}: Nexus section at line {pick + 1} is cut short", reason="bad_header")
    rate = float(lines[pick + 1].strip().strip(","))
    names = lines[pick + 2].rstrip("\r\n").split(",")
    comps = lines[pick + 3].rstrip("\r\n").split(",")
    units = lines[pick + 4].rstrip("\r\n").split(",")
    labels, current = [], ""
    for j, comp in enumerate(comps):
        name = names[j].strip() if j < len(names) else ""
        current = name or current
        comp = comp.strip()
        labels.append(f"{current}_{comp}" if current and comp else comp or current)
    end = pick + 5
    while end < len(lines) and lines[end].strip().strip(","):
        end += 1
    data = parse_rows(lines[pick + 5 : end], pick + 6, ",", label, width=len(labels))
    return Table(
        labels=labels,
        data=data,
        units=[u.strip() for u in units],
        rate_hz=rate,
        first_line=pick + 6,
        layout="nexus",
        source=label,
    )


def _read_visual3d(lines: list[str], item_row: int, label: str) -> Table:
    rows = [ln.rstrip("\r\n").split("\t") for ln in lines[: item_row + 1]]
    names = rows[item_row - 3] if item_row >= 3 else rows[0]
    comps = rows[item_row]
    labels = []
    for j, comp in enumerate(comps):
        name = names[j].strip() if j < len(names) else ""
        comp = comp.strip()
        labels.append("ITEM" if j == 0 else f"{name}_{comp}" if name and comp else name or comp)
    data = parse_rows(lines[item_row + 1 :], item_row + 2, "\t", label, width=len(labels))
    return Table(
        labels=labels,
        data=data,
        units=[""] * len(labels),
        rate_hz=None,
        first_line=item_row + 2,
        layout="visual3d",
        source=label,
    )


def read_text_table(path, *, section: str = "Model Outputs") -> Table:
    """Read a plain, Nexus or Visual3D text export (see module doc)."""
    path = Path(path)
    label = str(path)
    lines = path.read_text(encoding="utf-8-sig", errors="strict").splitlines()
    head = 0
    while head < len(lines) and (not lines[head].strip() or lines[head].startswith("#")):
        head += 1
    if head >= len(lines):
        raise DataError(f"{label}: empty file", reason="empty")
    body = lines[head:]
    item = next(
        (i for i, ln in enumerate(body[:8]) if ln.split("\t")[0].strip().upper() == "ITEM" and "\t" in ln),
        None,
    )
    if item is not None:
        tab = _read_visual3d(body, item, label)
    else:
        starts = _nexus_sections(body)
        if starts and starts[0] == 0:
            tab = _read_nexus(body, starts, label, section)
        else:
            sep = _sep_of(body[0])
            header = [h.strip() for h in body[0].split(sep)]
            data = parse_rows(body[1:], head + 2, sep, label)
            if data.shape[1] != len(header):
                raise DataError(
                    f"{label}: the header names {len(header)} columns but rows have {data.shape[1]}",
                    reason="column_count",
                )
            tab = Table(
                labels=header,
                data=data,
                units=[""] * len(header),
                first_line=head + 2,
                layout="csv",
                source=label,
            )
    tab.first_line += head if tab.layout != "csv" else 0
    return tab


def read_mot_table(path, *, require_units: bool = True) -> tuple[Table, bool]:
    """OpenSim storage -> (Table, in_degrees); key=value lines up to ``endheader``.
    ``require_units=False`` (force/moment files) accepts a header without inDegrees."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    try:
        end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
    except StopIteration:
        raise DataError(
            f"{path}: no 'endheader' line: not an OpenSim .mot/.sto file", reason="bad_header"
        ) from None
    meta = {}
    for ln in lines[:end]:
        if "=" in ln:
            k, v = ln.split("=", 1)
            meta[k.strip().lower()] = v.strip().lower()
    deg = meta.get("indegrees", None if require_units else "no")
    if deg not in ("yes", "no"):
        raise DataError(
            f"{path}: header must say inDegrees=yes or inDegrees=no (got "
            f"{deg!r}); without it the angle unit is unknown",
            reason="bad_header",
        )
    col = end + 1
    while col < len(lines) and not lines[col].strip():
        col += 1
    if col >= len(lines):
        raise DataError(f"{path}: no column header after endheader", reason="bad_header")
    header = lines[col].split("\t") if "\t" in lines[col] else lines[col].split()
    data = parse_rows(lines[col + 1 :], col + 2, "\t" if "\t" in lines[col] else None, str(path))
    if "nrows" in meta and meta["nrows"].isdigit() and int(meta["nrows"]) != len(data):
        raise DataError(
            f"{path}: header says nRows={meta['nrows']} but the file has {len(data)} rows (truncated?)",
            reason="truncated",
        )
    if data.shape[1] != len(header):
        raise DataError(
            f"{path}: the header names {len(header)} columns but rows have {data.shape[1]}",
            reason="column_count",
        )
    unit = "deg" if deg == "yes" else "rad"
    return Table(
        labels=[h.strip() for h in header],
        data=data,
        units=[unit] * len(header),
        first_line=col + 2,
        layout="mot",
        source=str(path),
    ), deg == "yes"
