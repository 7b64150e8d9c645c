"""Device frames <-> protocol-v1 messages (no I/O; the bridge moves the bytes).

:class:`DeviceTranslator` keeps per-device-stream state (seq and t_us unwrapping, the last
META, pending ANGLES and IC events) and turns a list of decoded frames into ZeroMQ multipart
messages built with :mod:`g2h_edge.wire`. ANGLES frames of one stream that arrive together
are batched into one ``frames`` message; IC_EVENT frames ride in the next ``frames``
message's ``ic`` list. :func:`prediction_frame` turns the runtime's ``cycle`` output into a
PREDICTION frame for the device.
"""

from __future__ import annotations

import math

import numpy as np

from g2h_edge import wire
from g2h_edge.errors import BridgeError
from g2h_edge.schema import IN_COLS, N_IN, TARGET_UNIT

from .deframer import signed_delta
from .link import (
    ANGLES,
    IC_EVENT,
    KIND_JOINT_MOMENT,
    KIND_MUSCLE_FORCE,
    META,
    Frame,
    pack_prediction,
    parse_payload,
)

__all__ = [
    "DeviceTranslator",
    "STREAM_COUNTERS",
    "TRANSLATE_COUNTERS",
    "prediction_frame",
    "resample_waveform",
    "device_stream_of",
]

#: per device stream counters (also summed over streams in the bridge's counters)
STREAM_COUNTERS = (
    "frames_ok",
    "angles",
    "ic_events",
    "metas",
    "seq_gaps",
    "frames_lost",
    "out_of_order",
    "no_meta",
    "non_finite",
    "bad_payload",
    "restarts",
    "messages_out",
)
#: translator-wide counters
TRANSLATE_COUNTERS = ("device_only_type",)

_KIND = {TARGET_UNIT["mf"]: KIND_MUSCLE_FORCE, TARGET_UNIT["jm"]: KIND_JOINT_MOMENT}
_SIDE = {0: "R", 1: "L"}


class _Stream:
    """State of one device stream (``mcu<N>``)."""

    def __init__(self, sid: str):
        self.sid = sid
        self.meta = None  # last valid (rate_hz, body_mass_kg or None)
        self.meta_sent = False
        self.counters = dict.fromkeys(STREAM_COUNTERS, 0)
        # protocol-v1 message counter: never reset, so that a lost ``end`` cannot make the
        # server drop a restarted stream's messages as duplicates
        self.msg_seq = 0
        self.reset()

    def reset(self) -> None:
        """Forget the time base (device restart / reconnect); META is kept."""
        self.seq_raw = None
        self.t_raw = 0
        self.t_us = 0  # unwrapped device clock (us) of the last frame
        self.last_t = -math.inf  # last frame time forwarded (s)
        self.pend_t: list[float] = []
        self.pend_q: list[bytes] = []
        self.pend_ic: list[tuple[float, str]] = []


class DeviceTranslator:
    """Frames in, protocol-v1 multipart messages out; counts bad frames, never raises."""

    def __init__(self, prefix: str = "mcu", *, max_batch: int = 200, restart_after_s: float = 1.0):
        self.prefix = prefix
        self.max_batch = int(max_batch)
        self.restart_after_us = int(restart_after_s * 1e6)
        self.streams: dict[int, _Stream] = {}
        self.device_only_type = 0

    # ------------------------------------------------------------------ public
    def stream_id(self, n: int) -> str:
        return f"{self.prefix}{n}"

    def handle(self, frames: list[Frame]) -> list[list[bytes]]:
        """Messages for a batch of frames that arrived together, in order."""
        out: list[list[bytes]] = []
        touched: dict[int, _Stream] = {}  # insertion-ordered: deterministic output
        for f in frames:
            st = self.streams.get(f.stream)
            if st is None:
                st = self.streams[f.stream] = _Stream(self.stream_id(f.stream))
            if not self._clock(st, f, out):
                continue
            touched[f.stream] = st
            ftype = f.type
            if ftype == ANGLES:
                self._angles(st, f, out)
            elif ftype == IC_EVENT:
                self._ic(st, f)
            elif ftype == META:
                self._meta(st, f, out)
            else:  # PREDICTION / STATUS travel bridge -> device only
                self.device_only_type += 1
        for st in touched.values():
            self._flush(st, out)
        return out

    def metas(self) -> list[list[bytes]]:
        """Meta messages of the live streams (periodic repeat for late joiners); a stream
        ended by :meth:`end_all` is announced again by its next frames."""
        return [self._meta_msg(st) for st in self.streams.values() if st.meta_sent]

    def end_all(self) -> list[list[bytes]]:
        """``end`` for every stream that sent data (device gone); time bases are reset."""
        out = []
        for st in self.streams.values():
            self._flush(st, out)
            if st.meta_sent:
                out.append(wire.encode_end(st.sid))
            st.meta_sent = False
            st.reset()
        return out

    def counters(self) -> dict[str, int]:
        """Counters summed over device streams plus translator-wide ones."""
        total = dict.fromkeys(STREAM_COUNTERS[1:], 0)  # frames_ok: the link's total
        for st in self.streams.values():
            for k in total:
                total[k] += st.counters[k]
        total["device_only_type"] = self.device_only_type
        return total

    # ------------------------------------------------------------------ internals
    def _clock(self, st: _Stream, f: Frame, out: list) -> bool:
        """Unwrap seq and t_us; False when the frame must be dropped."""
        c = st.counters
        c["frames_ok"] += 1
        if st.seq_raw is not None:
            dt = signed_delta(f.t_us, st.t_raw, 32)
            if dt < -self.restart_after_us:  # device clock jumped back: a restart
                c["restarts"] += 1
                self._flush(st, out)
                if st.meta_sent:
                    out.append(wire.encode_end(st.sid))
                    st.meta_sent = False
                st.reset()
        if st.seq_raw is None:
            st.seq_raw, st.t_raw, st.t_us = f.seq, f.t_us, f.t_us
            return True
        ds = (f.seq - st.seq_raw) & 0xFFFF
        if ds == 0 or ds >= 0x8000:  # duplicate or older: drop
            c["out_of_order"] += 1
            return False
        if ds > 1:
            c["seq_gaps"] += 1
            c["frames_lost"] += ds - 1
        st.seq_raw = f.seq
        dt = signed_delta(f.t_us, st.t_raw, 32)
        st.t_raw = f.t_us
        st.t_us += dt
        return True

    def _angles(self, st: _Stream, f: Frame, out: list) -> None:
        c = st.counters
        if len(f.payload) != 4 * N_IN:
            c["bad_payload"] += 1
            return
        if st.meta is None:
            c["no_meta"] += 1  # rate unknown: cannot start the stream
            return
        t = st.t_us * 1e-6
        if t <= st.last_t:
            c["out_of_order"] += 1
            return
        if not st.meta_sent:
            out.append(self._meta_msg(st))
        st.last_t = t
        st.pend_t.append(t)
        st.pend_q.append(f.payload)
        c["angles"] += 1
        if len(st.pend_t) >= self.max_batch:
            self._flush(st, out)

    def _ic(self, st: _Stream, f: Frame) -> None:
        try:
            ev = parse_payload(f)
        except BridgeError:  # bad size or side
            st.counters["bad_payload"] += 1
            return
        t_ic = (st.t_us + signed_delta(ev.t_us, st.t_raw, 32)) * 1e-6
        st.pend_ic.append((t_ic, _SIDE[ev.side]))
        st.counters["ic_events"] += 1

    def _meta(self, st: _Stream, f: Frame, out: list) -> None:
        try:
            m = parse_payload(f)
        except BridgeError:
            st.counters["bad_payload"] += 1
            return
        rate, mass = float(m.rate_hz), float(m.body_mass_kg)
        if mass == 0.0 or math.isnan(mass):
            mass = None
        ok_rate = math.isfinite(rate) and wire.MIN_RATE_HZ <= rate <= wire.MAX_RATE_HZ
        ok_mass = mass is None or wire.MIN_BODY_MASS_KG <= mass <= wire.MAX_BODY_MASS_KG
        if not (ok_rate and ok_mass):
            st.counters["bad_payload"] += 1
            return
        st.counters["metas"] += 1
        if (rate, mass) != st.meta or not st.meta_sent:
            self._flush(st, out)
            st.meta = (rate, mass)
            out.append(self._meta_msg(st))

    def _meta_msg(self, st: _Stream) -> list[bytes]:
        st.meta_sent = True
        rate, mass = st.meta
        return wire.encode_meta(st.sid, rate, IN_COLS, "deg", mass)

    def _flush(self, st: _Stream, out: list) -> None:
        n = len(st.pend_t)
        if n == 0:
            return  # ICs wait for the next frames
        q = np.frombuffer(b"".join(st.pend_q), dtype="<f4").reshape(n, N_IN)
        t = np.array(st.pend_t)
        ok = np.isfinite(q).all(axis=1)
        st.pend_t, st.pend_q = [], []
        if not ok.all():
            st.counters["non_finite"] += int(n - ok.sum())
            t, q = t[ok], q[ok]
            if t.shape[0] == 0:
                return
        ic = st.pend_ic[: wire.MAX_IC_PER_MESSAGE]
        st.pend_ic = st.pend_ic[wire.MAX_IC_PER_MESSAGE :]
        out.append(wire.encode_frames(st.sid, st.msg_seq, t, q, ic))
        st.msg_seq += 1
        st.counters["messages_out"] += 1


# --------------------------------------------------------------------------- predictions
def device_stream_of(stream_id: str, prefix: str) -> int | None:
    """Device stream number N of ``<prefix><N>`` (0..255, canonical decimal), else None."""
    if not isinstance(stream_id, str) or not stream_id.startswith(prefix):
        return None
    digits = stream_id[len(prefix) :]
    if not digits.isdigit() or not digits.isascii() or str(int(digits)) != digits:
        return None
    n = int(digits)
    return n if n <= 255 else None


def resample_waveform(y: np.ndarray, points: int) -> np.ndarray:
    """(T, K) waveform -> (K, points), linear in normalised time, first and last kept."""
    y = np.asarray(y, dtype=np.float64)  # (T, K)
    pos = np.linspace(0.0, y.shape[0] - 1, points)  # (points,)
    i0 = np.minimum(pos.astype(np.int64), y.shape[0] - 2)
    w = (pos - i0)[:, None]
    return ((1.0 - w) * y[i0] + w * y[i0 + 1]).T  # (K, points)


def prediction_frame(msg: dict, *, points: int, prefix: str, seq: int):
    """PREDICTION frame bytes for a decoded ``cycle`` output, or a reason string to count.

    Values are milli-units per kg (N/kg x 1000 or Nm/kg x 1000) rounded to int16 and clipped
    at +-32767 (``clipped`` in the result tells how many were). The header's t_us is the
    cycle's end on the device clock (``t_end`` x 1e6 modulo 2**32).
    Returns ``(device_stream, frame_bytes, clipped)`` or ``(None, reason, 0)``.
    """
    n = device_stream_of(msg.get("stream", ""), prefix)
    if n is None:
        return None, "not_our_stream", 0
    kind = _KIND.get(msg.get("unit"))
    side = {"R": 0, "L": 1}.get(msg.get("side"))
    y, cycle, t_end = msg.get("y"), msg.get("cycle"), msg.get("t_end")
    if (
        kind is None
        or side is None
        or not isinstance(y, np.ndarray)
        or y.ndim != 2
        or y.shape[0] < 2
        or not 1 <= y.shape[1] <= 255
        or type(cycle) is not int
        or cycle < 0
        or type(t_end) not in (int, float)
    ):
        return None, "bad_prediction", 0
    milli = np.rint(resample_waveform(y, points) * 1000.0)
    bad = ~np.isfinite(milli)
    milli[bad] = 0
    clipped = int(bad.sum() + (milli > 32767).sum() + (milli < -32767).sum())
    vals = np.clip(milli, -32767, 32767).astype(np.int16)
    t_us = int(round(t_end * 1e6)) % (1 << 32) if math.isfinite(t_end) else 0
    try:
        frame = pack_prediction(side, kind, cycle & 0xFFFF, vals, stream=n, seq=seq & 0xFFFF, t_us=t_us)
    except BridgeError:  # more channels x points than a payload holds
        return None, "prediction_too_large", 0
    return n, frame, clipped
