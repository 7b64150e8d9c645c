"""Live adapter: Qualisys QTM real-time (RT) protocol, joint angles as analog channels.

QTM has no standard real-time "joint angle" component: its RT server streams 3D markers,
6DOF bodies, skeletons (segment poses), forces and **analog** channels. The route taken
here is the analog one: the lab brings its ten angles into QTM as channels of one analog
device (e.g. an angle calculator or goniometer/IMU system feeding QTM's analog input, or a
real-time processing plug-in that writes analog channels), labelled per channel. The
adapter connects with the ``qtm-rt`` client (``qtm`` extra, imported lazily), reads the
device list with ``GetParameters Analog`` (device id, name, ``Frequency``, channel
``Label``/``Unit``), maps the channels through the mapping layer (labels = schema names by
default, ``--map`` otherwise), streams ``StreamFrames AllFrames Analog`` and publishes one
frame per analog sample at ``t = sample_number / Frequency``. Skeleton segment poses
(joint angles computed here) are not implemented.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import ConfigError, DataError, require
from g2h_edge.io.mapping import MappingConfig, resolve_channels, unit_word
from g2h_edge.sources.publisher import FramePublisher, PublisherConfig

__all__ = ["QtmConfig", "AnalogDevice", "parse_analog_parameters", "pick_device", "QtmAdapter", "SOURCE_NAME"]

SOURCE_NAME = "qtm"


@dataclass(frozen=True)
class AnalogDevice:
    id: int
    name: str
    rate_hz: float | None
    labels: tuple[str, ...]
    units: tuple[str, ...]


def _text(el, tag: str) -> str:
    child = el.find(tag)
    return (child.text or "").strip() if child is not None else ""


def parse_analog_parameters(xml) -> list[AnalogDevice]:
    """Devices from QTM's ``GetParameters Analog`` XML (bytes or str)."""
    try:
        root = ET.fromstring(xml if isinstance(xml, (bytes, str)) else bytes(xml))
    except ET.ParseError as exc:
        raise DataError(
            f"QTM sent analog parameters that are not XML ({exc})", reason="bad_parameters"
        ) from None
    out = []
    for dev in root.iter("Device"):
        chans = dev.findall("Channel")
        labels = tuple(_text(c, "Label") for c in chans) or tuple(
            (lab.text or "").strip() for lab in dev.findall("Label")
        )
        units = tuple(_text(c, "Unit") for c in chans) or ("",) * len(labels)
        try:
            dev_id = int(_text(dev, "Device_ID"))
            rate = float(_text(dev, "Frequency")) if _text(dev, "Frequency") else None
        except ValueError:
            raise DataError(
                "QTM analog parameters: Device_ID/Frequency are not numbers", reason="bad_parameters"
            ) from None
        out.append(AnalogDevice(dev_id, _text(dev, "Device_Name"), rate, labels, units))
    return out


def pick_device(devices: list[AnalogDevice], want: str | None) -> AnalogDevice:
    """The device named (or numbered) ``want``; without it, the only one."""
    if not devices:
        raise DataError(
            "QTM reports no analog device: add the angle channels to an analog "
            "device in QTM's project settings",
            reason="no_device",
        )
    if want is None:
        if len(devices) > 1:
            raise ConfigError(
                f"QTM has {len(devices)} analog devices "
                f"{[d.name for d in devices]}: choose one with --device",
                reason="ambiguous_device",
            )
        return devices[0]
    hits = [d for d in devices if d.name == want or str(d.id) == str(want)]
    if not hits:
        raise ConfigError(
            f"no QTM analog device {want!r}; it has {[(d.id, d.name) for d in devices]}", reason="no_device"
        )
    return hits[0]


@dataclass(frozen=True)
class QtmConfig:
    """Which QTM to read and how to map its analog channels (see module doc)."""

    host: str = "127.0.0.1"
    port: int = 22223
    version: str = "1.22"
    #: analog device name or id (None: the only device)
    device: str | None = None
    mapping: MappingConfig = field(default_factory=MappingConfig)
    publish: PublisherConfig = field(default_factory=lambda: PublisherConfig(stream="qtm"))
    timeout_s: float = 5.0
    duration_s: float | None = None

    def __post_init__(self):
        if not isinstance(self.port, int) or not 0 < self.port <= 65535:
            raise ConfigError(f"port {self.port!r} must be 1..65535", reason="bad_option")
        if not self.timeout_s > 0 or (self.duration_s is not None and not self.duration_s > 0):
            raise ConfigError("timeout_s and duration_s must be > 0", reason="bad_option")


class QtmAdapter:
    """Streams one QTM analog device as protocol-v1 frames (``run()`` until stopped)."""

    def __init__(self, cfg: QtmConfig, *, context=None):
        self.cfg = cfg
        self.context = context
        self.pub: FramePublisher | None = None
        self.device: AnalogDevice | None = None
        self.plan_ = None
        self.rad_ = False
        self.stop_ = False

    @property
    def stats(self):
        return self.pub.stats if self.pub is not None else None

    def stop(self) -> None:
        self.stop_ = True

    def _setup(self, xml) -> None:
        dev = pick_device(parse_analog_parameters(xml), self.cfg.device)
        self.plan_ = resolve_channels(dev.labels, self.cfg.mapping, what=f"QTM analog device {dev.name!r}")
        words = {unit_word(dev.units[i]) if i < len(dev.units) else None for i in self.plan_.index}
        units = self.cfg.mapping.units or (words.pop() if len(words) == 1 and None not in words else "deg")
        self.rad_ = units == "rad"
        rate = self.cfg.mapping.rate_hz or dev.rate_hz
        if rate is None:
            raise ConfigError(
                f"QTM analog device {dev.name!r} states no Frequency: pass --rate-hz", reason="no_rate"
            )
        self.device = dev
        self.pub = FramePublisher(self.cfg.publish, SOURCE_NAME, "deg", context=self.context)
        self.pub.open()
        self.pub.set_rate(float(rate))

    def on_packet(self, packet) -> int:
        """Publish the configured device's samples of one QTM data packet."""
        st = self.pub.stats
        st.packets += 1
        got = packet.get_analog()
        if got is None:
            st.bad_packets += 1
            return 0
        chans, first = [], None
        for device, sample_number, channel in got[1]:
            if device.id == self.device.id:
                chans.append(channel.samples)
                first = sample_number.sample_number
        if not chans:
            return 0
        x = np.asarray(chans, dtype=np.float64).T  # (samples, channels)
        if x.shape[1] <= max(self.plan_.index):
            st.bad_packets += 1
            return 0
        t = (first + np.arange(x.shape[0])) / self.pub.rate_hz
        return self.pub.publish(t, self.plan_.apply(x, self.rad_))

    async def _main(self) -> None:
        qtm_rt = require("qtm_rt", "qtm", "the Qualisys QTM adapter")
        cfg = self.cfg
        conn = await qtm_rt.connect(cfg.host, port=cfg.port, version=cfg.version, timeout=cfg.timeout_s)
        if conn is None:
            raise DataError(
                f"could not connect to QTM RT at {cfg.host}:{cfg.port} (is QTM "
                "running with real-time output on, little-endian port?)",
                reason="no_qtm",
            )
        try:
            self._setup(await conn.get_parameters(parameters=["analog"]))
            await conn.stream_frames(frames="allframes", components=["analog"], on_packet=self.on_packet)
            start = time.monotonic()
            while not self.stop_ and conn.has_transport():
                if cfg.duration_s is not None and time.monotonic() - start >= cfg.duration_s:
                    break
                self.pub.tick()
                await asyncio.sleep(0.02)
            self.pub.stats.wall_s = time.monotonic() - start
            if conn.has_transport():
                await conn.stream_frames_stop()
        finally:
            conn.disconnect()

    def run(self):
        """Connect, map, stream until stop()/duration_s/Ctrl-C or QTM disconnects."""
        try:
            asyncio.run(self._main())
        except KeyboardInterrupt:
            pass
        return self.stats

    def close(self) -> None:
        if self.pub is not None:
            self.pub.close()
