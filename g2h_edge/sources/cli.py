"""``g2h-edge lsl | mvn | qtm``: publish live joint angles to the server (thin)."""

from __future__ import annotations

import signal

import click

from g2h_edge.errors import ConfigError
from g2h_edge.io.mapping import trial_input_options

__all__ = ["lsl_cmd", "mvn_cmd", "qtm_cmd"]

DEFAULT_LISTEN = "tcp://127.0.0.1:5555"


@click.command("lsl")
@click.option("--name", default=None, help="LSL stream name to read.")
@click.option("--type", "type_", default=None, help="LSL stream type (e.g. JointAngles).")
@click.option("--source-id", default=None, help="LSL source_id (pins one device).")
@click.option("--connect", default=None, help=f"Server input to connect to [default {DEFAULT_LISTEN}].")
@click.option("--bind", default=None, help="Bind here instead (the server uses --connect).")
@click.option("--stream", default=None, help="Protocol stream id [default: the LSL name].")
@click.option(
    "--labels",
    default=None,
    help="Comma-separated channel labels in stream order, for LSL streams without a channel description.",
)
@click.option(
    "--body-mass", "body_mass_kg", type=float, default=None, help="Body mass (kg) sent in the meta."
)
@click.option(
    "--frames-per-message",
    type=int,
    default=10,
    show_default=True,
    help="Most frames per message (what arrived is sent at once, never held).",
)
@click.option(
    "--duration",
    "duration_s",
    type=float,
    default=None,
    help="Stop after this many seconds [default: until Ctrl-C].",
)
@click.option("--resolve-timeout", type=float, default=10.0, show_default=True)
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the server to subscribe.",
)
@trial_input_options(kwarg="mapping", files=False)
@click.option(
    "--curve-keys",
    type=click.Path(file_okay=False),
    default=None,
    help="Connect as a CURVE client (server.key + client.key_secret in this dir).",
)
def lsl_cmd(
    name,
    type_,
    source_id,
    connect,
    bind,
    stream,
    labels,
    body_mass_kg,
    frames_per_message,
    duration_s,
    resolve_timeout,
    wait_s,
    mapping,
    curve_keys,
):
    """Publish a live Lab Streaming Layer stream of joint angles as protocol-v1 frames.

    Needs the lsl extra (pip install 'g2h-edge[lsl]'). Channels are picked by label; see
    docs/sources.md. Stops on Ctrl-C/SIGTERM and sends `end`.
    """
    from g2h_edge.sources.lsl import LslAdapter, LslConfig, open_inlet

    if connect and bind:
        raise click.UsageError("give --connect or --bind, not both")
    try:
        cfg = LslConfig(
            name=name,
            type=type_,
            source_id=source_id,
            stream=stream,
            address=bind or connect or DEFAULT_LISTEN,
            bind=bool(bind),
            mapping=mapping.mapping,
            preset=mapping.preset,
            offsets_deg=mapping.offsets_deg,
            labels=tuple(x.strip() for x in labels.split(",")) if labels else None,
            units=mapping.units,
            rate_hz=mapping.rate_hz,
            body_mass_kg=body_mass_kg,
            frames_per_message=frames_per_message,
            duration_s=duration_s,
            resolve_timeout_s=resolve_timeout,
            wait_subscriber_s=wait_s,
            curve_keys=curve_keys,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    inlet, info = open_inlet(cfg)
    adapter = LslAdapter(cfg, inlet, info)
    signal.signal(signal.SIGTERM, lambda *_: adapter.stop())
    click.echo(
        f"LSL stream {info.name()!r} ({info.type()}, {info.channel_count()} channels, "
        f"{adapter.rate_hz:g} Hz, {adapter.units}) -> stream {adapter.stream!r} at "
        f"{cfg.address}; waiting for the server...",
        err=True,
    )
    try:
        adapter.open()
        click.echo("publishing (Ctrl-C to stop)", err=True)
        st = adapter.run()
    finally:
        adapter.close()
    click.echo(
        f"published {st.frames} frames in {st.messages} messages over {st.wall_s:.1f} s "
        f"({st.samples} samples pulled; left out: {st.dropped_nonfinite} non-finite, "
        f"{st.dropped_time} not increasing in time)",
        err=True,
    )


def _publish_cfg(stream, connect, bind, body_mass_kg, frames_per_message, wait_s):
    from g2h_edge.sources.publisher import PublisherConfig

    if connect and bind:
        raise click.UsageError("give --connect or --bind, not both")
    try:
        return PublisherConfig(
            stream=stream,
            address=bind or connect or DEFAULT_LISTEN,
            bind=bool(bind),
            body_mass_kg=body_mass_kg,
            frames_per_message=frames_per_message,
            wait_subscriber_s=wait_s,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _publish_options(default_stream: str):
    def deco(f):
        for opt in reversed(
            [
                click.option(
                    "--connect", default=None, help=f"Server input to connect to [default {DEFAULT_LISTEN}]."
                ),
                click.option("--bind", default=None, help="Bind here instead (the server uses --connect)."),
                click.option(
                    "--stream", default=default_stream, show_default=True, help="Protocol stream id."
                ),
                click.option(
                    "--body-mass",
                    "body_mass_kg",
                    type=float,
                    default=None,
                    help="Body mass (kg) sent in the meta.",
                ),
                click.option("--frames-per-message", type=int, default=10, show_default=True),
                click.option(
                    "--duration",
                    "duration_s",
                    type=float,
                    default=None,
                    help="Stop after this many seconds [default: until Ctrl-C].",
                ),
                click.option(
                    "--wait",
                    "wait_s",
                    type=float,
                    default=30.0,
                    show_default=True,
                    help="Seconds to wait for the server to subscribe.",
                ),
            ]
        ):
            f = opt(f)
        return f

    return deco


def _report(st) -> None:
    if st is None:
        return
    click.echo(
        f"published {st.frames} frames in {st.messages} messages over {st.wall_s:.1f} s "
        f"({st.packets} packets, {st.bad_packets} malformed; left out: "
        f"{st.dropped_nonfinite} non-finite, {st.dropped_time} not increasing in time)",
        err=True,
    )


@click.command("mvn")
@click.option(
    "--host", default="0.0.0.0", show_default=True, help="Interface to receive MVN's UDP datagrams on."
)
@click.option(
    "--port", type=int, default=9763, show_default=True, help="UDP port set in MVN's Network Streamer."
)
@click.option(
    "--character", "character_id", type=int, default=0, show_default=True, help="MVN character id to read."
)
@_publish_options("mvn")
@trial_input_options(kwarg="mapping", files=False)
def mvn_cmd(
    host,
    port,
    character_id,
    connect,
    bind,
    stream,
    body_mass_kg,
    frames_per_message,
    duration_s,
    wait_s,
    mapping,
):
    """Publish Xsens MVN network-streamer joint angles (UDP, "Joint Angles") as
    protocol-v1 frames. Default mapping: --preset mvn (docs/sources.md)."""
    from dataclasses import replace

    from g2h_edge.sources.mvn import MvnAdapter, MvnConfig

    if not mapping.mapping and mapping.preset is None:
        mapping = replace(mapping, preset="mvn")
    cfg = MvnConfig(
        host=host,
        port=port,
        character_id=character_id,
        mapping=mapping,
        publish=_publish_cfg(stream, connect, bind, body_mass_kg, frames_per_message, wait_s),
        duration_s=duration_s,
    )
    ad = MvnAdapter(cfg)
    signal.signal(signal.SIGTERM, lambda *_: ad.stop())
    h, p = ad.bind()
    click.echo(
        f"MVN joint angles on udp {h}:{p} -> stream {cfg.publish.stream!r} at "
        f"{cfg.publish.address}; waiting for the server...",
        err=True,
    )
    try:
        ad.open()
        click.echo("publishing (Ctrl-C to stop)", err=True)
        st = ad.run()
    finally:
        ad.close()
    _report(st)


@click.command("qtm")
@click.option("--host", default="127.0.0.1", show_default=True, help="Computer running QTM.")
@click.option(
    "--port", type=int, default=22223, show_default=True, help="QTM RT port (the little-endian one)."
)
@click.option(
    "--device", default=None, help="Analog device (name or id) holding the angles [default: the only one]."
)
@_publish_options("qtm")
@trial_input_options(kwarg="mapping", files=False)
def qtm_cmd(
    host, port, device, connect, bind, stream, body_mass_kg, frames_per_message, duration_s, wait_s, mapping
):
    """Publish joint angles from a Qualisys QTM analog device (RT protocol) as protocol-v1
    frames. Needs the qtm extra (pip install 'g2h-edge[qtm]'); see docs/sources.md."""
    from g2h_edge.sources.qtm import QtmAdapter, QtmConfig

    cfg = QtmConfig(
        host=host,
        port=port,
        device=device,
        mapping=mapping,
        publish=_publish_cfg(stream, connect, bind, body_mass_kg, frames_per_message, wait_s),
        duration_s=duration_s,
    )
    ad = QtmAdapter(cfg)
    signal.signal(signal.SIGTERM, lambda *_: ad.stop())
    click.echo(f"QTM RT at {host}:{port} -> stream {cfg.publish.stream!r} at {cfg.publish.address}", err=True)
    try:
        st = ad.run()
    finally:
        ad.close()
    _report(st)
