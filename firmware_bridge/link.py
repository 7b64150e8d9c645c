"""Link format v1 between a microcontroller and the bridge: CRC, COBS, frames (strict API).

A decoded frame is ``header (12 bytes) + payload (<= 1024 bytes) + CRC-16 (2 bytes)``, all
integers little-endian::

    u8 version (=1) | u8 type | u8 stream | u8 flags (0) | u16 seq | u16 length | u32 t_us

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) over header
and payload, stored little-endian. On a serial line each frame is COBS-encoded and followed by
one 0x00 byte; over UDP one datagram carries one decoded frame (no COBS).

Every function here is strict: bad input raises :class:`~g2h_edge.errors.BridgeError` whose
``reason`` is one of :data:`REASONS`. The streaming decoder (:mod:`.deframer`) counts these
reasons instead of raising.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx
from typing import NamedTuple

import numpy as np

from g2h_edge.errors import BridgeError
from g2h_edge.schema import N_IN

__all__ = [
    "LINK_VERSION",
    "HEADER_BYTES",
    "CRC_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_ENCODED_BYTES",
    "ANGLES",
    "IC_EVENT",
    "META",
    "PREDICTION",
    "STATUS",
    "TYPE_NAMES",
    "PAYLOAD_BYTES",
    "REASONS",
    "KIND_MUSCLE_FORCE",
    "KIND_JOINT_MOMENT",
    "SIDE_RIGHT",
    "SIDE_LEFT",
    "HEADER",
    "crc16",
    "cobs_encode",
    "cobs_decode",
    "cobs_max_encoded",
    "Frame",
    "Angles",
    "IcEvent",
    "LinkMeta",
    "Prediction",
    "Status",
    "pack_frame",
    "parse_frame",
    "parse_payload",
    "serial_frame",
    "pack_angles",
    "pack_ic_event",
    "pack_meta",
    "pack_prediction",
    "pack_status",
]

LINK_VERSION = 1
HEADER_BYTES = 12
CRC_BYTES = 2
MAX_PAYLOAD_BYTES = 1024
MAX_FRAME_BYTES = HEADER_BYTES + MAX_PAYLOAD_BYTES + CRC_BYTES  # 1038


def cobs_max_encoded(n: int) -> int:
    """Largest COBS encoding of ``n`` bytes (without the 0x00 delimiter)."""
    return n + n // 254 + 1


MAX_ENCODED_BYTES = cobs_max_encoded(MAX_FRAME_BYTES)  # 1043

ANGLES, IC_EVENT, META, PREDICTION, STATUS = 0x01, 0x02, 0x03, 0x10, 0x11
TYPE_NAMES = {
    ANGLES: "ANGLES",
    IC_EVENT: "IC_EVENT",
    META: "META",
    PREDICTION: "PREDICTION",
    STATUS: "STATUS",
}
#: exact payload size of the fixed-size types (PREDICTION is 6 + 2 * channels * points)
PAYLOAD_BYTES = {ANGLES: 4 * N_IN, IC_EVENT: 5, META: 8, STATUS: 16}
SIDE_RIGHT, SIDE_LEFT = 0, 1
KIND_MUSCLE_FORCE, KIND_JOINT_MOMENT = 0, 1

#: every BridgeError.reason raised here
REASONS = (
    "cobs",
    "truncated",
    "oversize",
    "crc",
    "wrong_version",
    "bad_length",
    "unknown_type",
    "bad_payload",
    "bad_value",
)

HEADER = struct.Struct("<BBBBHHI")
_CRC = struct.Struct("<H")
_ANGLES = struct.Struct(f"<{N_IN}f")
_IC = struct.Struct("<BI")
_META = struct.Struct("<ff")
_PRED_HEAD = struct.Struct("<BBHBB")
_STATUS = struct.Struct("<4I")


def crc16(data, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b"123456789" is 0x29B1).

    ``binascii.crc_hqx`` is the MSB-first CRC-16 with polynomial 0x1021 and a caller-given
    initial value and no final xor, i.e. exactly CCITT-FALSE when started at 0xFFFF.
    """
    return crc_hqx(data, crc)


# --------------------------------------------------------------------------- COBS
def cobs_encode(data) -> bytes:
    """COBS-encode ``data`` (result contains no 0x00; the caller appends the delimiter).

    A run of 254 non-zero bytes becomes a 0xFF block; a following zero (or the end of the
    data) then costs one more 0x01 code, as in Cheshire & Baker's original algorithm. The C
    codec produces the same bytes.
    """
    out = bytearray()
    for piece in bytes(data).split(b"\x00"):
        while len(piece) >= 254:
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def cobs_decode(data) -> bytes:
    """Decode one COBS block sequence (without the 0x00 delimiter); BridgeError('cobs')."""
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        code = data[i]
        j = i + code
        if code == 0 or j > n:
            what = "a 0x00 byte inside" if code == 0 else f"code {code} past the end of"
            raise BridgeError(f"COBS error: {what} a {n}-byte block at offset {i}", reason="cobs")
        out += data[i + 1 : j]
        i = j
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------- frames
class Frame(NamedTuple):
    """A CRC-checked frame: header fields and the raw payload bytes."""

    type: int
    stream: int
    seq: int
    t_us: int
    payload: bytes
    flags: int = 0


class Angles(NamedTuple):
    q: tuple  # 10 floats, degrees, schema (IN_COLS) order


class IcEvent(NamedTuple):
    side: int  # 0 right, 1 left
    t_us: int  # device clock of the initial contact


class LinkMeta(NamedTuple):
    rate_hz: float
    body_mass_kg: float  # 0 or NaN: unknown


class Prediction(NamedTuple):
    side: int
    kind: int  # 0 muscle force (N/kg), 1 joint moment (Nm/kg)
    cycle: int  # u16, wraps
    values: np.ndarray  # (channels, points) int16, milli-units per kg


class Status(NamedTuple):
    frames_ok: int
    crc_errors: int
    framing_errors: int
    seq_gaps: int


def _u(value, bits: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < (1 << bits):
        raise BridgeError(
            f"{name}={value!r} must be an integer in [0, {(1 << bits) - 1}]", reason="bad_value"
        )
    return int(value)


def pack_frame(ftype: int, payload, *, stream: int = 0, seq: int = 0, t_us: int = 0, flags: int = 0) -> bytes:
    """Header + payload + CRC (not COBS-encoded: that is :func:`serial_frame`)."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BridgeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", reason="oversize")
    head = HEADER.pack(
        LINK_VERSION,
        _u(ftype, 8, "type"),
        _u(stream, 8, "stream"),
        _u(flags, 8, "flags"),
        _u(seq, 16, "seq"),
        len(payload),
        _u(t_us, 32, "t_us"),
    )
    body = head + payload
    return body + _CRC.pack(crc_hqx(body, 0xFFFF))


def serial_frame(frame: bytes) -> bytes:
    """What goes on a serial line for one frame: COBS(frame) + 0x00."""
    return cobs_encode(frame) + b"\x00"


def parse_frame(raw) -> Frame:
    """Check and split one decoded frame (header + payload + CRC); strict.

    Raises BridgeError with reason 'truncated', 'oversize', 'crc', 'wrong_version',
    'bad_length' or 'unknown_type'. Payload contents are checked by :func:`parse_payload`.
    """
    n = len(raw)
    if n < HEADER_BYTES + CRC_BYTES:
        raise BridgeError(
            f"frame of {n} bytes is shorter than header + CRC ({HEADER_BYTES + CRC_BYTES})",
            reason="truncated",
        )
    if n > MAX_FRAME_BYTES:
        raise BridgeError(f"frame of {n} bytes exceeds {MAX_FRAME_BYTES}", reason="oversize")
    want = crc_hqx(raw[:-2], 0xFFFF)
    got = raw[-2] | (raw[-1] << 8)
    if want != got:
        raise BridgeError(f"CRC mismatch: frame says 0x{got:04X}, computed 0x{want:04X}", reason="crc")
    version, ftype, stream, flags, seq, length, t_us = HEADER.unpack_from(raw)
    if version != LINK_VERSION:
        raise BridgeError(
            f"link version {version} is not supported (this bridge speaks "
            f"v{LINK_VERSION}); update the firmware or the bridge",
            reason="wrong_version",
        )
    if length > MAX_PAYLOAD_BYTES:
        raise BridgeError(f"payload length {length} exceeds {MAX_PAYLOAD_BYTES}", reason="oversize")
    if length != n - HEADER_BYTES - CRC_BYTES:
        raise BridgeError(
            f"header says {length} payload bytes, frame carries {n - HEADER_BYTES - CRC_BYTES}",
            reason="truncated" if length > n - 14 else "bad_length",
        )
    if ftype not in TYPE_NAMES:
        raise BridgeError(f"unknown frame type 0x{ftype:02X}", reason="unknown_type")
    return Frame(ftype, stream, seq, t_us, bytes(raw[HEADER_BYTES:-2]), flags)


def _need(payload: bytes, size: int, name: str) -> None:
    if len(payload) != size:
        raise BridgeError(f"{name} payload has {len(payload)} bytes, expected {size}", reason="bad_payload")


def parse_payload(frame: Frame):
    """Typed contents of a frame: Angles, IcEvent, LinkMeta, Prediction or Status."""
    t, p = frame.type, frame.payload
    name = TYPE_NAMES.get(t, f"0x{t:02X}")
    if t in PAYLOAD_BYTES:
        _need(p, PAYLOAD_BYTES[t], name)
    if t == ANGLES:
        return Angles(_ANGLES.unpack(p))
    if t == IC_EVENT:
        side, t_us = _IC.unpack(p)
        if side > 1:
            raise BridgeError(f"IC_EVENT side {side} must be 0 (right) or 1 (left)", reason="bad_payload")
        return IcEvent(side, t_us)
    if t == META:
        return LinkMeta(*_META.unpack(p))
    if t == STATUS:
        return Status(*_STATUS.unpack(p))
    if t == PREDICTION:
        if len(p) < _PRED_HEAD.size:
            raise BridgeError(f"PREDICTION payload has {len(p)} bytes, fewer than 6", reason="bad_payload")
        side, kind, cycle, channels, points = _PRED_HEAD.unpack_from(p)
        _need(p, _PRED_HEAD.size + 2 * channels * points, name)
        if side > 1 or kind > 1:
            raise BridgeError(f"PREDICTION side {side} / kind {kind} must be 0 or 1", reason="bad_payload")
        vals = np.frombuffer(p, dtype="<i2", offset=_PRED_HEAD.size)
        return Prediction(side, kind, cycle, vals.reshape(channels, points).astype(np.int16))
    raise BridgeError(f"unknown frame type {name}", reason="unknown_type")


# --------------------------------------------------------------------------- packers
def pack_angles(q, *, stream: int = 0, seq: int = 0, t_us: int = 0) -> bytes:
    """ANGLES frame: 10 float32 degrees in schema order."""
    q = np.asarray(q, dtype="<f4").reshape(-1)
    if q.shape != (N_IN,):
        raise BridgeError(f"ANGLES needs {N_IN} angles, got {q.shape[0]}", reason="bad_value")
    return pack_frame(ANGLES, q.tobytes(), stream=stream, seq=seq, t_us=t_us)


def pack_ic_event(side: int, ic_t_us: int, *, stream: int = 0, seq: int = 0, t_us: int = 0) -> bytes:
    """IC_EVENT frame: side (0 right, 1 left) and the contact's device time (us)."""
    if side not in (0, 1):
        raise BridgeError(f"side {side!r} must be 0 (right) or 1 (left)", reason="bad_value")
    return pack_frame(IC_EVENT, _IC.pack(side, _u(ic_t_us, 32, "ic_t_us")), stream=stream, seq=seq, t_us=t_us)


def pack_meta(
    rate_hz: float, body_mass_kg: float = 0.0, *, stream: int = 0, seq: int = 0, t_us: int = 0
) -> bytes:
    """META frame: sample rate (Hz) and body mass (kg; 0 = unknown)."""
    return pack_frame(
        META, _META.pack(float(rate_hz), float(body_mass_kg)), stream=stream, seq=seq, t_us=t_us
    )


def pack_prediction(
    side: int, kind: int, cycle: int, values, *, stream: int = 0, seq: int = 0, t_us: int = 0
) -> bytes:
    """PREDICTION frame: ``values`` (channels, points) int16 milli-units per kg."""
    v = np.asarray(values)
    if (
        v.ndim != 2
        or not np.issubdtype(v.dtype, np.integer)
        or v.size == 0
        or v.min() < -32768
        or v.max() > 32767
    ):
        raise BridgeError(
            "PREDICTION values must be a non-empty (channels, points) integer array within int16",
            reason="bad_value",
        )
    channels, points = v.shape
    if channels > 255 or points > 255 or 6 + 2 * v.size > MAX_PAYLOAD_BYTES:
        raise BridgeError(
            f"PREDICTION of {channels} x {points} values does not fit the "
            f"{MAX_PAYLOAD_BYTES}-byte payload; use fewer points",
            reason="oversize",
        )
    if side not in (0, 1) or kind not in (0, 1):
        raise BridgeError(f"side {side!r} and kind {kind!r} must be 0 or 1", reason="bad_value")
    head = _PRED_HEAD.pack(side, kind, _u(cycle, 16, "cycle"), channels, points)
    return pack_frame(PREDICTION, head + v.astype("<i2").tobytes(), stream=stream, seq=seq, t_us=t_us)


def pack_status(
    frames_ok: int,
    crc_errors: int,
    framing_errors: int,
    seq_gaps: int,
    *,
    stream: int = 0,
    seq: int = 0,
    t_us: int = 0,
) -> bytes:
    """STATUS frame: the bridge's link counters (each saturates at 2**32 - 1)."""
    vals = [min(int(x), 0xFFFFFFFF) for x in (frames_ok, crc_errors, framing_errors, seq_gaps)]
    return pack_frame(STATUS, _STATUS.pack(*vals), stream=stream, seq=seq, t_us=t_us)
