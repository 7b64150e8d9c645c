"""The command line as a user runs it (a real subprocess of the installed entry point)."""

import subprocess
import sys


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "g2h_edge.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command():
    out = _run("--help")
    assert out.returncode == 0, out.stderr
    for name in (
        "demo",
        "serve",
        "replay",
        "models",
        "predict",
        "synth",
        "benchmark",
        "train",
        "evaluate",
        "export",
        "bridge",
        "bench",
    ):
        assert name in out.stdout


def test_unknown_command_is_a_usage_error():
    out = _run("frobnicate")
    assert out.returncode == 2
    assert "No such command" in out.stderr
