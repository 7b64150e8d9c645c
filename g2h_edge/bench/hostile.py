"""A bounded, seeded generator of hostile protocol-v1 input messages for the fuzz bench.

Every message comes with the reject reason the server must report for it (or None for a
hostile-but-valid message, e.g. a meta that changes a live stream's rate). Each message has
exactly one defect, built by hand from the protocol spec (docs/protocol.md), not by calling
the decoder, so a server that mis-classifies or silently drops a message shows up as a
count mismatch. Fuzz stream ids start with ``fz``/``nm``; healthy streams must not.
"""

from __future__ import annotations

import math

import msgpack
import numpy as np

from g2h_edge.io.synth import MU_X
from g2h_edge.schema import IN_COLS, N_IN
from g2h_edge.wire import MAX_FRAMES_PER_MESSAGE, MAX_MESSAGE_BYTES, REASONS

__all__ = ["HostileGenerator", "MESSAGE_REASONS"]

#: reasons a single input message can be rejected with (one reject per message): every
#: decoding reason of wire.py (but ``bad_output``, which is for outputs) and the per-message
#: stream reasons the server adds
MESSAGE_REASONS = frozenset(REASONS) - {"bad_output"} | {
    "no_meta",
    "duplicate_seq",
    "too_many_streams",
    "meta_changed",
    "too_many_sources",
}


def _pack(topic, body) -> list:
    t = topic.encode("utf-8") if isinstance(topic, str) else topic
    return [t, msgpack.packb(body, use_bin_type=True)]


class HostileGenerator:
    """``next()`` -> ``(parts, expected_reason | None)``; ``setup()`` / ``teardown()`` give
    the valid metas and ends of the fuzz stream pool (``pool`` live fuzz streams)."""

    def __init__(self, seed: int = 0, pool: int = 16, rate_hz: float = 100.0):
        self.rng = np.random.default_rng(seed)
        self.rate_hz = rate_hz
        self.ids = [f"fz{i}" for i in range(pool)]
        self.seq = {s: 0 for s in self.ids}  # next seq to send
        self.t = {s: 0.0 for s in self.ids}  # last frame time sent
        self.rate = {s: rate_hz for s in self.ids}
        # a meta came after the stream's last accepted frames: a lower seq then starts a
        # new session (a restarted publisher, docs/protocol.md), not a duplicate_seq
        self.meta_since = {s: True for s in self.ids}
        self.fresh = 0  # frames-before-meta stream ids
        kinds = [(k[4:], getattr(self, k)) for k in dir(self) if k.startswith("gen_")]
        weights = np.array([getattr(fn, "weight", 1.0) for _, fn in kinds])
        self.kinds = kinds
        self.p = weights / weights.sum()

    # ------------------------------------------------------------------ helpers
    def _sid(self) -> str:
        return self.ids[int(self.rng.integers(len(self.ids)))]

    def _q(self, n: int) -> np.ndarray:
        return (MU_X + self.rng.normal(0, 5, (n, N_IN))).astype("<f4")

    def _frames_body(self, sid: str, n: int | None = None, *, advance: bool = True) -> dict:
        """A valid frames body continuing pool stream ``sid`` (state advanced)."""
        n = int(self.rng.integers(1, 21)) if n is None else n
        dt = 1.0 / self.rate[sid]
        t = self.t[sid] + dt * np.arange(1, n + 1)
        body = {
            "v": 1,
            "type": "frames",
            "stream": sid,
            "seq": self.seq[sid],
            "t": [float(x) for x in t],
            "q": self._q(n).tobytes(),
        }
        if advance:
            self.seq[sid] += 1
            self.t[sid] = float(t[-1])
            self.meta_since[sid] = False
        return body

    def _meta_body(self, sid: str, **over) -> dict:
        body = {
            "v": 1,
            "type": "meta",
            "stream": sid,
            "rate_hz": self.rate[sid],
            "channels": list(IN_COLS),
            "units": "deg",
            "body_mass_kg": 70.0,
        }
        body.update(over)
        return body

    # ------------------------------------------------------------------ public
    def setup(self) -> list:
        return [_pack(s, self._meta_body(s)) for s in self.ids]

    def teardown(self) -> list:
        return [_pack(s, {"v": 1, "type": "end", "stream": s}) for s in self.ids]

    def next(self):
        i = self.rng.choice(len(self.kinds), p=self.p)
        return self.kinds[i][1]()

    def messages(self, n: int) -> list:
        """``n`` hostile messages (with their expected reasons)."""
        return [self.next() for _ in range(n)]

    # ------------------------------------------------------------------ categories
    def gen_valid_frames(self):
        return _pack(sid := self._sid(), self._frames_body(sid)), None

    gen_valid_frames.weight = 6.0

    def gen_random_bytes(self):
        junk = self.rng.bytes(int(self.rng.integers(0, 200)))
        topic = [b"fzr", self.rng.bytes(8), "fz\u00e9".encode()][int(self.rng.integers(3))]
        return [topic, b"\xc1" + junk], "undecodable"  # 0xc1 is never msgpack

    gen_random_bytes.weight = 3.0

    def gen_wrong_parts(self):
        n = int(self.rng.choice([1, 3, 4, 7]))
        return [b"fz0"] + [self.rng.bytes(5) for _ in range(n - 1)], "bad_multipart"

    gen_wrong_parts.weight = 2.0

    def gen_not_a_map(self):
        obj = [[1, 2], 7, "x", None, True, 1.5, b"\x00"][int(self.rng.integers(7))]
        return [b"fz1", msgpack.packb(obj, use_bin_type=True)], "not_a_map"

    def gen_unknown_version(self):
        v = [0, 2, "1", None, 1.0, True, -1][int(self.rng.integers(7))]
        sid = self._sid()
        return _pack(sid, dict(self._frames_body(sid, advance=False), v=v)), "unknown_version"

    def gen_unknown_type(self):
        kind = ["frame", "hello", None, 5, ""][int(self.rng.integers(5))]
        return _pack("fz2", {"v": 1, "type": kind, "stream": "fz2"}), "unknown_type"

    def gen_missing_field(self):
        sid = self._sid()
        body = self._frames_body(sid, advance=False)
        del body[["stream", "seq", "t", "q"][int(self.rng.integers(4))]]
        return _pack(sid, body), "missing_field"

    def gen_unknown_field(self):
        sid = self._sid()
        return _pack(sid, dict(self._meta_body(sid), colour="red")), "unknown_field"

    def gen_wrong_types(self):
        sid = self._sid()
        body = self._frames_body(sid, advance=False)
        case = int(self.rng.integers(6))
        if case == 0:
            return _pack(sid, dict(body, seq=str(body["seq"]))), "bad_seq"
        if case == 1:
            return _pack(sid, dict(body, seq=-1)), "bad_seq"
        if case == 2:
            return _pack(sid, dict(body, t="0.1")), "bad_type"
        if case == 3:
            return _pack(sid, dict(body, q=list(body["t"]))), "bad_type"
        if case == 4:
            t = list(body["t"])
            t[0] = True
            return _pack(sid, dict(body, t=t)), "bad_type"
        return _pack(sid, self._meta_body(sid, rate_hz="100")), "bad_type"

    gen_wrong_types.weight = 2.0

    def gen_non_finite(self):
        sid = self._sid()
        body = self._frames_body(sid, n=int(self.rng.integers(2, 10)), advance=False)
        bad = [math.nan, math.inf, -math.inf][int(self.rng.integers(3))]
        if self.rng.random() < 0.5:
            q = np.frombuffer(body["q"], "<f4").copy()
            q[int(self.rng.integers(q.size))] = bad
            body["q"] = q.tobytes()
        else:
            t = list(body["t"])
            t[int(self.rng.integers(len(t)))] = bad
            body["t"] = t
        return _pack(sid, body), "non_finite"

    gen_non_finite.weight = 2.0

    def gen_times_in_message(self):
        sid = self._sid()
        body = self._frames_body(sid, n=int(self.rng.integers(3, 12)), advance=False)
        t = list(body["t"])
        i = int(self.rng.integers(1, len(t)))
        t[i] = t[i - 1] if self.rng.random() < 0.5 else t[i - 1] - 0.005  # dup / backwards
        return _pack(sid, dict(body, t=t)), "time_not_increasing"

    gen_times_in_message.weight = 2.0

    def gen_stream_time_backwards(self):
        """A valid message whose frames start before the stream's last frame."""
        sid = self._sid()
        if self.t[sid] == 0.0:  # no frame accepted yet: nothing to go back to
            return self.gen_valid_frames()
        body = self._frames_body(sid, n=5, advance=False)
        body["t"] = [x - 1.0 for x in body["t"]]  # (a rejected message changes no state)
        return _pack(sid, body), "time_not_increasing"

    def gen_duplicate_seq(self):
        sid = self._sid()
        if self.seq[sid] == 0 or self.meta_since[sid]:  # (after a meta: a new session)
            return self.gen_valid_frames()
        body = self._frames_body(sid, advance=False)
        body["seq"] = int(self.rng.integers(0, self.seq[sid]))
        body["t"] = [x + 0.001 for x in body["t"]]  # (its times are never looked at)
        return _pack(sid, body), "duplicate_seq"

    def gen_absurd_rate(self):
        sid = self._sid()
        rate = [0.0, -100.0, 1e9, math.nan, math.inf, 5.0, 2000.5][int(self.rng.integers(7))]
        return _pack(sid, self._meta_body(sid, rate_hz=rate)), "bad_rate"

    def gen_bad_meta_fields(self):
        sid = self._sid()
        case = int(self.rng.integers(4))
        if case == 0:
            return _pack(sid, self._meta_body(sid, units="grad")), "bad_units"
        if case == 1:
            return _pack(sid, self._meta_body(sid, channels=list(IN_COLS[:9]))), "bad_channels"
        if case == 2:
            ch = list(IN_COLS)
            ch[1] = ch[0]
            return _pack(sid, self._meta_body(sid, channels=ch)), "bad_channels"
        mass = [0.0, 1e6, -70.0, math.nan][int(self.rng.integers(4))]
        return _pack(sid, self._meta_body(sid, body_mass_kg=mass)), "bad_body_mass"

    def gen_bad_stream_id(self):
        case = int(self.rng.integers(4))
        if case == 0:
            sid = "fz" + "x" * int(self.rng.integers(63, 250))  # 65..251 characters
        elif case == 1:
            sid = "fz\u00e9\u6d41" + "\U0001f600"  # unicode
        elif case == 2:
            sid = "_fz"  # must start alphanumeric
        else:
            sid = "fz bad"
        return _pack(sid, {"v": 1, "type": "end", "stream": sid}), "bad_stream_id"

    def gen_huge_topic(self):
        sid = "fz" + "y" * 300  # topic over 256 bytes
        return _pack(sid, {"v": 1, "type": "end", "stream": sid}), "oversize"

    gen_huge_topic.weight = 0.3

    def gen_topic_mismatch(self):
        sid = self._sid()
        return _pack(sid + "x", self._frames_body(sid, advance=False)), "topic_mismatch"

    def gen_meta_change(self):
        """A live stream changes its rate (valid: the server follows it) or its channel
        order (refused mid-stream as meta_changed: only a new session may change it)."""
        sid = self._sid()
        self.meta_since[sid] = True
        if self.rng.random() < 0.5:
            self.rate[sid] = float(self.rng.choice([50.0, 100.0, 200.0]))
            return _pack(sid, self._meta_body(sid)), None
        ch = list(IN_COLS)
        self.rng.shuffle(ch)
        return _pack(sid, self._meta_body(sid, channels=ch)), "meta_changed"

    def gen_frames_before_meta(self):
        self.fresh += 1
        sid = f"nm{self.fresh}"
        body = {
            "v": 1,
            "type": "frames",
            "stream": sid,
            "seq": 0,
            "t": [0.01, 0.02],
            "q": self._q(2).tobytes(),
        }
        return _pack(sid, body), "no_meta"

    gen_frames_before_meta.weight = 2.0

    def gen_frame_counts(self):
        sid = self._sid()
        body = self._frames_body(sid, n=3, advance=False)
        case = int(self.rng.integers(3))
        if case == 0:
            return _pack(sid, dict(body, t=[], q=b"")), "no_frames"
        if case == 1:
            n = MAX_FRAMES_PER_MESSAGE + 1
            return _pack(
                sid, dict(body, t=[0.01 * i for i in range(n)], q=self._q(n).tobytes())
            ), "too_many_frames"
        return _pack(sid, dict(body, q=body["q"][:-4])), "bad_q_length"

    def gen_bad_ic(self):
        sid = self._sid()
        ev = [[math.nan, "R"], [1.0, "X"], [1.0], "R"][int(self.rng.integers(4))]
        return _pack(sid, dict(self._frames_body(sid, advance=False), ic=[ev])), "bad_ic"

    def gen_bad_source_status(self):
        sid = self._sid()
        body = {"v": 1, "type": "status", "stream": sid, "source": "bridge", "counters": {"frames_ok": 1}}
        if self.rng.random() < 0.5:
            return _pack(sid, dict(body, source="")), "bad_source"
        return _pack(sid, dict(body, counters={"frames_ok": -1})), "bad_counters"

    def gen_oversize(self):
        return [b"fz3", b"\x80" * (MAX_MESSAGE_BYTES + 1)], "oversize"

    gen_oversize.weight = 0.05
