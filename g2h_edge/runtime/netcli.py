"""``g2h-edge keys generate`` and ``g2h-edge proxy``: thin commands over runtime.security and
runtime.scale."""

from __future__ import annotations

import threading

import click

from g2h_edge.runtime.scale import Proxy, ProxyConfig

__all__ = ["keys_cmd", "proxy_cmd"]


@click.group("keys")
def keys_cmd():
    """ZeroMQ CURVE keys for --curve-keys (docs/runtime.md, "Security")."""


@keys_cmd.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--client",
    "clients",
    multiple=True,
    default=("client",),
    show_default=True,
    help="Client key pair name (repeatable); each is authorized.",
)
@click.option("--force", is_flag=True, help="Replace existing keys (clients must get the new ones).")
def generate_cmd(directory, clients, force):
    """Write a server key pair and client key pairs (files 0600) into DIRECTORY.

    The server uses DIRECTORY as is; give each client a copy WITHOUT server.key_secret.
    """
    from g2h_edge.security import generate_keys

    out = generate_keys(directory, clients, force=force)
    for name, (pub, sec) in out.items():
        click.echo(f"{name}: public {pub}, secret {sec}")
    click.echo(
        f"authorized clients: {', '.join(n for n in out if n != 'server')} "
        f"(public keys in {directory}/authorized_clients/)",
        err=True,
    )


@click.command("proxy")
@click.option(
    "--frontend",
    default=ProxyConfig.frontend,
    show_default=True,
    help="Bind the XSUB socket here: publishers (replay, lsl, bridge) connect.",
)
@click.option(
    "--backend",
    default=ProxyConfig.backend,
    show_default=True,
    help="Bind the XPUB socket here: servers connect (serve --connect ADDR --shard I/N).",
)
@click.option(
    "--curve-keys",
    type=click.Path(file_okay=False),
    default=None,
    help="CURVE-encrypt and authenticate both sides (g2h-edge keys generate).",
)
@click.option(
    "--insecure-public-bind",
    is_flag=True,
    help="Allow a non-loopback bind without --curve-keys (trusted networks only).",
)
def proxy_cmd(frontend, backend, curve_keys, insecure_public_bind):
    """Forward every input message from many publishers to many servers (zmq_proxy).

    Run several `g2h-edge serve --connect BACKEND --shard I/N` behind it to share the
    streams across processes (docs/runtime.md, "Scaling beyond one process").
    """
    import signal

    proxy = Proxy(
        ProxyConfig(
            frontend=frontend,
            backend=backend,
            curve_keys=curve_keys,
            insecure_public_bind=insecure_public_bind,
        )
    ).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    click.echo(
        f"g2h-edge proxy: publishers -> {proxy.endpoints['frontend']} (XSUB), servers "
        f"<- {proxy.endpoints['backend']} (XPUB); Ctrl-C to stop",
        err=True,
    )
    while not done.wait(0.5):
        pass
    proxy.stop()
