"""Content hashes that let a loader refuse a damaged model file (docs/models.md "Integrity").

Pure hashlib/numpy: importing it does not import torch.

A file's own sha256 (``engine.sha256``) identifies it but proves nothing: a flipped byte
gives another sha256 and a model that still loads. These hashes are stored *inside* the file
when it is written and recomputed when it is read:

- a bundle stores ``content_sha256``: :func:`bundle_content_sha256` of its state dict and
  the fields that define the model (arch, hparams, in_cols, out_cols, mean, std, T);
- an ONNX export stores ``content_sha256`` in its metadata_props: :func:`onnx_graph_sha256`
  of its graph (nodes and initializers).

A file written before these hashes existed loads with an :class:`UnverifiedModelWarning`.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np

from g2h_edge.errors import ModelError

__all__ = [
    "HASHED_FIELDS",
    "CONTENT_KEY",
    "UnverifiedModelWarning",
    "bundle_content_sha256",
    "onnx_graph_sha256",
    "check_content",
    "warn_unverified",
]

#: the bundle fields covered by ``content_sha256`` (with every tensor of the state dict)
HASHED_FIELDS = ("arch", "hparams", "in_cols", "out_cols", "mean", "std", "T")
#: the key under which bundles and ONNX metadata_props store the hash
CONTENT_KEY = "content_sha256"


class UnverifiedModelWarning(UserWarning):
    """A model file without a content hash (written by an older g2h-edge) was loaded."""


def bundle_content_sha256(state_dict: dict, fields: dict) -> str:
    """Hex sha256 over ``fields`` (the :data:`HASHED_FIELDS`, as canonical JSON; mean/std as
    float32 bytes) and every state-dict tensor (name, dtype, shape, bytes; sorted by name)."""
    h = hashlib.sha256(b"g2h-edge-bundle-content-v1\0")
    plain = {k: fields[k] for k in HASHED_FIELDS if k not in ("mean", "std")}
    plain["in_cols"], plain["out_cols"] = list(plain["in_cols"]), list(plain["out_cols"])
    h.update(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode())
    for key in ("mean", "std"):
        h.update(np.ascontiguousarray(np.asarray(fields[key], np.float32)).tobytes())
    for name in sorted(state_dict):
        arr = state_dict[name].detach().cpu().contiguous().numpy()
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def onnx_graph_sha256(model) -> str:
    """Hex sha256 of an ONNX ModelProto's graph (nodes, initializers, inputs/outputs),
    serialised deterministically; metadata_props are outside the graph."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def check_content(stored, computed: str, *, path, kind: str, fix: str, add: str) -> None:
    """ModelError (``integrity``) when the ``stored`` hash differs from the ``computed`` one;
    an :class:`UnverifiedModelWarning` when there is none. ``fix`` says how to get a good
    file, ``add`` how to give an old file a hash."""
    if stored is None:
        warn_unverified(path, kind, add)
        return
    if str(stored) != computed:
        raise ModelError(
            f"{kind} {path} failed its integrity check: the content hash of its "
            f"weights and model fields is {computed[:16]}..., the file recorded "
            f"{str(stored)[:16]}... when it was written. The file was changed or "
            f"damaged after it was written; do not serve it: {fix}",
            reason="integrity",
        )


def warn_unverified(path, kind: str, add: str) -> None:
    """Warn that ``path`` has no content hash, so damage to its weights would go unseen."""
    warnings.warn(
        f"{kind} {path} has no content hash (written by an older g2h-edge): its "
        f"weights cannot be checked for damage; {add}",
        UnverifiedModelWarning,
        stacklevel=3,
    )
