"""Link format v1, strict API: CRC, COBS, frame pack/parse of every type, bad inputs."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from g2h_edge.errors import BridgeError
from g2h_edge.firmware_bridge import link
from g2h_edge.firmware_bridge.reference import cobs_decode_bytewise, cobs_encode_bytewise, crc16_bitwise


# ------------------------------------------------------------------------------ CRC
def test_crc_check_value_ccitt_false():
    assert link.crc16(b"123456789") == 0x29B1
    assert crc16_bitwise(b"123456789") == 0x29B1


def test_crc_matches_bitwise_reference_on_random_data():
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 13, 54, 1036):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert link.crc16(data) == crc16_bitwise(data)
    # incremental use: crc of a + b == crc(b, crc(a))
    assert link.crc16(b"6789", link.crc16(b"12345")) == 0x29B1


# ------------------------------------------------------------------------------ COBS
RUN254 = bytes(range(1, 255))  # 254 non-zero bytes
COBS_VECTORS = [  # classic examples (Cheshire & Baker / Wikipedia)
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (b"\x00" + RUN254, b"\x01\xff" + RUN254 + b"\x01"),
    (RUN254 + b"\xff", b"\xff" + RUN254 + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
    (RUN254, b"\xff" + RUN254 + b"\x01"),  # original algorithm: trailing 0x01 code
]


@pytest.mark.parametrize("raw,enc", COBS_VECTORS, ids=range(len(COBS_VECTORS)))
def test_cobs_vectors(raw, enc):
    assert link.cobs_encode(raw) == enc
    assert cobs_encode_bytewise(raw) == enc
    assert link.cobs_decode(enc) == raw
    assert cobs_decode_bytewise(enc) == raw


def test_cobs_decoder_accepts_the_short_form_of_a_final_254_run():
    # encoders that drop the final 0x01 code after a 254-byte run (e.g. Wikipedia's) interoperate
    assert link.cobs_decode(b"\xff" + RUN254) == RUN254


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 507, 508, 509, 1038])
@pytest.mark.parametrize("fill", ["zeros", "nonzero", "random"])
def test_cobs_round_trip_lengths(n, fill):
    rng = np.random.default_rng(n)
    data = {
        "zeros": bytes(n),
        "nonzero": bytes([0x5A]) * n,
        "random": rng.integers(0, 3, n, dtype=np.uint8).tobytes(),
    }[fill]
    enc = link.cobs_encode(data)
    assert b"\x00" not in enc
    assert len(enc) <= link.cobs_max_encoded(n)
    assert enc == cobs_encode_bytewise(data)
    assert link.cobs_decode(enc) == data


@pytest.mark.parametrize(
    "enc,match",
    [
        (b"\x05\x11\x22", "code 5 past the end"),
        (b"\x02\x11\x00\x01", "0x00 byte inside"),
        (b"\x00", "0x00 byte inside"),
    ],
)
def test_cobs_decode_rejects_malformed(enc, match):
    with pytest.raises(BridgeError, match=match) as info:
        link.cobs_decode(enc)
    assert info.value.reason == "cobs"
    assert cobs_decode_bytewise(enc) is None


# ------------------------------------------------------------------------------ frames
def test_worked_example_built_by_hand():
    """The docs' example: stream 2, seq 7, t_us 1_000_000, IC_EVENT left at 995_000 us."""
    payload = bytes([1]) + (995_000).to_bytes(4, "little")
    head = (
        bytes([1, 0x02, 2, 0])
        + (7).to_bytes(2, "little")
        + (5).to_bytes(2, "little")
        + (1_000_000).to_bytes(4, "little")
    )
    want = head + payload + crc16_bitwise(head + payload).to_bytes(2, "little")
    got = link.pack_ic_event(1, 995_000, stream=2, seq=7, t_us=1_000_000)
    assert got == want
    assert link.serial_frame(got) == cobs_encode_bytewise(want) + b"\x00"


def _values(ch, pts, seed=0):
    return np.random.default_rng(seed).integers(-32768, 32768, (ch, pts)).astype(np.int16)


def test_round_trip_every_type():
    q = np.linspace(-40, 70, 10).astype(np.float32)
    ident = dict(stream=255, seq=0xFFFF, t_us=0xFFFFFFFF)
    cases = [
        (link.pack_angles(q, **ident), link.Angles(tuple(float(x) for x in q))),
        (link.pack_ic_event(0, 123, **ident), link.IcEvent(0, 123)),
        (link.pack_meta(200.0, 71.5, **ident), link.LinkMeta(200.0, 71.5)),
        (link.pack_status(1, 2, 3, 2**40, **ident), link.Status(1, 2, 3, 2**32 - 1)),
    ]
    for raw, want in cases:
        frame = link.parse_frame(raw)
        assert (frame.stream, frame.seq, frame.t_us, frame.flags) == (255, 0xFFFF, 0xFFFFFFFF, 0)
        assert link.parse_payload(frame) == want
        assert link.parse_frame(link.cobs_decode(link.serial_frame(raw)[:-1])) == frame
    vals = _values(14, 36)
    raw = link.pack_prediction(1, 0, 65535, vals, **ident)
    assert len(raw) == 12 + 6 + 2 * 14 * 36 + 2
    pred = link.parse_payload(link.parse_frame(raw))
    assert (pred.side, pred.kind, pred.cycle) == (1, 0, 65535)
    np.testing.assert_array_equal(pred.values, vals)


def _with_header(raw: bytes, **fields) -> bytes:
    """Rewrite header fields of a frame and fix its CRC (to test checks behind the CRC)."""
    v = dict(
        zip(("version", "type", "stream", "flags", "seq", "length", "t_us"), link.HEADER.unpack_from(raw))
    )
    v.update(fields)
    body = link.HEADER.pack(*v.values()) + raw[12:-2]
    return body + struct.pack("<H", link.crc16(body))


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<H", link.crc16(body))


GOOD = link.pack_angles(np.zeros(10), stream=1, seq=5, t_us=1000)
BAD_FRAMES = [
    ("bad_crc", GOOD[:-1] + bytes([GOOD[-1] ^ 0x01]), "crc", "CRC mismatch"),
    ("bit_flip", GOOD[:20] + bytes([GOOD[20] ^ 0x10]) + GOOD[21:], "crc", "CRC mismatch"),
    ("truncated", GOOD[:13], "truncated", "shorter than header"),
    ("truncated_payload", _recrc(GOOD[:40]), "truncated", "header says 40 payload bytes"),
    ("longer_than_header", _recrc(GOOD[:-2] + b"\x01"), "bad_length", "frame carries 41"),
    ("oversize", bytes(1100), "oversize", "exceeds 1038"),
    ("oversize_length", _with_header(GOOD, length=2000), "oversize", "length 2000 exceeds"),
    ("wrong_version", _with_header(GOOD, version=2), "wrong_version", "link version 2"),
    ("unknown_type", _with_header(GOOD, type=0x7F), "unknown_type", "unknown frame type 0x7F"),
]


@pytest.mark.parametrize("name,raw,reason,match", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_parse_frame_rejects(name, raw, reason, match):
    with pytest.raises(BridgeError, match=match) as info:
        link.parse_frame(raw)
    assert info.value.reason == reason


BAD_PAYLOADS = [
    ("angles_short", link.ANGLES, bytes(39), "ANGLES payload has 39 bytes"),
    ("ic_side", link.IC_EVENT, bytes([2, 0, 0, 0, 0]), "side 2"),
    ("meta_long", link.META, bytes(9), "META payload has 9 bytes"),
    ("status_short", link.STATUS, bytes(15), "STATUS payload has 15 bytes"),
    ("pred_short", link.PREDICTION, bytes(5), "fewer than 6"),
    ("pred_count", link.PREDICTION, bytes([0, 0, 0, 0, 3, 2]) + bytes(10), "expected 18"),
    ("pred_kind", link.PREDICTION, bytes([0, 2, 0, 0, 1, 1, 0, 0]), "kind 2"),
]


@pytest.mark.parametrize("name,ftype,payload,match", BAD_PAYLOADS, ids=[b[0] for b in BAD_PAYLOADS])
def test_parse_payload_rejects(name, ftype, payload, match):
    frame = link.parse_frame(link.pack_frame(ftype, payload))
    with pytest.raises(BridgeError, match=match) as info:
        link.parse_payload(frame)
    assert info.value.reason == "bad_payload"


BAD_PACKS = [
    (lambda: link.pack_angles(np.zeros(9)), "bad_value", "needs 10 angles"),
    (lambda: link.pack_angles(np.zeros(10), seq=70000), "bad_value", "seq=70000"),
    (lambda: link.pack_angles(np.zeros(10), stream=256), "bad_value", "stream=256"),
    (lambda: link.pack_angles(np.zeros(10), t_us=-1), "bad_value", "t_us=-1"),
    (lambda: link.pack_ic_event(2, 0), "bad_value", "side 2"),
    (lambda: link.pack_prediction(0, 0, 0, np.zeros((14, 37), np.int16)), "oversize", "does not fit"),
    (lambda: link.pack_prediction(0, 0, 0, np.zeros((3, 20))), "bad_value", "integer array"),
    (lambda: link.pack_prediction(0, 3, 0, np.zeros((3, 20), np.int16)), "bad_value", "kind 3"),
    (lambda: link.pack_frame(0x01, bytes(1025)), "oversize", "1025 bytes exceeds 1024"),
]


@pytest.mark.parametrize("call,reason,match", BAD_PACKS, ids=range(len(BAD_PACKS)))
def test_pack_rejects(call, reason, match):
    with pytest.raises(BridgeError, match=match) as info:
        call()
    assert info.value.reason == reason
