"""Live adapter: Xsens MVN network streamer "Joint Angles" datagrams (UDP) -> protocol v1.

MVN Analyze/Animate streams over UDP (default port 9763) datagrams of the public "MVN
real-time network streaming protocol" (Xsens; see docs/sources.md for the citation). Each
datagram is big-endian: a 24-byte header (6-byte ASCII id ``MXTP`` + two-digit message
type, uint32 sample counter, uint8 datagram counter whose top bit marks the last datagram
of a sample, uint8 number of items, uint32 time code in ms, uint8 character id, uint8
body segments, uint8 props, uint8 finger segments, 2 reserved bytes, uint16 payload size),
then the payload. Type ``20`` (joint angles) carries per joint 20 bytes: int32 parent and
child point ids (256 x segment id + local point id) and float32 rotations about the
segment x, y, z axes (degrees).

Joints are named from their segment pair (``jRightHip`` = pelvis 1 -> right upper leg 16,
...) and each gives three channels ``<joint>_x/_y/_z``; the mapping layer then picks the
ten inputs (preset ``mvn`` by default, see :data:`g2h_edge.io.mapping.MVN_TO_RAJAGOPAL`).
Time: the header's time code (ms) / 1000. Other message types, other characters and
malformed datagrams are counted and skipped.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.mapping import MappingConfig, resolve_channels
from g2h_edge.sources.publisher import FramePublisher, PublisherConfig

__all__ = [
    "MvnConfig",
    "MvnHeader",
    "parse_header",
    "parse_joint_angles",
    "joint_labels",
    "encode_joint_angles",
    "MvnAdapter",
    "SOURCE_NAME",
    "JOINT_NAMES",
    "HEADER",
]

SOURCE_NAME = "mvn"
HEADER = struct.Struct(">6sIBBIBBBB2sH")  # 24 bytes
JOINT = struct.Struct(">ii3f")  # 20 bytes
#: (parent segment id, child segment id) -> MVN joint name (segment ids of the spec, 2.5.9)
JOINT_NAMES = {
    (1, 2): "jL5S1",
    (1, 16): "jRightHip",
    (16, 17): "jRightKnee",
    (17, 18): "jRightAnkle",
    (18, 19): "jRightBallFoot",
    (1, 20): "jLeftHip",
    (20, 21): "jLeftKnee",
    (21, 22): "jLeftAnkle",
    (22, 23): "jLeftBallFoot",
}


@dataclass(frozen=True)
class MvnHeader:
    message_type: int
    sample_counter: int
    datagram_index: int
    last_datagram: bool
    n_items: int
    time_code_ms: int
    character_id: int
    payload_size: int


def parse_header(datagram: bytes) -> MvnHeader:
    """The 24-byte header; DataError for anything that is not an MVN datagram."""
    if len(datagram) < HEADER.size:
        raise DataError(
            f"datagram of {len(datagram)} bytes is shorter than the 24-byte MVN header", reason="bad_packet"
        )
    ident, sample, dgram, items, tc, char, _seg, _props, _fingers, _res, size = HEADER.unpack_from(
        datagram, 0
    )
    if ident[:4] != b"MXTP" or not ident[4:].isdigit():
        raise DataError(f"datagram id {ident!r} is not MXTPnn", reason="bad_packet")
    if size != len(datagram) - HEADER.size:
        raise DataError(
            f"header says {size} payload bytes, the datagram has {len(datagram) - HEADER.size}",
            reason="bad_packet",
        )
    return MvnHeader(int(ident[4:]), sample, dgram & 0x7F, bool(dgram & 0x80), items, tc, char, size)


def parse_joint_angles(payload: bytes, n_items: int) -> list[tuple[int, int, float, float, float]]:
    """Type-20 payload -> [(parent point id, child point id, x, y, z deg), ...]."""
    if len(payload) != n_items * JOINT.size:
        raise DataError(
            f"joint-angle payload of {len(payload)} bytes for {n_items} joints "
            f"(expected {n_items * JOINT.size})",
            reason="bad_packet",
        )
    return [JOINT.unpack_from(payload, i * JOINT.size) for i in range(n_items)]


def joint_name(parent_point: int, child_point: int) -> str:
    pair = (parent_point // 256, child_point // 256)
    return JOINT_NAMES.get(pair, f"j{pair[0]}_{pair[1]}")


def joint_labels(joints) -> list[str]:
    """Channel labels ``<joint>_x/_y/_z`` of a joint list from :func:`parse_joint_angles`."""
    return [f"{joint_name(p, c)}_{ax}" for p, c, *_ in joints for ax in "xyz"]


def encode_joint_angles(
    sample: int, time_code_ms: int, joints, *, character_id: int = 0, datagram: int = 0x80
) -> bytes:
    """One type-20 datagram (what MVN sends; for tests and simulators)."""
    payload = b"".join(JOINT.pack(p, c, x, y, z) for p, c, x, y, z in joints)
    head = HEADER.pack(
        b"MXTP20", sample, datagram, len(joints), time_code_ms, character_id, 23, 0, 0, b"\0\0", len(payload)
    )
    return head + payload


@dataclass(frozen=True)
class MvnConfig:
    """Where to listen for MVN datagrams and how to map them (see module doc)."""

    host: str = "0.0.0.0"
    port: int = 9763
    character_id: int = 0
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(preset="mvn"))
    publish: PublisherConfig = field(default_factory=lambda: PublisherConfig(stream="mvn"))
    #: stop after this many seconds (None: until stopped)
    duration_s: float | None = None

    def __post_init__(self):
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port!r} must be 0..65535", reason="bad_option")
        if not isinstance(self.character_id, int) or not 0 <= self.character_id <= 255:
            raise ConfigError(f"character_id {self.character_id!r} must be 0..255", reason="bad_option")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"duration_s {self.duration_s!r} must be > 0", reason="bad_option")


class MvnAdapter:
    """Receives MVN joint-angle datagrams on UDP and publishes protocol-v1 frames.

    ``bind()`` opens the UDP socket (``address`` gives the port, useful with port 0);
    ``open()`` connects the publisher; ``run()`` loops until stop()/duration_s.
    """

    def __init__(self, cfg: MvnConfig, *, context=None):
        self.cfg = cfg
        units = cfg.mapping.units or "deg"
        self.pub = FramePublisher(cfg.publish, SOURCE_NAME, units, context=context)
        self.plan_ = None
        self.labels_: list[str] | None = None
        self.parts_: dict[int, list] = {}  # sample counter -> joints so far (split samples)
        self.times_: list[float] = []  # first sample times, for the rate estimate
        self.held_: list[tuple[float, np.ndarray]] = []
        self.sock_ = None
        self.stop_ = False

    @property
    def stats(self):
        return self.pub.stats

    def bind(self) -> tuple[str, int]:
        self.sock_ = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock_.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock_.bind((self.cfg.host, self.cfg.port))
        self.sock_.settimeout(0.05)
        return self.sock_.getsockname()

    def open(self) -> MvnAdapter:
        self.pub.open()
        if self.cfg.mapping.rate_hz is not None:
            self.pub.set_rate(float(self.cfg.mapping.rate_hz))
        return self

    def handle(self, datagram: bytes) -> int:
        """Decode one datagram and publish the sample it completes; returns frames sent."""
        st = self.pub.stats
        st.packets += 1
        try:
            head = parse_header(datagram)
            if head.message_type != 20 or head.character_id != self.cfg.character_id:
                return 0
            joints = parse_joint_angles(datagram[HEADER.size :], head.n_items)
        except DataError:
            st.bad_packets += 1
            return 0
        parts = self.parts_.setdefault(head.sample_counter, [])
        parts.extend(joints)
        if not head.last_datagram:
            return 0
        joints = self.parts_.pop(head.sample_counter)
        for k in [k for k in self.parts_ if k < head.sample_counter]:
            del self.parts_[k]  # incomplete older samples: lost datagrams
        return self._sample(head.time_code_ms / 1000.0, joints)

    def _sample(self, t: float, joints) -> int:
        labels = joint_labels(joints)
        if labels != self.labels_:  # first sample, or MVN changed its joints
            self.plan_ = resolve_channels(labels, self.cfg.mapping, what="the MVN stream")
            self.labels_ = labels
        values = np.array([v for *_, x, y, z in joints for v in (x, y, z)], np.float64)
        q = self.plan_.apply(values[None, :], self.cfg.mapping.units == "rad")  # (1, 10)
        if self.pub.rate_hz is None:
            return self._hold(t, q)
        return self.pub.publish(np.array([t]), q)

    def _hold(self, t: float, q: np.ndarray) -> int:
        """Until the rate is known (--rate-hz, else the median step of the first samples)."""
        self.held_.append((t, q))
        rate = self.cfg.mapping.rate_hz
        if rate is None and len(self.held_) >= 5:
            dt = np.diff([h[0] for h in self.held_])
            dt = dt[dt > 0]
            if dt.size >= 3:
                rate = float(1.0 / np.median(dt))
        if rate is None:
            return 0
        self.pub.set_rate(rate)
        held, self.held_ = self.held_, []
        return self.pub.publish(np.array([h[0] for h in held]), np.concatenate([h[1] for h in held]))

    def stop(self) -> None:
        self.stop_ = True

    def run(self):
        """Receive and publish until stop(), duration_s or KeyboardInterrupt."""
        start = time.monotonic()
        try:
            while not self.stop_:
                if self.cfg.duration_s is not None and time.monotonic() - start >= self.cfg.duration_s:
                    break
                try:
                    data = self.sock_.recv(65536)
                except TimeoutError:
                    data = None
                if data:
                    self.handle(data)
                self.pub.tick()
        except KeyboardInterrupt:
            pass
        finally:
            self.pub.stats.wall_s = time.monotonic() - start
        return self.pub.stats

    def close(self) -> None:
        try:
            self.pub.close()
        finally:
            if self.sock_ is not None:
                self.sock_.close()
                self.sock_ = None
