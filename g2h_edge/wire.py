"""Wire protocol v1: encode, decode and validate every message (the only place that does).

Transport: ZeroMQ multipart ``[topic, body]``; ``topic`` is the stream id in UTF-8 and
``body`` a msgpack map. docs/protocol.md is the user-facing specification of every field,
limit and ``WireError.reason`` code used here.

Inputs (publisher -> server): :class:`Meta`, :class:`Frames`, :class:`End`,
:class:`SourceStatus`. Outputs (server -> subscribers): ``cycle``, ``reject`` and ``status``
maps, built by :func:`encode_cycle`, :func:`encode_reject`, :func:`encode_status` and read
back by :func:`decode_output`.

Decoding is cheap on purpose (one ``msgpack.unpackb`` + ``np.frombuffer`` per message, no
per-frame Python loops except a type check of the ``t`` list) because a server ingests tens of
thousands of messages per second.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from functools import cached_property

import msgpack
import numpy as np

from g2h_edge.errors import WireError
from g2h_edge.schema import IN_COLS, N_IN, SIDES

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_OUTPUT_BYTES",
    "MAX_FRAMES_PER_MESSAGE",
    "MAX_IC_PER_MESSAGE",
    "MAX_INPUT_PART_BYTES",
    "MAX_SOURCES_PER_STREAM",
    "MAX_COUNTER",
    "STREAM_REASONS",
    "CYCLE_REASONS",
    "REJECT_REASONS",
    "MAX_COUNTERS",
    "MIN_RATE_HZ",
    "MAX_RATE_HZ",
    "MIN_BODY_MASS_KG",
    "MAX_BODY_MASS_KG",
    "STREAM_ID_PATTERN",
    "STATUS_TOPIC",
    "NO_STREAM_TOPIC",
    "REASONS",
    "UNITS",
    "Meta",
    "Frames",
    "End",
    "SourceStatus",
    "encode",
    "encode_meta",
    "encode_frames",
    "encode_end",
    "encode_source_status",
    "decode_input",
    "frames_in_schema_order",
    "encode_cycle",
    "encode_reject",
    "encode_status",
    "decode_output",
    "check_stream_id",
]

PROTOCOL_VERSION: int = 1
#: largest accepted body (bytes); a 1000-frame message is about 50 kB
MAX_MESSAGE_BYTES: int = 256 * 1024
#: ZMQ_MAXMSGSIZE of the server's input socket (per message part): ZeroMQ closes the
#: connection of a sender whose part is larger, without reading it (memory stays bounded);
#: a body between MAX_MESSAGE_BYTES and this is read and rejected as ``oversize``
MAX_INPUT_PART_BYTES: int = 2 * MAX_MESSAGE_BYTES
#: most distinct ``source`` names per stream (source status inputs); more: too_many_sources
MAX_SOURCES_PER_STREAM: int = 8
#: counters in status messages saturate here (msgpack's largest integer, 2**64 - 1)
MAX_COUNTER: int = 2**64 - 1
#: largest output message (status with many streams can be big; outputs are trusted)
MAX_OUTPUT_BYTES: int = 64 * 1024 * 1024
#: most frames in one ``frames`` message
MAX_FRAMES_PER_MESSAGE: int = 1000
#: most external events in one ``frames`` message
MAX_IC_PER_MESSAGE: int = 64
#: most counters in one source ``status`` message
MAX_COUNTERS: int = 64
MIN_RATE_HZ: float = 10.0
MAX_RATE_HZ: float = 2000.0
MIN_BODY_MASS_KG: float = 1.0
MAX_BODY_MASS_KG: float = 500.0
#: stream ids: 1-64 ASCII characters, starting with a letter or digit
STREAM_ID_PATTERN: str = r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}"
_STREAM_RE = re.compile(STREAM_ID_PATTERN)
#: topic of the server's status messages ('$' never starts a stream id)
STATUS_TOPIC: bytes = b"$status"
#: topic of rejects for inputs whose stream id could not be read
NO_STREAM_TOPIC: bytes = b"$unknown"
UNITS: tuple[str, ...] = ("deg", "rad")

#: every WireError.reason this module raises (documented in docs/protocol.md)
REASONS: tuple[str, ...] = (
    "bad_multipart",
    "oversize",
    "undecodable",
    "not_a_map",
    "unknown_version",
    "unknown_type",
    "missing_field",
    "unknown_field",
    "bad_type",
    "bad_stream_id",
    "topic_mismatch",
    "bad_rate",
    "bad_channels",
    "bad_units",
    "bad_body_mass",
    "bad_seq",
    "no_frames",
    "too_many_frames",
    "bad_q_length",
    "non_finite",
    "time_not_increasing",
    "bad_ic",
    "bad_source",
    "bad_counters",
    "bad_output",
)
#: every reason the server's stream state adds (g2h_edge.runtime; docs/protocol.md)
STREAM_REASONS: tuple[str, ...] = (
    "no_meta",
    "duplicate_seq",
    "time_not_increasing",
    "meta_changed",
    "stream_expired",
    "stream_evicted",
    "too_many_streams",
    "too_many_sources",
    "radians_as_degrees",
    "knee_sign_gait2354",
    "internal_error",
    "engine_error",
)
#: every reason a refused cycle carries (g2h_edge.gait, external ICs; docs/protocol.md)
CYCLE_REASONS: tuple[str, ...] = (
    "cycle_too_short",
    "cycle_too_long",
    "gap",
    "nan",
    "implausible_angles",
    "buffer_overrun",
    "before_first_frame",
    "missed_ic",
    "step_asymmetry",
    "ic_not_increasing",
    "ic_after_data",
    "ic_backlog",
)
#: every ``reason`` a ``reject`` output may carry: the one list (docs/protocol.md's tables)
REJECT_REASONS: tuple[str, ...] = tuple(dict.fromkeys(REASONS + STREAM_REASONS + CYCLE_REASONS))

_INPUT_FIELDS = {
    "meta": ({"v", "type", "stream", "rate_hz", "channels", "units"}, {"body_mass_kg"}),
    "frames": ({"v", "type", "stream", "seq", "t", "q"}, {"ic"}),
    "end": ({"v", "type", "stream"}, set()),
    "status": ({"v", "type", "stream", "source", "counters"}, set()),
}
_U64_MAX = 2**64 - 1
_NUM_TYPES = {int, float}


@dataclass(frozen=True)
class Meta:
    """Stream description: rate, channel order and units of its frames, body mass."""

    stream: str
    rate_hz: float
    channels: tuple[str, ...] = IN_COLS
    units: str = "deg"
    body_mass_kg: float | None = None

    @cached_property
    def column_index(self) -> list[int]:
        """Index such that ``q_in[:, column_index]`` is in schema (IN_COLS) order."""
        return [self.channels.index(c) for c in IN_COLS]


@dataclass(frozen=True)
class Frames:
    """n >= 1 frames: times (s, strictly increasing) and angles in the meta's channel order."""

    stream: str
    seq: int
    t: np.ndarray  # (n,) float64 s
    q: np.ndarray  # (n, 10) float32, meta's channel order and units
    ic: list = field(default_factory=list)  # [(t_s, "R"|"L"), ...] external events


@dataclass(frozen=True)
class End:
    """End of a stream: the server flushes it and forgets it."""

    stream: str


@dataclass(frozen=True)
class SourceStatus:
    """Counters of a source (e.g. the firmware bridge) republished in the server's status."""

    stream: str
    source: str
    counters: dict


# --------------------------------------------------------------------------- helpers
def _err(reason: str, msg: str) -> WireError:
    return WireError(msg, reason=reason)


def check_stream_id(stream) -> str:
    """Return ``stream`` if it is a valid stream id, else raise WireError(bad_stream_id)."""
    if not isinstance(stream, str) or not _STREAM_RE.fullmatch(stream):
        raise _err(
            "bad_stream_id",
            f"stream id {stream!r} is invalid: use 1-64 characters "
            f"matching {STREAM_ID_PATTERN} (letters, digits, _ . : / -)",
        )
    return stream


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(body: dict, key: str, lo: float, hi: float, reason: str) -> float:
    x = body[key]
    if not _is_num(x):
        raise _err("bad_type", f"field {key!r} must be a number, got {type(x).__name__}")
    x = float(x)
    if not (math.isfinite(x) and lo <= x <= hi):
        raise _err(reason, f"field {key!r} = {x!r} is outside [{lo:g}, {hi:g}]")
    return x


def _check_channels(channels) -> tuple[str, ...]:
    if not isinstance(channels, (list, tuple)) or not all(isinstance(c, str) for c in channels):
        raise _err("bad_type", "field 'channels' must be a list of 10 channel names")
    chans = tuple(channels)
    if len(chans) != N_IN or set(chans) != set(IN_COLS):
        raise _err(
            "bad_channels", f"channels {list(chans)} must be the {N_IN} names {list(IN_COLS)} (any order)"
        )
    return chans


def _check_times(t: np.ndarray) -> None:
    # a non-finite element makes the sum non-finite (cheaper than isfinite().all());
    # confirm element-wise since a huge finite sum can overflow too
    if not math.isfinite(float(t.sum())) and not np.isfinite(t).all():
        raise _err("non_finite", "field 't' contains NaN or infinity")
    if t.shape[0] > 1 and not (t[1:] > t[:-1]).all():
        raise _err("time_not_increasing", "times in 't' must be strictly increasing")


def _check_q(q: np.ndarray) -> None:
    # NaN/inf make the sum non-finite; a huge but finite float32 sum can overflow too, so
    # confirm element-wise on that (rare) path only
    if not math.isfinite(np.add.reduce(q, axis=None)) and not np.isfinite(q).all():  # == q.sum()
        raise _err("non_finite", "field 'q' contains NaN or infinity")


def _check_ic(ic) -> list:
    if not isinstance(ic, (list, tuple)):
        raise _err("bad_type", "field 'ic' must be a list of [t, 'R'|'L'] pairs")
    if len(ic) > MAX_IC_PER_MESSAGE:
        raise _err("bad_ic", f"{len(ic)} events in 'ic' exceed {MAX_IC_PER_MESSAGE}")
    out = []
    for ev in ic:
        if (
            not isinstance(ev, (list, tuple))
            or len(ev) != 2
            or not _is_num(ev[0])
            or not math.isfinite(ev[0])
            or ev[1] not in SIDES
        ):
            raise _err("bad_ic", f"event {ev!r} in 'ic' must be [finite time s, 'R' or 'L']")
        out.append((float(ev[0]), str(ev[1])))
    return out


def _check_counters(counters) -> dict:
    if not isinstance(counters, dict) or len(counters) > MAX_COUNTERS:
        raise _err(
            "bad_counters", f"'counters' must be a map of at most {MAX_COUNTERS} name -> non-negative integer"
        )
    for k, v in counters.items():
        if (
            not isinstance(k, str)
            or not 0 < len(k) <= 64
            or not isinstance(v, int)
            or isinstance(v, bool)
            or not 0 <= v <= _U64_MAX
        ):
            raise _err(
                "bad_counters",
                f"counter {k!r}: {v!r} must be a name of 1-64 characters -> non-negative integer",
            )
    return dict(counters)


def _pack(topic: str, body: dict, limit: int = MAX_MESSAGE_BYTES) -> list[bytes]:
    data = msgpack.packb(body, use_bin_type=True)
    if len(data) > limit:
        raise _err(
            "oversize",
            f"message of {len(data)} bytes exceeds the limit of {limit} bytes; send fewer frames per message",
        )
    return [topic.encode("utf-8"), data]


# --------------------------------------------------------------------------- encoders
def encode_meta(
    stream: str, rate_hz: float, channels=IN_COLS, units: str = "deg", body_mass_kg: float | None = None
) -> list[bytes]:
    """``meta`` message; send before frames and again every few seconds (late joiners)."""
    body = {
        "v": PROTOCOL_VERSION,
        "type": "meta",
        "stream": stream,
        "rate_hz": float(rate_hz),
        "channels": list(channels),
        "units": units,
        "body_mass_kg": None if body_mass_kg is None else float(body_mass_kg),
    }
    _validate_meta(body)
    return _pack(stream, body)


def encode_frames(stream: str, seq: int, t, q, ic=None) -> list[bytes]:
    """``frames`` message: t (n,) s, q (n, 10) in the meta's channel order and units."""
    check_stream_id(stream)
    t = np.ascontiguousarray(t, dtype=np.float64).reshape(-1)
    q = np.ascontiguousarray(q, dtype="<f4")
    n = t.shape[0]
    if q.shape != (n, N_IN):
        raise _err("bad_q_length", f"q has shape {q.shape}, expected ({n}, {N_IN})")
    if not 1 <= n <= MAX_FRAMES_PER_MESSAGE:
        raise _err(
            "too_many_frames" if n else "no_frames",
            f"{n} frames per message; allowed 1..{MAX_FRAMES_PER_MESSAGE}",
        )
    if isinstance(seq, bool) or not isinstance(seq, (int, np.integer)) or not 0 <= seq <= _U64_MAX:
        raise _err("bad_seq", f"seq {seq!r} must be an integer in [0, 2**64-1]")
    _check_times(t)
    _check_q(q)
    body = {
        "v": PROTOCOL_VERSION,
        "type": "frames",
        "stream": stream,
        "seq": int(seq),
        "t": t.tolist(),
        "q": q.tobytes(),
    }
    if ic:
        body["ic"] = [[float(a), s] for a, s in _check_ic(ic)]
    return _pack(stream, body)


def encode_end(stream: str) -> list[bytes]:
    """``end`` message: flush and forget the stream."""
    check_stream_id(stream)
    return _pack(stream, {"v": PROTOCOL_VERSION, "type": "end", "stream": stream})


def encode_source_status(stream: str, source: str, counters: dict) -> list[bytes]:
    """Source ``status`` input (e.g. the firmware bridge's counters for its stream)."""
    check_stream_id(stream)
    _check_source(source)
    counters = {str(k): int(v) for k, v in dict(counters).items()}
    _check_counters(counters)
    return _pack(
        stream,
        {"v": PROTOCOL_VERSION, "type": "status", "stream": stream, "source": source, "counters": counters},
    )


def encode(msg) -> list[bytes]:
    """Encode any input dataclass (Meta, Frames, End, SourceStatus)."""
    if isinstance(msg, Meta):
        return encode_meta(msg.stream, msg.rate_hz, msg.channels, msg.units, msg.body_mass_kg)
    if isinstance(msg, Frames):
        return encode_frames(msg.stream, msg.seq, msg.t, msg.q, msg.ic)
    if isinstance(msg, End):
        return encode_end(msg.stream)
    if isinstance(msg, SourceStatus):
        return encode_source_status(msg.stream, msg.source, msg.counters)
    raise TypeError(f"cannot encode {type(msg).__name__}")


# --------------------------------------------------------------------------- decoding
def _unpack(parts, limit: int = MAX_MESSAGE_BYTES) -> tuple[str, dict]:
    """Common envelope checks; returns (topic, body map)."""
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        n = len(parts) if isinstance(parts, (list, tuple)) else "?"
        raise _err("bad_multipart", f"expected 2 message parts [topic, body], got {n}")
    topic_b, data = parts
    data = bytes(data) if not isinstance(data, bytes) else data
    if len(data) > limit or len(topic_b) > 256:
        raise _err(
            "oversize",
            f"message of {len(data)} bytes exceeds the limit of {limit} bytes (MAX_MESSAGE_BYTES for inputs)",
        )
    try:
        topic = bytes(topic_b).decode("utf-8")
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, ValueError, ...)
        raise _err("undecodable", f"body is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict):
        raise _err("not_a_map", f"body must be a msgpack map, got {type(body).__name__}")
    return topic, body


def _check_envelope(topic: str, body: dict, fields: dict) -> str:
    v = body.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise _err(
            "unknown_version",
            f"protocol version {v!r} is not supported; this server speaks v{PROTOCOL_VERSION}",
        )
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in fields:
        raise _err("unknown_type", f"message type {kind!r} is not one of {sorted(fields)}")
    required, optional = fields[kind]
    missing = required - body.keys()
    if missing:
        raise _err("missing_field", f"{kind} message lacks field(s) {sorted(missing)}")
    extra = body.keys() - required - optional
    if extra:
        raise _err("unknown_field", f"{kind} message has unknown field(s) {sorted(map(str, extra))}")
    check_stream_id(body["stream"])
    if topic != body["stream"]:
        raise _err("topic_mismatch", f"topic {topic!r} differs from stream {body['stream']!r}")
    return kind


def _validate_meta(body: dict) -> Meta:
    check_stream_id(body["stream"])
    rate = _number(body, "rate_hz", MIN_RATE_HZ, MAX_RATE_HZ, "bad_rate")
    chans = _check_channels(body["channels"])
    units = body["units"]
    if units not in UNITS:
        raise _err("bad_units", f"units {units!r} must be 'deg' or 'rad'")
    mass = body.get("body_mass_kg")
    if mass is not None:
        mass = _number(body, "body_mass_kg", MIN_BODY_MASS_KG, MAX_BODY_MASS_KG, "bad_body_mass")
    return Meta(body["stream"], rate, chans, units, mass)


def _decode_frames(body: dict) -> Frames:
    seq = body["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _U64_MAX:
        raise _err("bad_seq", f"seq {seq!r} must be an integer in [0, 2**64-1]")
    t_list, q_b = body["t"], body["q"]
    if not isinstance(t_list, list):
        raise _err("bad_type", "field 't' must be a list of numbers (seconds)")
    if not isinstance(q_b, bytes):
        raise _err("bad_type", "field 'q' must be msgpack bin (float32 little-endian n x 10)")
    n = len(t_list)
    if n == 0:
        raise _err("no_frames", "a frames message needs at least one frame")
    if n > MAX_FRAMES_PER_MESSAGE:
        raise _err("too_many_frames", f"{n} frames exceed MAX_FRAMES_PER_MESSAGE={MAX_FRAMES_PER_MESSAGE}")
    if len(q_b) != n * N_IN * 4:
        raise _err(
            "bad_q_length",
            f"q has {len(q_b)} bytes; {n} frames x {N_IN} channels x 4 bytes = {n * N_IN * 4} expected",
        )
    # cheap checks on the list itself (C-level map/sum): types, finiteness, monotonicity
    if not set(map(type, t_list)) <= _NUM_TYPES:  # no bools, strings, nested lists
        raise _err("bad_type", "field 't' must be a list of numbers (seconds)")
    try:
        finite = math.isfinite(sum(t_list))
        t = np.array(t_list, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        raise _err("bad_type", "field 't' must be a list of numbers (seconds)") from None
    if not finite and not np.isfinite(t).all():  # (a huge finite sum can overflow)
        raise _err("non_finite", "field 't' contains NaN or infinity")
    if n > 1 and not all(map(operator.lt, t_list, t_list[1:])):
        raise _err("time_not_increasing", "times in 't' must be strictly increasing")
    q = np.frombuffer(q_b, dtype="<f4").reshape(n, N_IN)
    _check_q(q)
    ic = _check_ic(body["ic"]) if "ic" in body else []
    return Frames(body["stream"], seq, t, q, ic)


def _check_source(source) -> None:
    if not isinstance(source, str) or not _STREAM_RE.fullmatch(source) or len(source) > 32:
        raise _err(
            "bad_source", f"source {source!r} must be a name of 1-32 characters (letters, digits, _ . : / -)"
        )


def decode_input(parts) -> Meta | Frames | End | SourceStatus:
    """Decode and validate one input message ``[topic, body]``; WireError on any violation
    (and only WireError, whatever the bytes).

    The returned Frames keep the meta's channel order and units; use
    :func:`frames_in_schema_order` with the stream's Meta to get IN_COLS order in degrees.
    """
    try:
        return _decode_input(parts)
    except WireError:
        raise
    except Exception as exc:  # a validation path we did not foresee: still a WireError
        raise _err("bad_type", f"message could not be validated ({type(exc).__name__}: {exc})") from None


def _decode_input(parts):
    topic, body = _unpack(parts)
    kind = _check_envelope(topic, body, _INPUT_FIELDS)
    if kind == "frames":
        return _decode_frames(body)
    if kind == "meta":
        return _validate_meta(body)
    if kind == "end":
        return End(body["stream"])
    _check_source(body["source"])
    return SourceStatus(body["stream"], body["source"], _check_counters(body["counters"]))


def frames_in_schema_order(q: np.ndarray, meta: Meta | None) -> np.ndarray:
    """Angles (n, 10) in IN_COLS order and degrees, from the meta's order and units.

    A meta may list the 10 channels in any order (they are reordered here) and in radians
    (converted here). ``meta=None`` means schema order in degrees (CLI defaults).
    """
    if meta is None or (meta.channels == IN_COLS and meta.units == "deg"):
        return q
    if meta.channels != IN_COLS:
        q = q[:, meta.column_index]
    if meta.units == "rad":
        q = np.rad2deg(q).astype(np.float32, copy=False)
    return q


# --------------------------------------------------------------------------- outputs
def encode_cycle(
    *,
    stream: str,
    side: str,
    cycle: int,
    t_start: float,
    t_end: float,
    model: str,
    sha256: str,
    backend: str,
    outputs,
    unit: str,
    y: np.ndarray,
    quality: dict,
    latency_ms: float,
    synthetic: bool,
    body_mass_kg: float | None = None,
    cpu_ms: float | None = None,
    y_sd: np.ndarray | None = None,
) -> list[bytes]:
    """``cycle`` output: per-kg prediction y (180, K); plus y * body mass when known, and
    an ensemble's per-frame spread ``y_sd`` (180, K) per kg when given."""
    y = np.ascontiguousarray(y, dtype="<f4")
    outputs = [str(c) for c in outputs]
    if y.ndim != 2 or y.shape[1] != len(outputs):
        raise _err("bad_output", f"y has shape {y.shape}; expected (T, {len(outputs)})")
    body = {
        "v": PROTOCOL_VERSION,
        "type": "cycle",
        "stream": stream,
        "side": side,
        "cycle": int(cycle),
        "t_start": float(t_start),
        "t_end": float(t_end),
        "model": model,
        "sha256": sha256,
        "backend": backend,
        "synthetic": bool(synthetic),
        "outputs": outputs,
        "unit": unit,
        "T": int(y.shape[0]),
        "y": y.tobytes(),
        "body_mass_kg": None,
        "unit_abs": None,
        "y_abs": None,
        "quality": quality,
        "latency_ms": float(latency_ms),
    }
    if body_mass_kg is not None:
        body["body_mass_kg"] = float(body_mass_kg)
        body["unit_abs"] = unit.replace("/kg", "")
        body["y_abs"] = (y * np.float32(body_mass_kg)).astype("<f4").tobytes()
    if cpu_ms is not None:
        body["cpu_ms"] = float(cpu_ms)
    if y_sd is not None:
        y_sd = np.ascontiguousarray(y_sd, dtype="<f4")
        if y_sd.shape != y.shape:
            raise _err("bad_output", f"y_sd has shape {y_sd.shape}; expected {y.shape}")
        body["y_sd"] = y_sd.tobytes()
    return _pack(stream, body, MAX_OUTPUT_BYTES)


def encode_reject(stream: str | None, reason: str, detail: str = "", **extra) -> list[bytes]:
    """``reject`` output: an input or a cycle that was refused, with its reason code."""
    body = {
        "v": PROTOCOL_VERSION,
        "type": "reject",
        "stream": stream or "",
        "reason": str(reason),
        "detail": str(detail)[:500],
    }
    for k, v in extra.items():
        body[k] = v.item() if isinstance(v, np.generic) else v
    topic = stream if stream else NO_STREAM_TOPIC.decode()
    return _pack(topic, body, MAX_OUTPUT_BYTES)


def encode_status(status: dict) -> list[bytes]:
    """``status`` output (once a second) on topic ``$status``; ``status`` holds the counters.
    Integers beyond msgpack's range saturate (at MAX_COUNTER, or -2**63): a counter can
    never stop the status."""
    body = {"v": PROTOCOL_VERSION, "type": "status"}
    body.update(status)
    try:
        return _pack(STATUS_TOPIC.decode(), body, MAX_OUTPUT_BYTES)
    except OverflowError:
        return _pack(STATUS_TOPIC.decode(), _saturate(body), MAX_OUTPUT_BYTES)


def _saturate(obj):
    """``obj`` with every int clamped to msgpack's range (nested maps and lists)."""
    if isinstance(obj, dict):
        return {k: _saturate(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_saturate(v) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool):
        return min(max(obj, -(2**63)), MAX_COUNTER)
    return obj


def decode_output(parts) -> dict:
    """Decode a server output message; ``y``/``y_abs`` become (T, K) float32 arrays."""
    topic, body = _unpack(parts, MAX_OUTPUT_BYTES)
    if body.get("v") != PROTOCOL_VERSION:
        raise _err("unknown_version", f"protocol version {body.get('v')!r} is not supported")
    if body.get("type") not in ("cycle", "reject", "status"):
        raise _err("unknown_type", f"output type {body.get('type')!r} is not cycle, reject or status")
    body["topic"] = topic
    if body["type"] == "cycle":
        k = len(body["outputs"])
        for key in ("y", "y_abs", "y_sd"):
            if body.get(key) is not None:
                raw = body[key]
                if not isinstance(raw, bytes) or len(raw) != body["T"] * k * 4:
                    raise _err("bad_output", f"{key} has the wrong byte length")
                body[key] = np.frombuffer(raw, dtype="<f4").reshape(body["T"], k)
    return body
