"""Several engines of one task served as one: the mean of their outputs and the spread.

:class:`EnsembleEngine` holds member engines (any backends) that predict the same outputs
(same task, out_cols, unit, T and inputs); mismatches are refused with an EngineError. Every
call runs all members on the same validated batch, in this process, one after the other
(each member batched), and returns the mean; :meth:`EnsembleEngine.infer_spread` also
returns the per-frame standard deviation across members (population sd, ddof=0).

An ensemble manifest is a small JSON file::

    {"format": "g2h-edge-ensemble", "name": "LSTM+Mamba_JM", "members": ["lstm.pt", "mamba.onnx"]}

member paths relative to the manifest's folder. :func:`load_any` loads a manifest, a
comma-separated member list ``A.pt,B.onnx`` or a single engine file
(:func:`~g2h_edge.engines.base.load_engine`);
:func:`infer_with_spread` gives (mean, sd or None) for any engine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from g2h_edge.engines.base import Engine, load_engine, validate_input
from g2h_edge.errors import EngineError

__all__ = [
    "EnsembleEngine",
    "MANIFEST_TAG",
    "write_manifest",
    "read_manifest",
    "load_ensemble",
    "load_any",
    "parse_spec",
    "infer_with_spread",
    "is_manifest",
]

MANIFEST_TAG = "g2h-edge-ensemble"
#: member fields that must agree
_SAME = ("task", "out_cols", "unit", "T", "in_cols")


def _check_members(members) -> None:
    if len(members) < 2:
        raise EngineError(
            f"an ensemble needs at least 2 member engines, got {len(members)}", reason="bad_ensemble"
        )
    first = members[0]
    for m in members[1:]:
        for key in _SAME:
            a, b = getattr(first, key), getattr(m, key)
            if (tuple(a) if isinstance(a, (list, tuple)) else a) != (
                tuple(b) if isinstance(b, (list, tuple)) else b
            ):
                raise EngineError(
                    f"ensemble members {first.name!r} and {m.name!r} differ in "
                    f"{key} ({a!r} vs {b!r}): every member must predict the "
                    f"same outputs of the same task",
                    reason="ensemble_mismatch",
                )


def _shared_vector(members, key: str):
    """Members' ``key`` (mean/std) when every member has it, averaged (they agree when the
    members were trained on the same pool); None otherwise."""
    vals = [m.metadata.get(key) for m in members]
    if any(v is None for v in vals):
        return None
    return [float(v) for v in np.mean(np.asarray(vals, np.float64), axis=0)]


class EnsembleEngine(Engine):
    """Mean of member engines; see the module doc. Closing the ensemble closes its members
    when ``owns_members`` (the default for :func:`load_ensemble`)."""

    def __init__(self, members, *, name: str | None = None, owns_members: bool = False):
        members = list(members)
        _check_members(members)
        first = members[0]
        meta = dict(first.metadata)
        meta.update(
            name=name or "+".join(m.name for m in members),
            synthetic=any(m.synthetic for m in members),
            members=[{"name": m.name, "sha256": m.sha256, "backend": m.backend} for m in members],
        )
        for key in ("mean", "std"):
            meta[key] = _shared_vector(members, key)
        summary = next(
            (m.metadata.get("input_summary") for m in members if m.metadata.get("input_summary")), None
        )
        meta["input_summary"] = summary
        meta.pop("path", None)
        digest = hashlib.sha256("\n".join(m.sha256 for m in members).encode()).hexdigest()
        super().__init__(meta, sha256=digest)
        self.members = members
        self.owns_members = owns_members
        self.backend = "ensemble:" + "+".join(m.backend for m in members)

    def _run_members(self, x: np.ndarray) -> np.ndarray:
        """(M, B, T, K) outputs of every member on the same batch."""
        return np.stack([m.infer(x) for m in self.members])

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._run_members(x).mean(0)

    def infer_spread(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Degrees (B, T, 10) -> (mean, sd), each (B, T, K) float32 per kg."""
        if self.closed_:
            raise EngineError(f"engine {self.name!r} is closed", reason="closed")
        x = validate_input(x, self.T, len(self.in_cols))
        ys = self._run_members(x).astype(np.float64)  # (M, B, T, K)
        return ys.mean(0).astype(np.float32), ys.std(0).astype(np.float32)

    def close(self) -> None:
        if self.owns_members:
            for m in self.members:
                m.close()
        super().close()


def infer_with_spread(engine, x) -> tuple[np.ndarray, np.ndarray | None]:
    """(mean (B, T, K), per-frame sd across members or None for a single engine)."""
    if isinstance(engine, EnsembleEngine):
        return engine.infer_spread(x)
    return engine.infer(x), None


def write_manifest(path, members, name: str) -> Path:
    """Write an ensemble manifest listing ``members`` (paths; stored relative to the
    manifest's folder when they are inside it)."""
    path = Path(path)
    base = path.resolve().parent
    rel = []
    for m in members:
        p = Path(m).resolve()
        rel.append(str(p.relative_to(base)) if p.is_relative_to(base) else str(p))
    path.write_text(json.dumps({"format": MANIFEST_TAG, "name": str(name), "members": rel}, indent=2) + "\n")
    return path


def is_manifest(path) -> bool:
    """True for a ``.json`` file (ensemble manifests are the only JSON engines)."""
    return Path(path).suffix.lower() == ".json"


def read_manifest(path) -> tuple[str, list[Path]]:
    """(name, member paths) of a manifest; EngineError naming the problem."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(f"ensemble manifest {path} does not exist", reason="missing_file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(
            f"ensemble manifest {path} is not readable JSON: {exc}", reason="bad_manifest"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != MANIFEST_TAG:
        raise EngineError(
            f'{path} is not an ensemble manifest (needs "format": "{MANIFEST_TAG}")', reason="bad_manifest"
        )
    unknown = sorted(set(obj) - {"format", "name", "members"})
    members = obj.get("members")
    if (
        unknown
        or not isinstance(members, list)
        or not all(isinstance(m, str) for m in members)
        or not isinstance(obj.get("name", ""), str)
    ):
        raise EngineError(
            f'ensemble manifest {path}: needs a "members" list of file paths '
            f'and an optional "name" string (unknown keys {unknown})',
            reason="bad_manifest",
        )
    return obj.get("name") or path.stem, [(path.parent / m) for m in members]


def load_ensemble(paths, *, name: str | None = None, **load_kw) -> EnsembleEngine:
    """Load every member file with ``load_engine(**load_kw)`` into one EnsembleEngine."""
    members = []
    try:
        for p in paths:
            members.append(load_engine(p, **load_kw))
        return EnsembleEngine(members, name=name, owns_members=True)
    except BaseException:
        for m in members:
            m.close()
        raise


def parse_spec(spec) -> list[str]:
    """``"A.pt,B.onnx"`` -> ["A.pt", "B.onnx"] (one entry for a plain path)."""
    parts = [p.strip() for p in str(spec).split(",")]
    if any(not p for p in parts):
        raise EngineError(
            f"ensemble list {str(spec)!r} has an empty entry: give member files "
            "separated by commas, e.g. LSTM_JM60.pt,Mamba_JM60.pt",
            reason="bad_ensemble",
        )
    return parts


def load_any(spec, **load_kw) -> Engine:
    """An engine from ``spec``: an ensemble manifest (.json), a comma-separated list of
    member files (an ensemble), or any single engine file."""
    parts = parse_spec(spec)
    if len(parts) > 1:
        return load_ensemble(parts, **load_kw)
    if is_manifest(spec):
        name, members = read_manifest(spec)
        return load_ensemble(members, name=name, **load_kw)
    return load_engine(spec, **load_kw)
