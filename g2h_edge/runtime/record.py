"""Recording of every published message (``serve --record FILE``) and reading it back.

File format (append-only, survives a crash of the writer):

- an 8-byte magic ``b"G2HREC1\\n"`` when the file is created;
- then one record per published message: a 4-byte little-endian unsigned length ``L``
  followed by ``L`` bytes of msgpack ``[wall_time_s (float), topic (bin), body (bin)]``,
  where ``topic``/``body`` are the exact ZeroMQ frames that were published.

The writer flushes after every record, so a killed server loses at most the record it was
writing; :func:`read_record` stops cleanly at a truncated tail and reports it.
"""
from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

import msgpack

from g2h_edge.errors import DataError

__all__ = ["RECORD_MAGIC", "RecordWriter", "RecordContents", "read_record", "iter_record",
           "print_record", "export_cycles"]

RECORD_MAGIC = b"G2HREC1\n"
_LEN = struct.Struct("<I")
_MAX_RECORD = 64 * 1024 * 1024


class RecordWriter:
    """Appends published messages to a record file, flushed per message."""

    def __init__(self, path: str):
        self.path = str(path)
        self.file_ = None
        self.count_ = 0

    def open(self) -> RecordWriter:
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if not new:
            with open(self.path, "rb") as f:
                if f.read(len(RECORD_MAGIC)) != RECORD_MAGIC:
                    raise DataError(f"{self.path} exists and is not a g2h-edge record file; "
                                    "choose another --record path", reason="bad_record")
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
    """What :func:`read_record` found: records and whether the tail was truncated."""
    records: list          # [(wall_time_s, [topic, body])]
    truncated: bool
    truncated_bytes: int


def iter_record(path: str):
    """Yield ``(wall_time_s, [topic, body])``; a final ``None`` signals a truncated tail."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:len(RECORD_MAGIC)] != RECORD_MAGIC:
        raise DataError(f"{path} is not a g2h-edge record file (bad magic)",
                        reason="bad_record")
    pos = len(RECORD_MAGIC)
    while pos < len(data):
        if pos + 4 > len(data):
            yield None, len(data) - pos
            return
        (n,) = _LEN.unpack_from(data, pos)
        if n > _MAX_RECORD or pos + 4 + n > len(data):
            yield None, len(data) - pos
            return
        try:
            t, topic, body = msgpack.unpackb(data[pos + 4:pos + 4 + n], raw=False)
        except Exception:
            yield None, len(data) - pos
            return
        yield (float(t), [topic, body]), 0
        pos += 4 + n


def read_record(path: str) -> RecordContents:
    """Read a whole record file, tolerating a truncated (or half-written) tail."""
    records, truncated, nbytes = [], False, 0
    for rec, tail in iter_record(path):
        if rec is None:
            truncated, nbytes = True, tail
            break
        records.append(rec)
    return RecordContents(records, truncated, nbytes)


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
        peaks = " ".join(f"{c}={v:.3g}" for c, v in zip(msg["outputs"],
                                                         msg["y"].max(axis=0)))
        return (f"{stamp} cycle  {msg['stream']} {msg['side']} #{msg['cycle']} "
                f"{msg['t_start']:.3f}-{msg['t_end']:.3f}s {msg['model']} "
                f"[{msg['unit']}] peak {peaks} latency {msg['latency_ms']:.2f} ms")
    if kind == "reject":
        return f"{stamp} reject {msg.get('stream') or '?'} {msg['reason']}: {msg['detail']}"
    tot = msg.get("totals", {})
    return (f"{stamp} status streams={tot.get('live_streams', 0)} frames={tot.get('frames', 0)}"
            f" cycles={tot.get('cycles', 0)} rejects={sum(msg.get('rejects', {}).values())}")


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
    tail = (f"; truncated tail of {contents.truncated_bytes} bytes ignored (the writer "
            "stopped mid-record)" if contents.truncated else "")
    echo(f"# {len(out)} messages: {kinds['cycle']} cycles, {kinds['reject']} rejects, "
         f"{kinds['status']} status{tail}")
    return out


def export_cycles(messages: list, path: str) -> int:
    """Write the cycle messages to an NPZ: per-kg ``y`` (N, T, K) for the first model's
    output set, with stream/side/cycle/t_start/t_end/model/latency_ms columns."""
    import numpy as np

    cycles = [m for m in messages if m["type"] == "cycle"]
    if not cycles:
        raise DataError("the record holds no cycle messages to export", reason="no_cycles")
    cols = cycles[0]["outputs"]
    cycles = [m for m in cycles if m["outputs"] == cols]
    np.savez(path, y=np.stack([m["y"] for m in cycles]).astype(np.float32),
             out_cols=np.array(cols), unit=np.array(cycles[0]["unit"]),
             stream=np.array([m["stream"] for m in cycles]),
             side=np.array([m["side"] for m in cycles]),
             cycle=np.array([m["cycle"] for m in cycles]),
             t_start=np.array([m["t_start"] for m in cycles]),
             t_end=np.array([m["t_end"] for m in cycles]),
             model=np.array([m["model"] for m in cycles]),
             latency_ms=np.array([m["latency_ms"] for m in cycles]))
    return len(cycles)
