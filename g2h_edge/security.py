"""ZeroMQ CURVE security: key generation, server/client socket setup, exposure checks.

Trust model (docs/runtime.md, "Security"): by default every socket is bound on loopback
and nothing is encrypted. To serve beyond the machine, generate keys with
``g2h-edge keys generate DIR`` and start the server with ``--curve-keys DIR``: both of its
sockets (inputs and outputs) become CURVE servers (encrypted, authenticated), and a ZAP
authenticator admits only the client public keys in ``DIR/authorized_clients/``. Sources
(replay, lsl, bridge) and subscribers connect as CURVE clients with a copy of ``DIR``
holding the server's *public* key and their own key pair. Rule: the side that binds is the
CURVE server, the side that connects the CURVE client (a server connected to a proxy is a
client of the proxy; a source cannot bind with CURVE). Binding a non-loopback address
without CURVE is refused unless explicitly allowed (``--insecure-public-bind``).

Key directory layout (all files 0600, the directory 0700)::

    DIR/server.key, DIR/server.key_secret           the server's key pair
    DIR/<client>.key, DIR/<client>.key_secret       one pair per client name
    DIR/authorized_clients/<client>.key             public keys the server admits

A client needs ``server.key`` and its own ``<client>.key_secret`` only; never copy
``server.key_secret`` off the server.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import sys
from pathlib import Path

import zmq

from g2h_edge.errors import ConfigError

__all__ = [
    "SERVER_NAME",
    "AUTHORIZED_DIR",
    "generate_keys",
    "check_server_keys",
    "server_curve",
    "client_curve",
    "is_local_endpoint",
    "check_exposure",
    "curve_available",
]

SERVER_NAME = "server"
AUTHORIZED_DIR = "authorized_clients"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LOCAL_HOSTS = {"localhost", "lo", "ip6-localhost"}


def curve_available() -> bool:
    """Whether this libzmq was built with CURVE (libsodium/tweetnacl)."""
    return bool(zmq.has("curve"))


def _need_curve() -> None:
    if not curve_available():
        raise ConfigError(
            f"this libzmq ({zmq.zmq_version()}) has no CURVE support; install "
            "a pyzmq wheel (they bundle it) to use --curve-keys",
            reason="no_curve",
        )


def _private(path: Path, mode: int = 0o600) -> None:
    os.chmod(path, mode)


def generate_keys(directory, clients=("client",), *, force: bool = False) -> dict:
    """Write a server key pair, one key pair per client name and the authorized-clients
    folder into ``directory``; returns ``{name: (public_file, secret_file)}``.

    Refuses to overwrite an existing server key unless ``force`` (clients holding the old
    server key would be locked out).
    """
    import zmq.auth

    _need_curve()
    names = list(clients)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"client names {names!r} must be a non-empty list without repeats")
    for name in names:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name == SERVER_NAME:
            raise ConfigError(
                f"client name {name!r} must be 1-64 letters, digits, _ . - and not {SERVER_NAME!r}"
            )
    root = Path(directory)
    if (root / f"{SERVER_NAME}.key_secret").exists() and not force:
        raise ConfigError(
            f"{root} already holds a server key; use another directory (or "
            "--force to replace every key: clients must get the new ones)",
            reason="keys_exist",
        )
    auth_dir = root / AUTHORIZED_DIR
    auth_dir.mkdir(parents=True, exist_ok=True)
    if force:  # old client keys must not stay authorized
        for old in auth_dir.glob("*.key"):
            old.unlink()
    _private(root, 0o700)
    _private(auth_dir, 0o700)
    out = {}
    for name in [SERVER_NAME, *names]:
        old_umask = os.umask(0o077)  # files are never world-readable, even briefly
        try:
            pub, sec = zmq.auth.create_certificates(str(root), name)
        finally:
            os.umask(old_umask)
        for f in (pub, sec):
            _private(Path(f))
        if name != SERVER_NAME:
            shutil.copyfile(pub, auth_dir / Path(pub).name)
            _private(auth_dir / Path(pub).name)
        out[name] = (str(pub), str(sec))
    return out


def _load(path: Path, *, secret: bool):
    import zmq.auth

    if not path.is_file():
        what = "secret key" if secret else "public key"
        raise ConfigError(
            f"{path} ({what}) does not exist; create keys with `g2h-edge keys "
            "generate DIR` and pass that DIR to --curve-keys",
            reason="missing_key",
        )
    try:
        public, sec = zmq.auth.load_certificate(str(path))
    except Exception as exc:
        raise ConfigError(f"{path} is not a ZeroMQ certificate ({exc})", reason="bad_key") from None
    if secret and not sec:
        raise ConfigError(f"{path} holds no secret key", reason="bad_key")
    return public, sec


def check_server_keys(keys_dir) -> None:
    """ConfigError unless ``keys_dir`` holds a server secret key and at least one
    authorized client public key (checked when the config is built, before any socket)."""
    _need_curve()
    root = Path(keys_dir)
    _load(root / f"{SERVER_NAME}.key_secret", secret=True)
    allowed = root / AUTHORIZED_DIR
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise ConfigError(
            f"{allowed} holds no client public key (*.key): no client could "
            "connect; run `g2h-edge keys generate` or copy client .key files "
            "there",
            reason="missing_key",
        )


def server_curve(context, sockets, keys_dir, *, clients=()):
    """Make ``sockets`` (the ones that bind) CURVE servers with ``keys_dir``'s server key
    and start a ZAP authenticator on ``context`` admitting only
    ``keys_dir/authorized_clients/*.key``; ``clients`` (sockets that connect, e.g. a
    server's SUB connected to a proxy) become CURVE clients (:func:`client_curve`).

    Call before binding/connecting. Returns the authenticator (``.stop()`` it before
    terminating the context), or None when ``keys_dir`` is None (no security).
    """
    if keys_dir is None:
        return None
    _need_curve()
    from zmq.auth.thread import ThreadAuthenticator

    for sock in clients:
        client_curve(sock, keys_dir)
    sockets = [s for s in sockets if s not in clients]
    if not sockets:
        return None
    check_server_keys(keys_dir)
    root = Path(keys_dir)
    public, secret = _load(root / f"{SERVER_NAME}.key_secret", secret=True)
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(root / AUTHORIZED_DIR))
    for sock in sockets:
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
    return auth


def client_curve(sock, keys_dir, client: str = "client") -> None:
    """Make ``sock`` a CURVE client of the server whose public key is
    ``keys_dir/server.key``, authenticating with ``keys_dir/<client>.key_secret`` (or the
    only non-server ``*.key_secret`` there).
    No-op when ``keys_dir`` is None."""
    if keys_dir is None:
        return
    _need_curve()
    root = Path(keys_dir)
    server_public, _ = _load(root / f"{SERVER_NAME}.key", secret=False)
    mine = root / f"{client}.key_secret"
    if not mine.is_file():  # a client dir holding one pair of another name
        others = [p for p in root.glob("*.key_secret") if p.stem != SERVER_NAME]
        mine = others[0] if len(others) == 1 else mine
    public, secret = _load(mine, secret=True)
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def is_local_endpoint(addr: str) -> bool:
    """True for endpoints reachable from this machine only: ``ipc://``, ``inproc://`` and
    tcp on a loopback address (127.0.0.0/8, ::1, localhost). ``*``, ``0.0.0.0``, interface
    names and other addresses are not local."""
    scheme, _, rest = addr.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme not in ("tcp", "ws", "wss"):
        return False  # pgm/epgm/udp/...: multicast is never local
    host = rest.split(";")[-1]  # "src;dst" connect form: the destination
    host = host.split("/", 1)[0]  # ws://host:port/path
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.strip("[]")
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(
    binds, connects=(), *, curve_keys=None, allow_insecure: bool = False, what: str = "g2h-edge", warn=None
) -> None:
    """Refuse (ConfigError ``insecure_bind``) to bind a non-loopback address without CURVE,
    unless ``allow_insecure``; warn (stderr) for non-loopback connects without CURVE."""
    if curve_keys is not None:
        return
    exposed = [a for a in binds if a and not is_local_endpoint(a)]
    if exposed and not allow_insecure:
        raise ConfigError(
            f"{what}: binding {', '.join(exposed)} would expose unencrypted, "
            "unauthenticated sockets beyond this machine; generate keys with "
            "`g2h-edge keys generate DIR` and add --curve-keys DIR, or pass "
            "--insecure-public-bind on a trusted network",
            reason="insecure_bind",
        )
    remote = [a for a in connects if a and not is_local_endpoint(a)]
    if exposed or remote:
        warn = warn or (lambda text: print(text, file=sys.stderr))
        warn(
            f"{what}: WARNING: unencrypted traffic to/from {', '.join(exposed + remote)} "
            "(no --curve-keys); anyone on the network can read or inject frames"
        )
