"""`g2h-edge demo` end to end in a subprocess (short: the example replayed at 20x)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import g2h_edge

DATA = Path(g2h_edge.__file__).resolve().parent / "data"


def test_demo_runs_end_to_end(jm_bundle_path, tmp_path):
    bundled = sorted(DATA.glob("demo_*.pt"))
    # the bundled demo models when the package has them, else a test bundle via --model
    model_args = [] if bundled else ["--model", str(jm_bundle_path)]
    out_dir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "g2h_edge.cli",
            "demo",
            "--speed",
            "20",
            "--out-dir",
            str(out_dir),
            *model_args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count("SYNTHETIC") >= 2 and "NOT physiology" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("example ") and "reject" not in ln]
    assert len(rows) >= 20, out  # 20 s at ~1.05 s per cycle, both sides
    assert "latency p50" in out
    pngs = list(out_dir.glob("demo_*.png"))
    assert pngs and all(p.stat().st_size > 10_000 for p in pngs)
    assert (out_dir / "demo_record.g2hrec").stat().st_size > 0
