"""Byte transports to the device: a serial port (pyserial) or a UDP socket.

Both are thin and non-blocking: ``fileno()`` for the bridge's poller, ``read()`` returns
what is there now, ``send()`` writes one frame. A vanished device (USB unplugged) shows up as
:class:`TransportLost` from ``read``/``send``; the bridge then closes and reopens with
backoff. Frames on a serial line are COBS-encoded with a 0x00 delimiter; over UDP one
datagram is one plain frame.
"""

from __future__ import annotations

import socket

from g2h_edge.errors import BridgeError, require

from .link import MAX_FRAME_BYTES, serial_frame

__all__ = ["TransportLost", "SerialTransport", "UdpTransport", "parse_host_port"]


class TransportLost(BridgeError):
    """The device went away (serial port vanished, I/O error); reopen later."""

    reason = "transport_lost"


def parse_host_port(text: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); BridgeError when malformed."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BridgeError(f"UDP address {text!r} must be HOST:PORT, e.g. 0.0.0.0:9000", reason="bad_address")
    return host.strip("[]"), int(port)


class SerialTransport:
    """A serial port (UART, USB-CDC, pseudo-terminal) opened with pyserial."""

    datagrams = False

    def __init__(self, port: str, baud: int, *, read_bytes: int = 4096, write_timeout_s: float = 0.05):
        self.port = port
        self.baud = int(baud)
        self.read_bytes = int(read_bytes)
        self.write_timeout_s = float(write_timeout_s)
        self.serial_ = None
        self.tx_timeouts = 0

    @property
    def name(self) -> str:
        return f"serial:{self.port}"

    def open(self) -> None:
        """Open the port; TransportLost when it is not there (yet)."""
        serial = require("serial", "serial", "the firmware bridge's serial transport")
        try:
            # exclusive: a second reader on the same port would steal half the bytes
            self.serial_ = serial.Serial(
                self.port, self.baud, timeout=0, write_timeout=self.write_timeout_s, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self.serial_ = None
            raise TransportLost(f"cannot open serial port {self.port!r}: {exc}") from None

    @property
    def is_open(self) -> bool:
        return self.serial_ is not None

    def fileno(self) -> int:
        return self.serial_.fileno()

    def read(self) -> bytes:
        """Bytes available now (possibly b"")."""
        serial = require("serial", "serial")
        try:
            return self.serial_.read(self.read_bytes)
        except (serial.SerialException, OSError) as exc:
            raise TransportLost(f"serial port {self.port!r} lost: {exc}") from None

    def send(self, frame: bytes, stream: int | None = None) -> None:
        """Write one frame (COBS + 0x00); a write that times out is dropped and counted."""
        serial = require("serial", "serial")
        try:
            self.serial_.write(serial_frame(frame))
        except serial.SerialTimeoutException:
            self.tx_timeouts += 1  # device not reading; its deframer resyncs at 0x00
        except (serial.SerialException, OSError) as exc:
            raise TransportLost(f"serial port {self.port!r} lost: {exc}") from None

    def close(self) -> None:
        if self.serial_ is not None:
            try:
                self.serial_.close()
            except Exception:  # closing a vanished device may fail; it is gone
                pass
        self.serial_ = None


class UdpTransport:
    """A bound UDP socket; each datagram is one frame. Replies go to each stream's sender."""

    datagrams = True

    def __init__(self, host: str, port: int):
        self.host, self.port = host, int(port)
        self.sock_ = None
        self.peers_: dict[int, tuple] = {}  # device stream -> address it sends from
        self.tx_timeouts = 0

    @property
    def name(self) -> str:
        return f"udp:{self.host}:{self.port}"

    @property
    def is_open(self) -> bool:
        return self.sock_ is not None

    @property
    def address(self) -> tuple:
        """Bound (host, port) (the port the OS picked when 0 was asked for)."""
        return self.sock_.getsockname()[:2]

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((self.host, self.port))
        except OSError as exc:
            raise TransportLost(f"cannot bind UDP {self.host}:{self.port}: {exc}") from None
        self.sock_ = sock

    def fileno(self) -> int:
        return self.sock_.fileno()

    def read(self) -> list[tuple[bytes, tuple]]:
        """Datagrams waiting now, each with its sender address."""
        out = []
        for _ in range(1024):
            try:
                data, addr = self.sock_.recvfrom(MAX_FRAME_BYTES + 64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable from an earlier send
                continue
            out.append((data, addr))
        return out

    def note_peer(self, stream: int, addr) -> None:
        self.peers_[stream] = addr

    def send(self, frame: bytes, stream: int | None = None) -> None:
        """Send one frame to the device stream's address (all known devices when None)."""
        if stream is None:
            targets = set(self.peers_.values())
        else:
            targets = {self.peers_[stream]} if stream in self.peers_ else set()
        for addr in targets:
            try:
                self.sock_.sendto(frame, addr)
            except OSError:
                self.tx_timeouts += 1

    def close(self) -> None:
        if self.sock_ is not None:
            self.sock_.close()
        self.sock_ = None
