"""``g2h-edge lsl``: publish a live LSL stream of joint angles to the server (thin)."""
from __future__ import annotations

import signal

import click

from g2h_edge.errors import ConfigError

__all__ = ["lsl_cmd"]

DEFAULT_LISTEN = "tcp://127.0.0.1:5555"


def _parse_map(items) -> dict:
    out = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            name, sep, label = part.partition("=")
            if not sep or not name.strip() or not label.strip():
                raise click.BadParameter(f"{part!r} is not NAME=LABEL", param_hint="--map")
            out[name.strip()] = label.strip()
    return out


@click.command("lsl")
@click.option("--name", default=None, help="LSL stream name to read.")
@click.option("--type", "type_", default=None, help="LSL stream type (e.g. JointAngles).")
@click.option("--source-id", default=None, help="LSL source_id (pins one device).")
@click.option("--connect", default=None, help=f"Server input to connect to [default "
              f"{DEFAULT_LISTEN}].")
@click.option("--bind", default=None, help="Bind here instead (the server uses --connect).")
@click.option("--stream", default=None, help="Protocol stream id [default: the LSL name].")
@click.option("--map", "maps", multiple=True, metavar="NAME=LABEL[,...]",
              help="Input channel NAME comes from the LSL channel labelled LABEL "
                   "(repeatable; unmapped names are matched by their own name).")
@click.option("--labels", default=None, help="Comma-separated channel labels in stream order, "
              "for LSL streams without a channel description.")
@click.option("--units", type=click.Choice(["deg", "rad"]), default=None,
              help="Angle units [default: from the LSL channel description].")
@click.option("--rate-hz", type=float, default=None,
              help="Frame rate for irregular LSL streams (or to override the nominal one).")
@click.option("--body-mass", "body_mass_kg", type=float, default=None,
              help="Body mass (kg) sent in the meta.")
@click.option("--frames-per-message", type=int, default=10, show_default=True,
              help="Most frames per message (what arrived is sent at once, never held).")
@click.option("--duration", "duration_s", type=float, default=None,
              help="Stop after this many seconds [default: until Ctrl-C].")
@click.option("--resolve-timeout", type=float, default=10.0, show_default=True)
@click.option("--wait", "wait_s", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the server to subscribe.")
@click.option("--curve-keys", type=click.Path(file_okay=False), default=None,
              help="Connect as a CURVE client (server.key + client.key_secret in this dir).")
def lsl_cmd(name, type_, source_id, connect, bind, stream, maps, labels, units, rate_hz,
            body_mass_kg, frames_per_message, duration_s, resolve_timeout, wait_s,
            curve_keys):
    """Publish a live Lab Streaming Layer stream of joint angles as protocol-v1 frames.

    Needs the lsl extra (pip install 'g2h-edge[lsl]'). Channels are picked by label; see
    docs/sources.md. Stops on Ctrl-C/SIGTERM and sends `end`.
    """
    from g2h_edge.sources.lsl import LslAdapter, LslConfig, open_inlet

    if connect and bind:
        raise click.UsageError("give --connect or --bind, not both")
    try:
        cfg = LslConfig(name=name, type=type_, source_id=source_id, stream=stream,
                        address=bind or connect or DEFAULT_LISTEN, bind=bool(bind),
                        mapping=_parse_map(maps),
                        labels=tuple(x.strip() for x in labels.split(",")) if labels else None,
                        units=units, rate_hz=rate_hz, body_mass_kg=body_mass_kg,
                        frames_per_message=frames_per_message, duration_s=duration_s,
                        resolve_timeout_s=resolve_timeout, wait_subscriber_s=wait_s,
                        curve_keys=curve_keys)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    inlet, info = open_inlet(cfg)
    adapter = LslAdapter(cfg, inlet, info)
    signal.signal(signal.SIGTERM, lambda *_: adapter.stop())
    click.echo(f"LSL stream {info.name()!r} ({info.type()}, {info.channel_count()} channels, "
               f"{adapter.rate_hz:g} Hz, {adapter.units}) -> stream {adapter.stream!r} at "
               f"{cfg.address}; waiting for the server...", err=True)
    try:
        adapter.open()
        click.echo("publishing (Ctrl-C to stop)", err=True)
        st = adapter.run()
    finally:
        adapter.close()
    click.echo(f"published {st.frames} frames in {st.messages} messages over {st.wall_s:.1f} s "
               f"({st.samples} samples pulled; left out: {st.dropped_nonfinite} non-finite, "
               f"{st.dropped_time} not increasing in time)", err=True)
