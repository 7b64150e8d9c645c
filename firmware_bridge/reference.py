"""Naive per-byte reference of the link codec: the test oracle and the bench baseline.

Written straight from the definitions (a bit-by-bit CRC, a byte-at-a-time COBS state machine
like the one a microcontroller runs) and deliberately not optimised, so that the fast codec
in :mod:`.link` / :mod:`.deframer` can be checked against it and measured relative to it.
"""

from __future__ import annotations

__all__ = ["crc16_bitwise", "cobs_encode_bytewise", "cobs_decode_bytewise", "ReferenceDeframer"]


def crc16_bitwise(data, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE one bit at a time (poly 0x1021, MSB first, no reflection)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def cobs_encode_bytewise(data) -> bytes:
    """COBS encoding one byte at a time (same canonical form as link.cobs_encode)."""
    out = bytearray([0])
    code_at, code = 0, 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode_bytewise(data) -> bytes | None:
    """Decode a COBS block sequence one byte at a time; None when it is malformed."""
    out = bytearray()
    remaining = 0
    code = 0xFF
    for byte in data:
        if byte == 0:
            return None
        if remaining == 0:
            if code != 0xFF:
                out.append(0)
            code = remaining = byte
        else:
            out.append(byte)
        remaining -= 1
    if remaining != 0:
        return None
    return bytes(out)


class ReferenceDeframer:
    """Byte-at-a-time deframer with the MCU algorithm: buffer until 0x00, decode, CRC-check.

    ``feed`` returns the CRC-valid decoded frames (bytes); ``errors`` counts the rest.
    """

    def __init__(self, max_encoded: int = 1043):
        self.max_encoded = max_encoded
        self.buf_ = bytearray()
        self.dropping_ = False
        self.errors = 0

    def feed(self, data) -> list[bytes]:
        frames = []
        for byte in data:
            if byte != 0:
                if not self.dropping_:
                    self.buf_.append(byte)
                    if len(self.buf_) > self.max_encoded:
                        self.errors += 1
                        self.buf_.clear()
                        self.dropping_ = True
                continue
            if self.dropping_ or not self.buf_:
                self.dropping_ = False
                continue
            raw = cobs_decode_bytewise(self.buf_)
            self.buf_.clear()
            if raw is None or len(raw) < 14 or crc16_bitwise(raw[:-2]) != raw[-2] | raw[-1] << 8:
                self.errors += 1
                continue
            frames.append(raw)
        return frames
