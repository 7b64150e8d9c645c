"""Streaming decoders: serial bytes or UDP datagrams -> CRC-checked frames; never raise.

:class:`LinkDecoder` is the hot path. It splits the byte stream at 0x00 delimiters with
``bytes.split`` (C speed), decodes each COBS block sequence with one Python step per block
(not per byte), checks the CRC with ``binascii.crc_hqx`` and unpacks the header with a
precompiled ``struct.Struct``. Every bad frame is counted by reason instead of raised; bytes
before the first 0x00 after start-up, a reconnect or an oversize run are skipped (the bridge
may have started listening in the middle of a frame), which is how it resynchronises.
"""

from __future__ import annotations

from binascii import crc_hqx

from .link import (
    HEADER,
    HEADER_BYTES,
    LINK_VERSION,
    MAX_ENCODED_BYTES,
    MAX_FRAME_BYTES,
    MAX_PAYLOAD_BYTES,
    TYPE_NAMES,
    Frame,
)

__all__ = ["LinkDecoder", "LINK_COUNTERS", "signed_delta"]

#: counters of a LinkDecoder, in the order they are reported
LINK_COUNTERS = (
    "bytes_in",
    "bytes_skipped",
    "frames_ok",
    "crc_errors",
    "framing_errors",
    "oversize",
    "wrong_version",
    "unknown_type",
)

_MIN_FRAME = HEADER_BYTES + 2


def signed_delta(new: int, old: int, bits: int) -> int:
    """``new - old`` on a ``bits``-wide wrapping counter, in [-2**(bits-1), 2**(bits-1))."""
    half = 1 << (bits - 1)
    return ((new - old + half) & ((1 << bits) - 1)) - half


def _cobs_decode(data: bytes):
    """COBS decode (no 0x00 inside, guaranteed by the split); None when malformed."""
    n = len(data)
    if data[0] == n:  # a single block: no zero in the frame
        return data[1:]
    out = bytearray()
    i = 0
    while i < n:
        code = data[i]
        j = i + code
        if j > n:
            return None
        out += data[i + 1 : j]
        i = j
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


class LinkDecoder:
    """Bytes in, :class:`~.link.Frame` tuples out; counts every error, never raises.

    ``feed(data)`` takes serial bytes (COBS, 0x00-delimited) in chunks of any size;
    ``feed_datagram(data)`` takes one UDP datagram holding one plain frame.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED_BYTES):
        self.max_encoded = int(max_encoded)
        self.buf_ = b""
        self.synced_ = False
        for name in LINK_COUNTERS:
            setattr(self, name, 0)

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in LINK_COUNTERS}

    def resync(self) -> None:
        """Forget any partial frame and skip bytes up to the next 0x00 (after a reconnect)."""
        self.buf_ = b""
        self.synced_ = False

    def feed(self, data) -> list[Frame]:
        """Decode every complete frame in ``buffered bytes + data``."""
        data = bytes(data)
        self.bytes_in += len(data)
        if not self.synced_:
            k = data.find(0)
            if k < 0:
                self.bytes_skipped += len(data)
                return []
            self.bytes_skipped += k
            data = data[k + 1 :]
            self.synced_ = True
        if self.buf_:
            data = self.buf_ + data
        chunks = data.split(b"\x00")
        tail = chunks.pop()
        if len(tail) > self.max_encoded:
            self.oversize += 1
            self.bytes_skipped += len(tail)
            tail = b""
            self.synced_ = False
        self.buf_ = tail
        out = []
        append = out.append
        for chunk in chunks:
            if not chunk:
                continue  # idle / extra delimiters are allowed
            if len(chunk) > self.max_encoded:
                self.oversize += 1
                self.bytes_skipped += len(chunk)
                continue
            raw = _cobs_decode(chunk)
            if raw is None:
                self.framing_errors += 1
                continue
            frame = self._parse(raw)
            if frame is not None:
                append(frame)
        return out

    def feed_datagram(self, data) -> list[Frame]:
        """One UDP datagram = one frame (no COBS); returns [] or [frame]."""
        data = bytes(data)
        self.bytes_in += len(data)
        frame = self._parse(data)
        return [] if frame is None else [frame]

    def _parse(self, raw: bytes):
        n = len(raw)
        if n < _MIN_FRAME:
            self.framing_errors += 1
            return None
        if n > MAX_FRAME_BYTES:
            self.oversize += 1
            return None
        if crc_hqx(raw[:-2], 0xFFFF) != raw[-2] | (raw[-1] << 8):
            self.crc_errors += 1
            return None
        version, ftype, stream, flags, seq, length, t_us = HEADER.unpack_from(raw)
        if version != LINK_VERSION:
            self.wrong_version += 1
            return None
        if length != n - _MIN_FRAME:
            if length > MAX_PAYLOAD_BYTES:
                self.oversize += 1
            else:
                self.framing_errors += 1
            return None
        if ftype not in TYPE_NAMES:
            self.unknown_type += 1
            return None
        self.frames_ok += 1
        return Frame(ftype, stream, seq, t_us, raw[HEADER_BYTES:-2], flags)
