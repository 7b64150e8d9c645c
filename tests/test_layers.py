"""Layering of g2h_edge (docs/layout in README, "Layers"), checked by parsing imports with ast.

Every import counts, module-level or lazy (inside a function), relative ones resolved.
The rules (a module's layer is its first package under g2h_edge: ``g2h_edge.gait.detector``
is in ``gait``):

- the core (schema, wire, errors, config, fsutil, security, gait, models, engines, io) never imports
  runtime, train, export, firmware_bridge, sources, bench or cli;
- gait never imports io or engines (pure numpy);
- engines never imports cli or runtime;
- the applications (runtime, train, export, firmware_bridge, sources) never import one
  another;
- library modules never import g2h_edge.cli or g2h_edge.bench. The tools (g2h_edge.bench)
  and the command modules (g2h_edge.cli and each package's ``cli`` module) may import
  anything.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE = {
    "__init__",
    "schema",
    "wire",
    "errors",
    "config",
    "fsutil",
    "security",
    "gait",
    "models",
    "engines",
    "io",
}
NOT_FROM_CORE = {"runtime", "train", "export", "firmware_bridge", "sources", "bench", "cli"}
FORBIDDEN = {"gait": {"io", "engines"}, "engines": {"cli", "runtime"}}
TOOLS = {"bench", "cli"}
APPS = {"runtime", "train", "export", "firmware_bridge", "sources"}

#: imports that break a rule today, each with the move that removes it. The check fails
#: when an entry is no longer needed, so this list only shrinks.
KNOWN: set[tuple[str, str]] = set()


def package_dirs(root: Path) -> dict[str, Path]:
    """Installed package -> folder, from setup.cfg (train/, export/, firmware_bridge/ install
    as subpackages of g2h_edge)."""
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    dirs = {"g2h_edge": root / "g2h_edge"}
    for line in cfg.get("options", "package_dir", fallback="").splitlines():
        if "=" in line:
            name, folder = (x.strip() for x in line.split("=", 1))
            dirs[name] = root / folder
    return dirs


def iter_modules(dirs: dict[str, Path]):
    """``(module name, is_package, path)`` of every .py file under the package folders."""
    for pkg, folder in dirs.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            is_pkg = rel[-1] == "__init__"
            parts = rel[:-1] if is_pkg else rel
            yield ".".join((pkg, *parts)), is_pkg, path


def imports_of(module: str, is_pkg: bool, path: Path) -> set[str]:
    """Absolute names of the g2h_edge modules (or names) ``path`` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return {n for n in out if n == "g2h_edge" or n.startswith("g2h_edge.")}


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_command(name: str) -> bool:
    """The CLI layer: g2h_edge.cli and the ``cli`` module of any package."""
    return layer(name) == "cli" or name.split(".")[-1] == "cli"


def violations(root: Path) -> set[tuple[str, str]]:
    """``{(importer, imported)}`` pairs that break a rule."""
    dirs = package_dirs(root)
    bad = set()
    for module, is_pkg, path in iter_modules(dirs):
        src = layer(module)
        for target in imports_of(module, is_pkg, path):
            dst = layer(target)
            if dst == src or dst == "__init__":
                continue
            if dst not in NOT_FROM_CORE | CORE:  # `from g2h_edge import __version__`
                continue
            wrong = (
                (src in CORE and dst in NOT_FROM_CORE and not is_command(module))
                or dst in FORBIDDEN.get(src, ())
                or (src in APPS and dst in APPS and not is_command(module))
                or (dst in TOOLS and src not in TOOLS and not is_command(module))
            )
            if wrong:
                bad.add((module, ".".join(target.split(".")[:2])))
    return bad


def test_the_layers_hold():
    found = violations(ROOT)
    assert found - KNOWN == set(), sorted(found - KNOWN)
    assert KNOWN - found == set(), f"fixed, remove from KNOWN: {sorted(KNOWN - found)}"


def test_every_module_is_seen():
    names = {m for m, _, _ in iter_modules(package_dirs(ROOT))}
    for m in (
        "g2h_edge.gait.detector",
        "g2h_edge.train.loop",
        "g2h_edge.export.onnx",
        "g2h_edge.firmware_bridge.link",
        "g2h_edge.bench.engine",
    ):
        assert m in names


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "setup.cfg").write_text("[options]\npackage_dir =\n    g2h_edge.train = train\n")
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "rel, text, pair",
    [
        (
            "g2h_edge/gait/bad.py",
            "from g2h_edge.io import read_trial\n",
            ("g2h_edge.gait.bad", "g2h_edge.io"),
        ),
        (
            "g2h_edge/gait/bad.py",
            "def f():\n    import g2h_edge.engines.base\n",
            ("g2h_edge.gait.bad", "g2h_edge.engines"),
        ),
        ("g2h_edge/io/bad.py", "from g2h_edge import runtime\n", ("g2h_edge.io.bad", "g2h_edge.runtime")),
        ("g2h_edge/models/bad.py", "from ..train import loop\n", ("g2h_edge.models.bad", "g2h_edge.train")),
        (
            "g2h_edge/engines/bad.py",
            "from g2h_edge.cli.options import x\n",
            ("g2h_edge.engines.bad", "g2h_edge.cli"),
        ),
        (
            "g2h_edge/runtime/bad.py",
            "from g2h_edge.bench.engine import bench_pair\n",
            ("g2h_edge.runtime.bad", "g2h_edge.bench"),
        ),
        ("train/bad.py", "from g2h_edge.bench import e2e\n", ("g2h_edge.train.bad", "g2h_edge.bench")),
        (
            "g2h_edge/runtime/bad.py",
            "def f():\n    from g2h_edge.export import export_onnx\n",
            ("g2h_edge.runtime.bad", "g2h_edge.export"),
        ),
    ],
)
def test_the_checker_finds_a_crafted_violation(tmp_path, rel, text, pair):
    root = _tree(tmp_path, {rel: text, "g2h_edge/__init__.py": ""})
    assert violations(root) == {pair}


@pytest.mark.parametrize(
    "rel, text",
    [
        ("g2h_edge/io/ok.py", "from g2h_edge.gait import convention\n"),  # io may use gait
        ("g2h_edge/runtime/ok.py", "from g2h_edge.engines import base\n"),
        ("g2h_edge/bench/ok.py", "from g2h_edge.runtime import server\nfrom g2h_edge.cli import x\n"),
        ("g2h_edge/runtime/cli.py", "from g2h_edge.cli.options import torch_engine_options\n"),
        ("g2h_edge/gait/ok.py", "from . import detector\nfrom g2h_edge import __version__\n"),
    ],
)
def test_the_checker_allows_the_right_direction(tmp_path, rel, text):
    root = _tree(tmp_path, {rel: text, "g2h_edge/__init__.py": ""})
    assert violations(root) == set()
