"""Shared fixtures and markers.

- ``shared_dir`` / ``reference_dir`` / ``data_dir``: ../shared next to the project; tests that
  need them are skipped when absent (CI has it; a user's clone may not).
- ``gpu`` marker: skipped unless torch sees a CUDA device.
- ``spawn_serve``: a real ``g2h-edge serve`` subprocess, returned once it has started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("G2H_SHARED", ROOT.parent / "shared"))


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def reference_dir(shared_dir) -> Path:
    ref = shared_dir / "reference"
    if not (ref / "parity.npz").is_file():
        pytest.skip(f"published checkpoints are absent from {ref}")
    return ref


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> Path:
    d = shared_dir / "data"
    if not (d / "schreiber2019").is_dir():
        pytest.skip(f"real trials are absent from {d}")
    return d


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory):
    """Factory: ``random_bundle(arch, task, seed=0, name=None)`` writes a bundle of the
    published architecture with random weights (flagged synthetic) and returns its path."""
    import numpy as np
    import torch

    from g2h_edge.io.synth import MU_X, SD_X
    from g2h_edge.models import Bundle, build_model, default_hparams, save_bundle
    from g2h_edge.schema import IN_COLS, TARGET_UNIT, out_cols_for

    def make(arch: str, task: str, *, seed: int = 0, name: str | None = None) -> Path:
        torch.manual_seed(seed)
        out_cols = out_cols_for(task)
        hp = default_hparams(arch, len(out_cols))
        core = build_model(arch, hp)
        name = name or f"test-{arch}-{task}"
        bundle = Bundle(
            name=name,
            arch=arch,
            hparams=hp,
            state_dict=core.state_dict(),
            in_cols=IN_COLS,
            out_cols=out_cols,
            mean=np.asarray(MU_X, np.float32),
            std=np.asarray(SD_X, np.float32),
            task=task,
            unit=TARGET_UNIT[task],
            T=180,
            provenance={"source": "tests/conftest.py", "training_notes": "random init, tests only"},
            synthetic=True,
        )
        path = tmp_path_factory.mktemp("bundles") / f"{name}.pt"
        save_bundle(bundle, path)
        return path

    return make


@pytest.fixture(scope="session")
def pylsl():
    """The pylsl module, once an LSL outlet on this machine was found by name (skips when
    pylsl is missing or LSL discovery does not work here, e.g. multicast blocked)."""
    import uuid

    pylsl = pytest.importorskip("pylsl", reason="pylsl (lsl extra) not installed")
    name = f"g2h_probe_{uuid.uuid4().hex[:8]}"
    out = pylsl.StreamOutlet(pylsl.StreamInfo(name, "probe", 1, 10, pylsl.cf_float32, name))
    ok = bool(pylsl.resolve_byprop("name", name, 1, 5.0))
    del out
    if not ok:
        pytest.skip("LSL stream discovery does not work on this machine (multicast blocked?)")
    return pylsl


@pytest.fixture
def spawn_serve():
    """``spawn_serve(engine, listen, publish, *extra)``: start ``g2h-edge serve`` (synthetic
    models allowed, one thread, unbuffered stderr) as a subprocess and return it after its
    start-up line; the test kills or stops it."""

    def spawn(engine, listen: str, publish: str, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "g2h_edge.cli", "serve", "--engine", str(engine)]
        cmd += ["--allow-synthetic", "--listen", listen, "--publish", publish, "--threads", "1"]
        proc = subprocess.Popen(
            [*cmd, *extra], stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        line = proc.stderr.readline()
        if "g2h-edge serve:" not in line:
            proc.kill()
            raise AssertionError(line + proc.stderr.read())
        return proc

    return spawn


@pytest.fixture
def cli(capsys):
    """``cli(args) -> (exit code, stdout + stderr)``: the real ``g2h-edge`` entry point run
    in-process (a G2HError exits 2), with what a user sees."""
    from g2h_edge.cli import main

    def _run(args) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out + out.err

    return _run
