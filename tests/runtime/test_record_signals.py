"""Record files (round trip, truncated tail, CLI reader) and SIGTERM handling."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from click.testing import CliRunner

from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.cli import record_cmd
from g2h_edge.runtime.record import RECORD_MAGIC, read_record
from g2h_edge.sources.replay import ReplayConfig, replay
from g2h_edge.wire import decode_output


def test_record_round_trip_and_truncated_tail(run_server, tmp_path):
    rec = tmp_path / "run.g2hrec"
    trial = make_stream(5.0, 100.0, seed=21)
    with run_server(record_path=str(rec)) as (srv, col):
        replay(
            trial, ReplayConfig(address=srv.endpoints["listen"], stream="r1", max_rate=True, with_events=True)
        )
        assert col.wait_ended("r1", 60)
    seen = col.of_type("cycle", "r1")
    contents = read_record(str(rec))
    assert not contents.truncated
    msgs = [decode_output(parts) for _, parts in contents.records]
    recorded = [m for m in msgs if m["type"] == "cycle"]
    assert len(recorded) == len(seen) > 0
    for a, b in zip(recorded, seen):
        np.testing.assert_array_equal(a["y"], b["y"])
        assert (a["side"], a["cycle"], a["t_end"]) == (b["side"], b["cycle"], b["t_end"])
    assert msgs[-1]["type"] == "status"  # final status written at shutdown

    # a crash mid-write leaves a partial record: the reader keeps everything before it
    data = rec.read_bytes()
    cut = tmp_path / "cut.g2hrec"
    cut.write_bytes(data[:-5])
    part = read_record(str(cut))
    assert part.truncated and len(part.records) == len(contents.records) - 1
    result = CliRunner().invoke(record_cmd, [str(cut)])
    assert result.exit_code == 0, result.output
    assert "truncated tail" in result.output and "cycle  r1 R" in result.output
    out = tmp_path / "cycles.npz"
    result = CliRunner().invoke(record_cmd, [str(rec), "--export", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as z:
        assert z["y"].shape == (len(seen), 180, 3)


def test_record_refuses_foreign_file(tmp_path):
    from g2h_edge.errors import DataError
    from g2h_edge.runtime.record import RecordWriter

    other = tmp_path / "notes.txt"
    other.write_text("not a record")
    with pytest.raises(DataError, match="not a g2h-edge record file"):
        RecordWriter(str(other)).open()
    assert RECORD_MAGIC.startswith(b"G2HREC")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_cycles_flushes_record_and_exits_0(jm_bundle_path, spawn_serve, tmp_path, sig):
    rec = tmp_path / "sig.g2hrec"
    addr_in, addr_out = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    proc = spawn_serve(jm_bundle_path, addr_in, addr_out, "--record", str(rec), "--log-interval", "0.2")
    try:
        trial = make_stream(5.0, 100.0, seed=22)
        cfg = ReplayConfig(address=addr_in, stream="sig", max_rate=True, with_events=True, send_end=False)
        replay(trial, cfg)
        time.sleep(0.5)
        proc.send_signal(sig)
        assert proc.wait(60) == 0
        assert "frames/s" in proc.stderr.read()  # the periodic summary line
    finally:
        if proc.poll() is None:
            proc.kill()
    contents = read_record(str(rec))
    assert not contents.truncated
    msgs = [decode_output(p) for _, p in contents.records]
    n_cycles = sum(m["type"] == "cycle" for m in msgs)
    expected = sum(int(np.sum(trial.events[s][1:] <= trial.t[-1])) for s in "RL")
    assert n_cycles == expected
    assert msgs[-1]["type"] == "status" and msgs[-1]["streams"]["sig"]["cycles"] == expected
