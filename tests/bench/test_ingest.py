"""`bench ingest` machinery on a tiny load (numbers are not asserted: no timing tests)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from g2h_edge.bench.ingest import IngestConfig, build_schedule, run_ingest
from g2h_edge.cli import cli


@pytest.mark.parametrize("ics", ["detect", "external"])
def test_bench_ingest_small_run_closes_cycles(ics):
    lines: list[str] = []
    out = run_ingest(IngestConfig(streams=2, seconds=4.0, ics=ics, repeats=1), echo=lines.append)
    msgs, frames = build_schedule(IngestConfig(streams=2, seconds=4.0, ics=ics))
    assert out["frames"] == frames == 2 * 800 and out["messages"] == len(msgs)
    assert out["cycles"] > 0
    assert out["ingest_us_per_frame"] > out["decode_us_per_frame"] > 0
    text = "\n".join(lines)
    assert "decode only (baseline)" in text and "decode + Pipeline.handle" in text


def test_bench_ingest_cli_refuses_bad_option():
    res = CliRunner().invoke(cli, ["bench", "ingest", "--ics", "both"])
    assert res.exit_code != 0 and "both" in res.output
