"""docs/protocol.md lists every reason code and cycle quality field the code can produce.

Codes are collected from the source with ``ast`` (no list to keep in sync by hand): every
string passed as ``reason=`` to any call, and the reason argument of the reject helpers
(``_err``, ``_reject``, ``_cycle_reject``, ``Reject``, ``count_reject``, ``encode_reject``)
and ``return ("code", message)`` verdicts in the modules that produce wire rejects; quality
keys from the ``quality = {...}`` literal and ``quality["key"] = ...`` assignments. A new
code anywhere there fails until documented.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "g2h_edge"
DOC = ROOT / "docs" / "protocol.md"
#: reject-producing code: wire decoding, the gait package, the runtime
SCANNED = [
    "wire.py",
    *sorted(str(p.relative_to(PKG)) for d in ("gait", "runtime") for p in (PKG / d).glob("*.py")),
]
#: helper name -> index of its reason argument
REASON_ARG = {"_err": 0, "_reject": 1, "_cycle_reject": 1, "Reject": 1, "count_reject": 0, "encode_reject": 1}
#: modules whose reasons are not wire rejects (CLI/bench helpers)
NOT_WIRE = {
    "runtime/cli.py",
    "runtime/record.py",
    "runtime/local.py",
    # its own input checks never reach the wire: a failure becomes the cycle's
    # quality flag `quality_check_failed` with `quality_error` (documented)
    "gait/quality.py",
}


def _str(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_code(s) -> bool:
    return bool(s) and re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", s) is not None


def collect(files) -> tuple[dict[str, str], dict[str, str]]:
    """({reason: file}, {quality key: file}) found in ``files`` (paths under g2h_edge/)."""
    reasons, quality = {}, {}
    for rel in files:
        tree = ast.parse((PKG / rel).read_text(), filename=rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                vals = [_str(k.value) for k in node.keywords if k.arg == "reason"]
                i = REASON_ARG.get(name)
                if i is not None and len(node.args) > i:
                    vals.append(_str(node.args[i]))
                reasons.update({v: rel for v in vals if v})
            elif (
                isinstance(node, ast.Return)
                and isinstance(node.value, ast.Tuple)
                and len(node.value.elts) == 2
                and _is_code(_str(node.value.elts[0]))
            ):
                reasons[_str(node.value.elts[0])] = rel  # ("code", message) verdicts
            elif isinstance(node, ast.Assign):
                for tgt in node.targets:
                    if isinstance(tgt, ast.Name) and tgt.id == "quality" and isinstance(node.value, ast.Dict):
                        quality.update({_str(k): rel for k in node.value.keys if _str(k)})
                    if (
                        isinstance(tgt, ast.Subscript)
                        and isinstance(tgt.value, ast.Name)
                        and tgt.value.id == "quality"
                        and _str(tgt.slice)
                    ):
                        quality[_str(tgt.slice)] = rel
    return reasons, quality


def test_collector_sees_the_known_codes():
    reasons, quality = collect([f for f in SCANNED if f not in NOT_WIRE])
    # a few from each source, so a collector that silently finds nothing cannot pass
    assert {
        "oversize",
        "bad_q_length",
        "gap",
        "missed_ic",
        "no_meta",
        "stream_expired",
        "radians_as_degrees",
        "engine_error",
    } <= set(reasons)
    assert {"gap_filled_frames", "step_fraction", "ic_source"} <= set(quality)


@pytest.mark.parametrize("kind", ["reasons", "quality"])
def test_every_code_is_documented(kind):
    reasons, quality = collect([f for f in SCANNED if f not in NOT_WIRE])
    found = reasons if kind == "reasons" else quality
    doc = DOC.read_text()
    missing = {k: f for k, f in found.items() if f"`{k}`" not in doc}
    assert not missing, f"add these to docs/protocol.md: {missing}"
