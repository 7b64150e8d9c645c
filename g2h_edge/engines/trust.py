"""Native-code packages (``.pt2``, ``.plan``) load only when this user built them.

An AOTInductor package is a shared library that runs in the server process with the
server's rights; a TensorRT plan is deserialized by native code and may carry plugins. A
sidecar's sha256 only catches accidents: whoever can replace the package can rewrite its
sidecar. So ``g2h-edge export aoti`` / ``export trt`` sign the sidecar with an HMAC-SHA256
under a per-user secret key, and the engines refuse a package whose signature does not
verify under this user's key, unless ``trust_native=True`` (``serve --trust-native``).

The key is 32 random bytes in ``<config dir>/build-key`` (mode 0600, in a 0700 folder),
created by the first export. The config dir is ``$G2H_EDGE_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/g2h-edge``, else ``~/.config/g2h-edge``. The signature covers every
sidecar field (so the package's sha256, the machine and the model metadata), and the
engine checks the package bytes against that sha256. Trust reaches exactly as far as the
key file: anyone who can read it (root, this user) can sign. See docs/export.md "Trust".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from g2h_edge.errors import EngineError

__all__ = [
    "SIGNATURE_KEY",
    "KEY_ID_KEY",
    "config_dir",
    "key_path",
    "load_build_key",
    "sign_sidecar",
    "verify_sidecar",
]

SIGNATURE_KEY = "build_signature"
KEY_ID_KEY = "build_key_id"
_KEY_BYTES = 32


def config_dir() -> Path:
    """Where this user's g2h-edge settings and build key live."""
    if os.environ.get("G2H_EDGE_CONFIG_DIR"):
        return Path(os.environ["G2H_EDGE_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "g2h-edge"


def key_path() -> Path:
    """The per-user build key file."""
    return config_dir() / "build-key"


def load_build_key(create: bool = False) -> bytes | None:
    """This user's build key (None when there is none and ``create`` is False)."""
    path = key_path()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(_KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another export created it first: use that one
            return load_build_key(create=False)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
    if len(key) != _KEY_BYTES:
        raise EngineError(
            f"build key {path} is damaged ({len(key)} bytes, expected "
            f"{_KEY_BYTES}); delete it and rebuild your packages",
            reason="bad_build_key",
        )
    return key


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"g2h-edge-build-key-id\0" + key).hexdigest()[:16]


def _mac(key: bytes, sidecar: dict) -> str:
    body = {k: v for k, v in sidecar.items() if k not in (SIGNATURE_KEY, "path")}
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def sign_sidecar(sidecar: dict) -> dict:
    """``sidecar`` plus this user's key id and HMAC signature (the key is created when
    missing). Call it last: every other field is signed."""
    key = load_build_key(create=True)
    out = dict(sidecar, **{KEY_ID_KEY: _key_id(key)})
    out[SIGNATURE_KEY] = _mac(key, out)
    return out


def verify_sidecar(sidecar: dict, *, kind: str, name: str, trust_native: bool) -> None:
    """EngineError (``untrusted_native``) unless the sidecar's signature verifies under this
    user's build key, or ``trust_native`` is set."""
    if trust_native:
        return
    fix = (
        f"rebuild it yourself on this machine (`g2h-edge export "
        f"{'aoti' if kind.startswith('AOT') else 'trt'}`), or, if you trust whoever "
        "built it, serve it with --trust-native"
    )
    signature = sidecar.get(SIGNATURE_KEY)
    if not isinstance(signature, str):
        raise EngineError(
            f"{kind} {name} is native code with no build signature (built by "
            f"an older g2h-edge, or not by g2h-edge): {fix}",
            reason="untrusted_native",
        )
    key = load_build_key(create=False)
    if key is None:
        raise EngineError(
            f"{kind} {name} is native code signed by another build key, and "
            f"this user has none ({key_path()} is absent: nothing was built "
            f"here): {fix}",
            reason="untrusted_native",
        )
    if sidecar.get(KEY_ID_KEY) != _key_id(key) or not hmac.compare_digest(signature, _mac(key, sidecar)):
        why = (
            "was signed by another user or machine"
            if sidecar.get(KEY_ID_KEY) != _key_id(key)
            else "was changed after it was signed"
        )
        raise EngineError(
            f"{kind} {name} is native code whose sidecar {why}: {fix}", reason="untrusted_native"
        )
