"""Recording of every published message (``serve --record FILE``) and reading it back.

File format (append-only, survives a crash of the writer):

- an 8-byte magic ``b"G2HREC1\\n"`` when the file is created;
- then one record per published message: a 4-byte little-endian unsigned length ``L``
  followed by ``L`` bytes of msgpack ``[wall_time_s (float), topic (bin), body (bin)]``,
  where ``topic``/``body`` are the exact ZeroMQ frames that were published.

The writer flushes after every record, so a killed server loses at most the record it was
writing. Reopening a file whose writer was killed mid-record (``serve --record`` on the same
path again) first cuts the torn tail off at the end of the last whole record, so new records
follow whole ones. :func:`read_record` reports a truncated tail and reads past torn bytes in
the middle of a file (files written before that recovery existed): it resumes at the next
offset where a whole record starts.
"""

from __future__ import annotations

import os
import struct
import time
import warnings
from dataclasses import dataclass

import msgpack

from g2h_edge.errors import DataError

__all__ = [
    "RECORD_MAGIC",
    "RecordWriter",
    "RecordContents",
    "read_record",
    "iter_record",
    "print_record",
    "export_cycles",
    "whole_records_end",
]

RECORD_MAGIC = b"G2HREC1\n"
_LEN = struct.Struct("<I")
_MAX_RECORD = 64 * 1024 * 1024


def _record_at(data, pos: int):
    """``(wall_time_s, [topic, body]), end`` of a whole record starting at ``pos`` of
    ``data``, or None: the length fits, the body is msgpack ``[float, bin, bin]``."""
    if pos + 4 > len(data):
        return None
    (n,) = _LEN.unpack_from(data, pos)
    end = pos + 4 + n
    if n == 0 or n > _MAX_RECORD or end > len(data) or data[pos + 4] != 0x93:  # fixarray 3
        return None
    try:
        t, topic, body = msgpack.unpackb(data[pos + 4 : end], raw=False)
    except Exception:  # noqa: BLE001 - any decoding failure: not a record here
        return None
    if (
        isinstance(t, bool)
        or not isinstance(t, (int, float))
        or not isinstance(topic, bytes)
        or not isinstance(body, bytes)
    ):
        return None
    return (t, [topic, body]), end


def _segments(data):
    """Yield ``(start, end, record)`` over ``data`` after the magic: ``record`` is
    ``(wall_time_s, [topic, body])`` for a whole record, None for a torn stretch. A torn
    record can parse whole by swallowing the start of the next one (its length runs into
    it): a record that is not followed by another (or the end), while one starts inside
    it, is taken as torn."""
    pos = len(RECORD_MAGIC)
    while pos < len(data):
        found = _record_at(data, pos)
        if (
            found is not None
            and found[1] < len(data)
            and _record_at(data, found[1]) is None
            and _resync(data, pos + 1) < found[1]
        ):
            found = None
        if found is None:
            nxt = _resync(data, pos + 1)
            yield pos, nxt, None
            pos = nxt
        else:
            yield pos, found[1], found[0]
            pos = found[1]


def whole_records_end(path: str) -> int:
    """The byte offset just past the last whole record of a record file (the magic's end
    when there is none): what :class:`RecordWriter` keeps when it reopens a file."""
    with open(path, "rb") as f:
        data = f.read()
    end = len(RECORD_MAGIC)
    for _, stop, rec in _segments(data):
        if rec is not None:
            end = stop
    return end


class RecordWriter:
    """Appends published messages to a record file, flushed per message. Reopening a file
    cuts a torn tail (a record half-written when its writer was killed) first; the number
    of bytes cut is ``torn_bytes_``."""

    def __init__(self, path: str):
        self.path = str(path)
        self.file_ = None
        self.count_ = 0
        self.torn_bytes_ = 0

    def open(self) -> RecordWriter:
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        new = size == 0
        if not new:
            with open(self.path, "rb") as f:
                head = f.read(len(RECORD_MAGIC))
            if size < len(RECORD_MAGIC) and RECORD_MAGIC.startswith(head):
                new, keep = True, 0  # killed while writing the magic
            elif head != RECORD_MAGIC:
                raise DataError(
                    f"{self.path} exists and is not a g2h-edge record file; choose another --record path",
                    reason="bad_record",
                )
            else:
                keep = whole_records_end(self.path)
            if keep < size:  # a torn tail: new records follow whole ones
                os.truncate(self.path, keep)
                self.torn_bytes_ = size - keep
                warnings.warn(
                    f"{self.path}: cut a torn tail of {size - keep} bytes (a record "
                    "half-written when the last writer was killed); appending after "
                    "the last whole record",
                    RuntimeWarning,
                    stacklevel=2,
                )
        self.file_ = open(self.path, "ab", buffering=0)
        if new:
            self.file_.write(RECORD_MAGIC)
        return self

    def write(self, parts: list[bytes], wall_time_s: float | None = None) -> None:
        """Append one published message ``[topic, body]`` (written through immediately)."""
        t = time.time() if wall_time_s is None else wall_time_s
        payload = msgpack.packb([t, bytes(parts[0]), bytes(parts[1])], use_bin_type=True)
        # one write call per record: unbuffered file, so the OS has it when this returns
        self.file_.write(_LEN.pack(len(payload)) + payload)
        self.count_ += 1

    def close(self) -> None:
        if self.file_ is not None:
            self.file_.flush()
            os.fsync(self.file_.fileno())
            self.file_.close()
            self.file_ = None


@dataclass
class RecordContents:
    """What :func:`read_record` found: the whole records, whether the file ends in a
    truncated tail (``truncated_bytes`` long), and the torn stretches skipped before
    whole records (``torn_segments`` of ``torn_bytes`` in all)."""

    records: list  # [(wall_time_s, [topic, body])]
    truncated: bool
    truncated_bytes: int
    torn_segments: int = 0
    torn_bytes: int = 0


def iter_record(path: str):
    """Yield ``((wall_time_s, [topic, body]), 0)`` per whole record, and ``(None, n)`` for
    each stretch of ``n`` bytes that holds no whole record (a torn record); reading goes on
    at the next offset where a whole record starts."""
    with open(path, "rb") as f:
        data = f.read()
    if data[: len(RECORD_MAGIC)] != RECORD_MAGIC:
        raise DataError(f"{path} is not a g2h-edge record file (bad magic)", reason="bad_record")
    for start, end, rec in _segments(data):
        yield ((float(rec[0]), rec[1]), 0) if rec is not None else (None, end - start)


def _resync(data, pos: int) -> int:
    """The first offset >= ``pos`` where a whole record starts (len(data) when none)."""
    while True:
        mark = data.find(b"\x93", pos + 4)  # every record body starts with fixarray 3
        if mark < 0:
            return len(data)
        if _record_at(data, mark - 4) is not None:
            return mark - 4
        pos = mark - 3


def read_record(path: str) -> RecordContents:
    """Read a whole record file: every whole record, past torn stretches, and the
    truncated tail (if the last writer was killed mid-record)."""
    records, torn, last_torn = [], [], False
    for rec, skipped in iter_record(path):
        if rec is None:
            torn.append(skipped)
        else:
            records.append(rec)
        last_torn = rec is None
    tail = torn.pop() if last_torn else 0  # torn bytes at the very end: the truncated tail
    return RecordContents(records, bool(tail), tail, len(torn), sum(torn))


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, bytes):
        return o.hex()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _summary_line(wall: float, msg: dict) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"
    kind = msg.get("type")
    if kind == "cycle":
        peaks = " ".join(f"{c}={v:.3g}" for c, v in zip(msg["outputs"], msg["y"].max(axis=0)))
        return (
            f"{stamp} cycle  {msg['stream']} {msg['side']} #{msg['cycle']} "
            f"{msg['t_start']:.3f}-{msg['t_end']:.3f}s {msg['model']} "
            f"[{msg['unit']}] peak {peaks} latency {msg['latency_ms']:.2f} ms"
        )
    if kind == "reject":
        return f"{stamp} reject {msg.get('stream') or '?'} {msg['reason']}: {msg['detail']}"
    tot = msg.get("totals", {})
    return (
        f"{stamp} status streams={tot.get('live_streams', 0)} frames={tot.get('frames', 0)}"
        f" cycles={tot.get('cycles', 0)} rejects={sum(msg.get('rejects', {}).values())}"
    )


def print_record(path: str, *, as_json: bool = False, echo=print) -> list:
    """Print every message of a record file (a summary line each, or JSON lines); returns
    the decoded messages. Reports a truncated tail at the end."""
    import json

    from g2h_edge.wire import decode_output

    contents = read_record(path)
    out = []
    for wall, parts in contents.records:
        msg = decode_output(parts)
        msg["recorded_at"] = wall
        out.append(msg)
        echo(json.dumps(msg, default=_jsonable) if as_json else _summary_line(wall, msg))
    kinds = {k: sum(m["type"] == k for m in out) for k in ("cycle", "reject", "status")}
    tail = (
        f"; truncated tail of {contents.truncated_bytes} bytes ignored (the writer stopped mid-record)"
        if contents.truncated
        else ""
    )
    if contents.torn_segments:
        tail += (
            f"; {contents.torn_segments} torn record(s) of {contents.torn_bytes} bytes "
            "skipped (a writer killed mid-record, then restarted)"
        )
    echo(
        f"# {len(out)} messages: {kinds['cycle']} cycles, {kinds['reject']} rejects, "
        f"{kinds['status']} status{tail}"
    )
    return out


def export_cycles(messages: list, path: str) -> list[tuple[str, str, int]]:
    """Write the cycle messages to NPZ, one file per model: ``path`` itself when the record
    holds one model, else ``<stem>_<model>.npz`` beside it for each. Each holds per-kg ``y``
    (N, T, K), ``out_cols``, ``unit`` and stream/side/cycle/t_start/t_end/model/latency_ms
    columns. Returns [(file, model, n_cycles)]."""
    import re
    from pathlib import Path

    import numpy as np

    cycles = [m for m in messages if m["type"] == "cycle"]
    if not cycles:
        raise DataError("the record holds no cycle messages to export", reason="no_cycles")
    models: dict[tuple, list] = {}
    for m in cycles:
        models.setdefault((m["model"], m.get("sha256", ""), tuple(m["outputs"])), []).append(m)
    out, base = [], Path(path)
    for (name, _sha, cols), group in models.items():
        target = (
            base
            if len(models) == 1
            else base.with_name(f"{base.stem}_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}{base.suffix or '.npz'}")
        )
        np.savez(
            target,
            y=np.stack([m["y"] for m in group]).astype(np.float32),
            out_cols=np.array(cols),
            unit=np.array(group[0]["unit"]),
            stream=np.array([m["stream"] for m in group]),
            side=np.array([m["side"] for m in group]),
            cycle=np.array([m["cycle"] for m in group]),
            t_start=np.array([m["t_start"] for m in group]),
            t_end=np.array([m["t_end"] for m in group]),
            model=np.array([m["model"] for m in group]),
            latency_ms=np.array([m["latency_ms"] for m in group]),
        )
        out.append((str(target), name, len(group)))
    return out
