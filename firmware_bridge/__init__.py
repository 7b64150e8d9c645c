"""g2h_edge.firmware_bridge: microcontrollers (wearables, exoskeleton controllers) on the bus.

Link format v1 (COBS + CRC-16 frames over serial, plain frames over UDP), the streaming
decoder, the translation to protocol-v1 messages, the bridge loop and a C99 reference codec
for firmware (``c/``). See docs/firmware_bridge.md.
"""

from .bridge import MAX_POINTS, Bridge, BridgeConfig, bridge_config, run_bridge
from .deframer import LINK_COUNTERS, LinkDecoder, signed_delta
from .link import (
    ANGLES,
    IC_EVENT,
    LINK_VERSION,
    MAX_PAYLOAD_BYTES,
    META,
    PREDICTION,
    STATUS,
    Frame,
    cobs_decode,
    cobs_encode,
    crc16,
    pack_angles,
    pack_frame,
    pack_ic_event,
    pack_meta,
    pack_prediction,
    pack_status,
    parse_frame,
    parse_payload,
    serial_frame,
)
from .translate import DeviceTranslator, prediction_frame, resample_waveform

__all__ = [
    "Bridge",
    "BridgeConfig",
    "bridge_config",
    "run_bridge",
    "MAX_POINTS",
    "LinkDecoder",
    "LINK_COUNTERS",
    "signed_delta",
    "DeviceTranslator",
    "prediction_frame",
    "resample_waveform",
    "LINK_VERSION",
    "MAX_PAYLOAD_BYTES",
    "ANGLES",
    "IC_EVENT",
    "META",
    "PREDICTION",
    "STATUS",
    "Frame",
    "crc16",
    "cobs_encode",
    "cobs_decode",
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
