"""``g2h-edge bridge``: connect a microcontroller (serial or UDP) to the runtime's sockets."""

from __future__ import annotations

import threading

import click

from .bridge import MAX_POINTS, Bridge, BridgeConfig

__all__ = ["bridge_cmd"]


@click.command("bridge")
@click.option(
    "--serial",
    "serial_port",
    metavar="DEV",
    default=None,
    help="serial device of the microcontroller (e.g. /dev/ttyACM0)",
)
@click.option(
    "--baud",
    default=115200,
    show_default=True,
    type=int,
    help="serial baud rate (ignored by USB-CDC devices)",
)
@click.option(
    "--udp",
    metavar="HOST:PORT",
    default=None,
    help="listen for device datagrams on HOST:PORT (one frame per datagram)",
)
@click.option(
    "--to",
    "to_addr",
    metavar="ADDR",
    required=True,
    help="the runtime's input endpoint, e.g. tcp://127.0.0.1:5555",
)
@click.option(
    "--from",
    "from_addr",
    metavar="ADDR",
    required=True,
    help="the runtime's output endpoint, e.g. tcp://127.0.0.1:5556",
)
@click.option(
    "--points",
    default=20,
    show_default=True,
    type=click.IntRange(2, MAX_POINTS),
    help="waveform points per PREDICTION frame",
)
@click.option(
    "--stream-prefix", default="mcu", show_default=True, help="device stream N becomes stream id <prefix><N>"
)
@click.option(
    "--duration",
    "duration_s",
    default=None,
    type=click.FloatRange(min=0),
    help="stop after this many seconds (default: run until Ctrl-C)",
)
@click.option(
    "--curve-keys",
    type=click.Path(file_okay=False),
    default=None,
    help="connect as a CURVE client (server.key + client.key_secret in this dir)",
)
def bridge_cmd(serial_port, baud, udp, to_addr, from_addr, points, stream_prefix, duration_s, curve_keys):
    """Connect a microcontroller (serial/UDP) to the bus.

    Device ANGLES/IC_EVENT/META frames become protocol-v1 messages on the runtime's input;
    the runtime's cycle predictions go back to the device as PREDICTION frames. Counters
    are sent once a second to the device (STATUS) and to the runtime (status inputs).
    """
    config = BridgeConfig(
        to_addr=to_addr,
        from_addr=from_addr,
        serial_port=serial_port,
        baud=baud,
        udp=udp,
        points=points,
        stream_prefix=stream_prefix,
        curve_keys=curve_keys,
    )
    bridge = Bridge(config, log=lambda text: click.echo(text, err=True))
    where = config.serial_port or f"udp {config.udp}"
    click.echo(
        f"bridge: device {where} -> {to_addr}, predictions from {from_addr} "
        f"({points} points), streams {stream_prefix}<N>",
        err=True,
    )
    try:
        bridge.run(threading.Event(), duration_s=duration_s)
    except KeyboardInterrupt:
        pass
    c = bridge.counters()
    click.echo(
        "bridge: "
        + ", ".join(
            f"{k}={c[k]}"
            for k in (
                "frames_ok",
                "crc_errors",
                "framing_errors",
                "seq_gaps",
                "reconnects",
                "predictions_out",
            )
        ),
        err=True,
    )
