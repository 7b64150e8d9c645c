"""`g2h-edge --help` lists every command with its whole one-line help (none cut)."""

from __future__ import annotations

from g2h_edge.cli import BENCH, COMMANDS, main


def test_help_lines_are_not_cut(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    text = " ".join(out.split())  # undo the terminal wrapping
    assert "..." not in out.split("Commands:")[1]
    assert "bench Benchmarks (each prints ratios against a baseline measured in the same run)." in text
    for name, (_, line) in COMMANDS.items():
        assert f"{name} {line}" in text
    rows = out.split("Commands:")[1].splitlines()
    names = [ln.split()[0] for ln in rows if ln.startswith("  ") and not ln.startswith("   ")]
    assert "bench" in names and names == sorted(names) and BENCH
