"""Wire protocol v1: round trips and the bad-input table (every WireError reason code)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from g2h_edge import wire
from g2h_edge.errors import WireError
from g2h_edge.schema import IN_COLS


def _body(**kw):
    return kw


def _frames_body(n=3, **over):
    body = {
        "v": 1,
        "type": "frames",
        "stream": "s1",
        "seq": 0,
        "t": [0.01 * i for i in range(n)],
        "q": np.zeros((n, 10), "<f4").tobytes(),
    }
    body.update(over)
    return body


def _meta_body(**over):
    body = {
        "v": 1,
        "type": "meta",
        "stream": "s1",
        "rate_hz": 100.0,
        "channels": list(IN_COLS),
        "units": "deg",
        "body_mass_kg": None,
    }
    body.update(over)
    return body


def _parts(body, topic=None):
    topic = body.get("stream", "s1") if topic is None else topic
    return [topic.encode(), msgpack.packb(body, use_bin_type=True)]


def test_round_trip_all_inputs():
    t = np.array([1.0, 1.005, 1.01])
    q = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
    f = wire.decode_input(wire.encode_frames("subj-01", 7, t, q, ic=[(1.004, "L")]))
    assert isinstance(f, wire.Frames) and f.seq == 7 and f.ic == [(1.004, "L")]
    np.testing.assert_array_equal(f.t, t)
    np.testing.assert_array_equal(f.q, q)
    m = wire.decode_input(wire.encode_meta("subj-01", 200, body_mass_kg=71.5))
    assert m == wire.Meta("subj-01", 200.0, IN_COLS, "deg", 71.5)
    assert wire.decode_input(wire.encode_end("subj-01")) == wire.End("subj-01")
    s = wire.decode_input(wire.encode_source_status("subj-01", "bridge", {"crc_errors": 2}))
    assert s == wire.SourceStatus("subj-01", "bridge", {"crc_errors": 2})
    for msg in (f, m, wire.End("x"), s):
        again = wire.decode_input(wire.encode(msg))
        assert type(again) is type(msg) and again.stream == msg.stream


def test_permuted_channels_and_radians_are_normalised():
    chans = list(reversed(IN_COLS))
    meta = wire.decode_input(wire.encode_meta("s1", 100, chans, "rad"))
    q_schema = np.arange(20, dtype=np.float32).reshape(2, 10) / 100  # radians, IN_COLS order
    q_sent = q_schema[:, ::-1]  # meta's order
    out = wire.frames_in_schema_order(q_sent, meta)
    np.testing.assert_allclose(out, np.rad2deg(q_schema), rtol=1e-6)
    assert out.dtype == np.float32
    same = wire.frames_in_schema_order(q_schema, wire.Meta("s1", 100.0))
    assert same is q_schema  # no copy in schema order


BAD = [
    # (parts, reason, match)
    ([b"s1"], "bad_multipart", "2 message parts"),
    ([b"s1", b"x" * (wire.MAX_MESSAGE_BYTES + 1)], "oversize", "exceeds"),
    ([b"s1", b"\xc1\xc1"], "undecodable", "not valid msgpack"),
    ([b"s1", msgpack.packb([1, 2])], "not_a_map", "must be a msgpack map"),
    (_parts(_frames_body(v=2)), "unknown_version", "version 2"),
    (_parts(_frames_body(v="1")), "unknown_version", "not supported"),
    (_parts(_frames_body(type="framez")), "unknown_type", "framez"),
    (_parts({k: v for k, v in _frames_body().items() if k != "seq"}), "missing_field", "seq"),
    (_parts(_frames_body(extra=1)), "unknown_field", "extra"),
    (_parts(_frames_body(t="0.0")), "bad_type", "'t' must be a list"),
    (_parts(_frames_body(n=2, t=[0.0, True])), "bad_type", "'t' must be a list"),
    (_parts(_frames_body(q=[0.0] * 30)), "bad_type", "'q' must be msgpack bin"),
    (_parts(_meta_body(rate_hz="100")), "bad_type", "'rate_hz' must be a number"),
    (_parts(_frames_body(stream="$bad"), topic="$bad"), "bad_stream_id", "invalid"),
    (_parts(_frames_body(stream="x" * 65)), "bad_stream_id", "invalid"),
    (_parts(_frames_body(), topic="s2"), "topic_mismatch", "differs"),
    (_parts(_meta_body(rate_hz=5.0)), "bad_rate", "outside"),
    (_parts(_meta_body(rate_hz=float("nan"))), "bad_rate", "outside"),
    (_parts(_meta_body(channels=list(IN_COLS[:9]))), "bad_channels", "must be the 10"),
    (_parts(_meta_body(channels=list(IN_COLS[:9]) + ["hip_flexion_r"])), "bad_channels", "any order"),
    (_parts(_meta_body(units="grad")), "bad_units", "'deg' or 'rad'"),
    (_parts(_meta_body(body_mass_kg=0.2)), "bad_body_mass", "outside"),
    (_parts(_frames_body(seq=-1)), "bad_seq", "seq -1"),
    (_parts(_frames_body(seq=1.5)), "bad_seq", "seq 1.5"),
    (_parts(_frames_body(n=0)), "no_frames", "at least one frame"),
    (_parts(_frames_body(n=wire.MAX_FRAMES_PER_MESSAGE + 1)), "too_many_frames", "exceed"),
    (_parts(_frames_body(q=b"\0" * 12)), "bad_q_length", "12 bytes"),
    (_parts(_frames_body(n=2, t=[0.0, float("nan")])), "non_finite", "'t'"),
    (_parts(_frames_body(n=1, q=np.full((1, 10), np.inf, "<f4").tobytes())), "non_finite", "'q'"),
    (_parts(_frames_body(n=3, t=[0.0, 0.02, 0.01])), "time_not_increasing", "strictly"),
    (_parts(_frames_body(n=2, t=[0.0, 0.0])), "time_not_increasing", "strictly"),
    (_parts(_frames_body(ic=[[0.0, "X"]])), "bad_ic", "'R' or 'L'"),
    (_parts(_frames_body(ic=[[0.0, "R"]] * 65)), "bad_ic", "exceed"),
    (
        _parts({"v": 1, "type": "status", "stream": "s1", "source": "", "counters": {}}),
        "bad_source",
        "source",
    ),
    (
        _parts({"v": 1, "type": "status", "stream": "s1", "source": "bridge", "counters": {"crc": -1}}),
        "bad_counters",
        "non-negative",
    ),
]


@pytest.mark.parametrize("parts,reason,match", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_table(parts, reason, match):
    with pytest.raises(WireError, match=match) as info:
        wire.decode_input(parts)
    assert info.value.reason == reason


def test_every_input_reason_is_in_the_table():
    covered = {b[1] for b in BAD}
    assert set(wire.REASONS) - {"bad_output"} == covered


def test_encoders_refuse_what_decoders_refuse():
    with pytest.raises(WireError, match="strictly") as info:
        wire.encode_frames("s1", 0, [0.0, 0.0], np.zeros((2, 10)))
    assert info.value.reason == "time_not_increasing"
    with pytest.raises(WireError, match="shape"):
        wire.encode_frames("s1", 0, [0.0], np.zeros((1, 9)))
    with pytest.raises(WireError, match="invalid"):
        wire.encode_end("bad id with spaces")
    with pytest.raises(WireError, match="outside"):
        wire.encode_meta("s1", 100, units="deg", body_mass_kg=9999)
    with pytest.raises(WireError, match="allowed 1..") as info:
        wire.encode_frames("s1", 0, np.arange(1001) * 0.01, np.zeros((1001, 10)))
    assert info.value.reason == "too_many_frames"


def test_outputs_round_trip():
    y = np.arange(180 * 3, dtype=np.float32).reshape(180, 3) / 100
    parts = wire.encode_cycle(
        stream="s1",
        side="L",
        cycle=4,
        t_start=1.0,
        t_end=2.1,
        model="m",
        sha256="ab" * 32,
        backend="onnxruntime",
        outputs=["a", "b", "c"],
        unit="Nm/kg",
        y=y,
        quality={"gap_filled_frames": 0},
        latency_ms=0.7,
        synthetic=True,
        body_mass_kg=80.0,
    )
    out = wire.decode_output(parts)
    assert out["type"] == "cycle" and out["side"] == "L" and out["unit_abs"] == "Nm"
    np.testing.assert_array_equal(out["y"], y)
    np.testing.assert_allclose(out["y_abs"], y * 80.0, rtol=1e-6)
    rej = wire.decode_output(wire.encode_reject(None, "undecodable", "bad bytes"))
    assert rej["topic"] == "$unknown" and rej["reason"] == "undecodable"
    st = wire.decode_output(wire.encode_status({"streams": {}}))
    assert st["topic"] == "$status" and st["streams"] == {}
    with pytest.raises(WireError, match="wrong byte length") as info:
        body = msgpack.unpackb(parts[1])
        body["y"] = body["y"][:-4]
        wire.decode_output([parts[0], msgpack.packb(body)])
    assert info.value.reason == "bad_output"


def test_fuzzed_messages_raise_only_wire_errors():
    rng = np.random.default_rng(1)
    t = np.arange(5) / 100.0
    seeds = [
        wire.encode_meta("s1", 100.0, body_mass_kg=60.0),
        wire.encode_frames("s1", 3, t, np.ones((5, 10)), ic=[(0.01, "R")]),
        wire.encode_end("s1"),
        wire.encode_source_status("s1", "bridge", {"a": 1}),
    ]
    junk = [
        None,
        True,
        -1,
        2**64 - 1,
        -(2**63),
        1.5,
        float("inf"),
        "x",
        b"\x00" * 7,
        [],
        {},
        [1, "R"],
        [[0.0, "L"]],
        {"a": -1},
        "é" * 70,
        [0.0, 0.01],
    ]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3000):
        topic, body = seeds[rng.integers(len(seeds))]
        if rng.random() < 0.2:  # random byte flips
            data = bytearray(body)
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(len(data))] = rng.integers(256)
            parts = [topic, bytes(data)]
        else:  # field deletion / replacement
            msg = msgpack.unpackb(body, raw=False)
            key = list(msg)[rng.integers(len(msg))]
            if rng.random() < 0.3:
                del msg[key]
            else:
                msg[key] = junk[rng.integers(len(junk))]
            parts = [topic, msgpack.packb(msg, use_bin_type=True)]
        try:
            wire.decode_input(parts)
            outcomes["ok"] += 1
        except WireError as exc:
            assert exc.reason in wire.REASONS
            outcomes["error"] += 1
    assert outcomes["error"] > 2000
