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

__all__ = ["RECORD_MAGIC", "RecordWriter", "RecordContents", "read_record", "iter_record"]

RECORD_MAGIC = b"G2HREC1\n"
_LEN = struct.Struct("<I")
_MAX_RECORD = 64 * 1024 * 1024


class RecordWriter:
    """Appends published messages to a record file, flushed per message."""

    def __init__(self, path: str):
        self.path = str(path)
        self.file_ = None
        self.count_ = 0

    def open(self) -> "RecordWriter":
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
