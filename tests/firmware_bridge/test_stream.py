"""Streaming decoder (counters, resync, never raises) and translation to protocol v1."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge import wire
from g2h_edge.firmware_bridge import link
from g2h_edge.firmware_bridge.deframer import LinkDecoder, signed_delta
from g2h_edge.firmware_bridge.reference import ReferenceDeframer, cobs_encode_bytewise
from g2h_edge.firmware_bridge.translate import DeviceTranslator

Q = np.arange(10, dtype=np.float32)


def ser(raw: bytes) -> bytes:
    return link.serial_frame(raw)


def angles(i, stream=0, t_us=None):
    return ser(
        link.pack_angles(
            Q + i, stream=stream, seq=i & 0xFFFF, t_us=(i * 5000 if t_us is None else t_us) & 0xFFFFFFFF
        )
    )


def synced() -> LinkDecoder:
    dec = LinkDecoder()
    dec.feed(b"\x00")
    return dec


def _hdr(raw, **kw):
    v = dict(
        zip(("version", "type", "stream", "flags", "seq", "length", "t_us"), link.HEADER.unpack_from(raw))
    )
    v.update(kw)
    body = link.HEADER.pack(*v.values()) + raw[12:-2]
    return body + link.crc16(body).to_bytes(2, "little")


GOOD = link.pack_angles(Q, seq=1, t_us=10)
CASES = [  # (name, bytes after sync, expected non-zero counters besides bytes_in/frames_ok)
    ("bad_crc", ser(GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF])), {"crc_errors": 1}),
    ("truncated", ser(GOOD[:10]), {"framing_errors": 1}),
    ("cobs_block_past_end", b"\x30\x01\x02\x00", {"framing_errors": 1}),
    ("garbage_midstream", b"\x13\x37\xde\xad\xbe\xef\x00", {"framing_errors": 1}),
    ("garbage_glued_to_frame", b"\xde\xad" + ser(GOOD), {"framing_errors": 1}),
    ("oversize", b"\x55" * 2000 + b"\x00", {"oversize": 1, "bytes_skipped": 2000}),
    ("wrong_version", ser(_hdr(GOOD, version=9)), {"wrong_version": 1}),
    ("unknown_type", ser(_hdr(GOOD, type=0x42)), {"unknown_type": 1}),
    ("length_field_oversize", ser(_hdr(GOOD, length=4000)), {"oversize": 1}),
    ("length_field_short", ser(_hdr(GOOD, length=12)), {"framing_errors": 1}),
    ("idle_delimiters", b"\x00\x00\x00", {}),
]


@pytest.mark.parametrize("name,data,want", CASES, ids=[c[0] for c in CASES])
def test_decoder_counts_and_recovers(name, data, want):
    dec = synced()
    frames = dec.feed(data + ser(GOOD))  # a good frame right after: must survive
    assert [f.seq for f in frames] == [1]
    got = {k: v for k, v in dec.counters().items() if v and k not in ("bytes_in", "frames_ok")}
    assert got == want
    assert dec.frames_ok == 1


def test_garbage_before_first_delimiter_is_skipped_not_counted():
    dec = LinkDecoder()
    frames = dec.feed(b"\x17\x99partial frame" + b"\x00" + ser(GOOD))
    assert len(frames) == 1
    assert dec.bytes_skipped == len(b"\x17\x99partial frame")
    assert dec.framing_errors == dec.crc_errors == 0


def _mixed_stream(rng, n=300) -> bytes:
    parts = [b"\x00"]
    for i in range(n):
        raw = link.pack_angles(rng.normal(size=10), stream=i % 3, seq=i, t_us=i * 5000)
        r = rng.random()
        if r < 0.1:
            raw = bytearray(raw)
            raw[rng.integers(len(raw))] ^= 1 << int(rng.integers(8))
            raw = bytes(raw)
        elif r < 0.15:
            parts.append(rng.integers(1, 256, int(rng.integers(1, 50)), dtype=np.uint8).tobytes())
        parts.append(ser(raw))
    return b"".join(parts)


def test_chunking_does_not_change_results_and_matches_reference():
    rng = np.random.default_rng(7)
    data = _mixed_stream(rng)
    whole = synced()
    ref_frames = ReferenceDeframer().feed(data)
    want = [f for f in whole.feed(data)]
    assert [f.payload for f in want] == [r[12:-2] for r in ref_frames]
    for _ in range(5):
        dec = synced()
        got, pos = [], 0
        while pos < len(data):
            k = int(rng.integers(1, 200))
            got += dec.feed(data[pos : pos + k])
            pos += k
        assert got == want
        assert dec.counters() == whole.counters()


def test_random_bytes_never_raise():
    rng = np.random.default_rng(3)
    dec, tr = LinkDecoder(), DeviceTranslator()
    junk = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    # random bytes, mutated valid frames of every type, then random bytes with many zeros
    valid = b"".join(
        ser(
            link.pack_frame(
                t,
                rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
                stream=int(rng.integers(4)),
                seq=i,
                t_us=i * 997,
            )
        )
        for i, (t, n) in enumerate([(1, 40), (2, 5), (3, 8), (0x10, 66), (0x11, 16)] * 200)
    )
    mutated = bytearray(valid)
    for k in rng.integers(0, len(mutated), 500):
        mutated[k] = int(rng.integers(256))
    zeros = (rng.integers(0, 256, 50_000) * (rng.random(50_000) > 0.2)).astype(np.uint8)
    for blob in (junk, bytes(mutated), zeros.tobytes()):
        pos = 0
        while pos < len(blob):
            k = int(rng.integers(1, 5000))
            tr.handle(dec.feed(blob[pos : pos + k]))
            tr.handle(dec.feed_datagram(blob[pos : pos + k]))
            pos += k
    c = dec.counters()
    assert c["bytes_in"] == 2 * (len(junk) + len(mutated) + len(zeros))
    assert c["frames_ok"] > 0 and c["crc_errors"] > 0


@pytest.mark.parametrize(
    "new,old,bits,want",
    [
        (0, 0xFFFF, 16, 1),
        (5, 65530, 16, 11),
        (65530, 5, 16, -11),
        (3, 0xFFFFFFFE, 32, 5),
        (0xFFFFFFFE, 3, 32, -5),
        (100, 50, 32, 50),
    ],
)
def test_signed_delta(new, old, bits, want):
    assert signed_delta(new, old, bits) == want


# ------------------------------------------------------------------------------ translator
def decode_all(msgs):
    return [wire.decode_input(m) for m in msgs]


def feed(tr, dec, data):
    return decode_all(tr.handle(dec.feed(data)))


def meta(stream=0, seq=0, t_us=0, rate=200.0, mass=70.0):
    return ser(link.pack_meta(rate, mass, stream=stream, seq=seq, t_us=t_us))


def test_meta_then_batched_frames_with_ic():
    tr, dec = DeviceTranslator("mcu"), synced()
    ic = ser(link.pack_ic_event(1, 12_000, stream=4, seq=3, t_us=15_000))
    data = meta(4) + angles(1, 4) + angles(2, 4) + ic + angles(4, 4) + angles(5, 4)
    msgs = feed(tr, dec, data)
    assert [type(m).__name__ for m in msgs] == ["Meta", "Frames"]
    m, f = msgs
    assert (m.stream, m.rate_hz, m.body_mass_kg, m.channels) == ("mcu4", 200.0, 70.0, wire.IN_COLS)
    np.testing.assert_allclose(f.t, [0.005, 0.010, 0.020, 0.025])
    np.testing.assert_array_equal(f.q, np.stack([Q + i for i in (1, 2, 4, 5)]))
    assert f.ic == [(0.012, "L")]
    c = tr.counters()
    assert (c["seq_gaps"], c["frames_lost"], c["angles"], c["ic_events"]) == (0, 0, 4, 1)


def test_seq_gaps_and_wraparound_of_seq_and_t_us():
    tr, dec = DeviceTranslator(), synced()
    t0 = 0xFFFFFFFF - 7_000  # device clock wraps after two frames
    data = meta(0, seq=65533, t_us=t0)
    for k, seq in enumerate([65534, 65535, 0, 3]):  # 0 follows 65535 (no gap); 1, 2 lost
        data += ser(link.pack_angles(Q, seq=seq, t_us=(t0 + 5000 * (k + 1)) & 0xFFFFFFFF))
    msgs = feed(tr, dec, data)
    f = msgs[-1]
    np.testing.assert_allclose(np.diff(f.t), [0.005] * 3)
    assert f.t[-1] > 2**32 * 1e-6  # unwrapped past the u32 range
    c = tr.counters()
    assert (c["seq_gaps"], c["frames_lost"], c["angles"]) == (1, 2, 4)


def test_duplicate_and_reordered_frames_are_dropped():
    tr, dec = DeviceTranslator(), synced()
    msgs = feed(tr, dec, meta() + angles(1) + angles(2) + angles(2) + angles(1) + angles(3))
    np.testing.assert_allclose(msgs[-1].t, [0.005, 0.010, 0.015])
    assert tr.counters()["out_of_order"] == 2


def test_device_restart_ends_the_stream_and_starts_over():
    tr, dec = DeviceTranslator(restart_after_s=1.0), synced()
    feed(tr, dec, meta(t_us=50_000_000) + angles(1, t_us=50_005_000))
    msgs = feed(tr, dec, meta(seq=0, t_us=100) + angles(1, t_us=5100))
    assert [type(m).__name__ for m in msgs] == ["End", "Meta", "Frames"]
    assert msgs[-1].seq == 1 and msgs[-1].t[0] == pytest.approx(0.0051)  # seq never resets
    assert tr.counters()["restarts"] == 1


@pytest.mark.parametrize(
    "data,counter",
    [
        (angles(1), "no_meta"),
        (meta(rate=5.0) + angles(1), "bad_payload"),
        (meta(mass=-3.0) + angles(1), "bad_payload"),
        (meta() + ser(link.pack_angles(np.full(10, np.nan), seq=1, t_us=5000)), "non_finite"),
        (meta() + ser(link.pack_frame(link.IC_EVENT, bytes([7, 0, 0, 0, 0]), seq=1)), "bad_payload"),
        (meta() + ser(link.pack_status(1, 2, 3, 4, seq=1)), "device_only_type"),
    ],
)
def test_translator_counts_bad_inputs(data, counter):
    tr, dec = DeviceTranslator(), synced()
    msgs = feed(tr, dec, data)
    assert not any(isinstance(m, wire.Frames) for m in msgs)
    assert tr.counters()[counter] == 1


def test_unknown_mass_and_periodic_meta_and_end_all():
    tr, dec = DeviceTranslator(), synced()
    msgs = feed(tr, dec, meta(mass=float("nan")) + angles(1))
    assert msgs[0].body_mass_kg is None
    assert [m.stream for m in decode_all(tr.metas())] == ["mcu0"]
    ends = decode_all(tr.end_all())
    assert [type(m).__name__ for m in ends] == ["End"]
    # after end_all the cached META is re-sent before the next frames
    msgs = feed(tr, dec, angles(1, t_us=10))
    assert [type(m).__name__ for m in msgs] == ["Meta", "Frames"]


def test_large_bursts_are_split_into_messages_with_consecutive_seq():
    tr, dec = DeviceTranslator(max_batch=50), synced()
    msgs = feed(tr, dec, meta() + b"".join(angles(i) for i in range(1, 121)))
    frames = [m for m in msgs if isinstance(m, wire.Frames)]
    assert [m.seq for m in frames] == [0, 1, 2]
    assert [len(m.t) for m in frames] == [50, 50, 20]


def test_reference_encoder_frames_decode_identically():
    raw = link.pack_angles(Q, seq=9, t_us=45000)
    dec = synced()
    assert dec.feed(cobs_encode_bytewise(raw) + b"\x00")[0].payload == Q.tobytes()


# ------------------------------------------------------------------------------ predictions
def _cycle(**kw):
    msg = {
        "stream": "mcu3",
        "side": "R",
        "cycle": 5,
        "t_end": 1.5,
        "unit": "N/kg",
        "y": np.tile(np.linspace(0, 1, 180)[:, None], (1, 14)).astype(np.float32),
    }
    msg.update(kw)
    return msg


def test_prediction_frame_resamples_and_maps_fields():
    from g2h_edge.firmware_bridge.translate import prediction_frame, resample_waveform

    y = np.random.default_rng(0).normal(size=(180, 3)).astype(np.float32)
    r = resample_waveform(y, 7)
    want = np.stack([np.interp(np.linspace(0, 179, 7), np.arange(180), y[:, k]) for k in range(3)])
    np.testing.assert_allclose(r, want, rtol=1e-12)
    n, raw, clipped = prediction_frame(
        _cycle(side="L", unit="Nm/kg", y=y, cycle=65537), points=7, prefix="mcu", seq=70000
    )
    f = link.parse_frame(raw)
    p = link.parse_payload(f)
    assert (n, f.stream, f.seq, f.t_us, clipped) == (3, 3, 70000 & 0xFFFF, 1_500_000, 0)
    assert (p.side, p.kind, p.cycle, p.values.shape) == (1, 1, 1, (3, 7))
    np.testing.assert_array_equal(p.values, np.rint(want * 1000))


@pytest.mark.parametrize(
    "kw,reason",
    [
        (dict(stream="mcu03"), "not_our_stream"),
        (dict(stream="mcu256"), "not_our_stream"),
        (dict(stream="other3"), "not_our_stream"),
        (dict(unit="N"), "bad_prediction"),
        (dict(side="X"), "bad_prediction"),
        (dict(cycle="7"), "bad_prediction"),
        (dict(t_end=None), "bad_prediction"),
        (dict(y=np.zeros((1, 3))), "bad_prediction"),
        (dict(y=np.zeros((180, 300))), "bad_prediction"),
        (dict(y=np.zeros((180, 60))), "prediction_too_large"),
    ],
)
def test_prediction_frame_refuses(kw, reason):
    from g2h_edge.firmware_bridge.translate import prediction_frame

    assert prediction_frame(_cycle(**kw), points=20, prefix="mcu", seq=0) == (None, reason, 0)


def test_prediction_values_are_clipped_and_nan_zeroed():
    from g2h_edge.firmware_bridge.translate import prediction_frame

    y = np.zeros((180, 14), np.float32)
    y[:, 0], y[:, 1], y[:, 2] = 50.0, -50.0, np.nan
    _, raw, clipped = prediction_frame(_cycle(y=y), points=4, prefix="mcu", seq=0)
    v = link.parse_payload(link.parse_frame(raw)).values
    assert clipped == 12
    assert list(v[:3, 0]) == [32767, -32767, 0]
