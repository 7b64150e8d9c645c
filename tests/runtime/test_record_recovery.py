"""A record file after a killed writer (issue 16.9): restart appends after whole records,
and the reader reads past torn bytes."""

from __future__ import annotations

import signal
import time
import warnings

import msgpack
import pytest
from click.testing import CliRunner

from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.cli import record_cmd
from g2h_edge.runtime.record import RECORD_MAGIC, RecordWriter, read_record
from g2h_edge.sources.replay import ReplayConfig, replay
from g2h_edge.wire import decode_output


def _torn(payload_len: int = 400) -> bytes:
    """The first bytes of a record whose writer died mid-write: its length says
    ``payload_len`` but only a third of the body made it to disk."""
    body = msgpack.packb([1.0, b"x", b"y" * payload_len], use_bin_type=True)
    return len(body).to_bytes(4, "little") + body[: len(body) // 3]


def _streams(contents) -> dict:
    out: dict = {}
    for _, parts in contents.records:
        m = decode_output(parts)
        if m["type"] == "cycle":
            out[m["stream"]] = out.get(m["stream"], 0) + 1
    return out


@pytest.mark.slow
def test_restart_after_a_killed_writer_keeps_both_sessions(jm_bundle_path, run_server, spawn_serve, tmp_path):
    rec = tmp_path / "run.g2hrec"
    addr_in, addr_out = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    proc = spawn_serve(jm_bundle_path, addr_in, addr_out, "--record", str(rec))
    try:
        replay(
            make_stream(4.0, 100.0, seed=41),
            ReplayConfig(address=addr_in, stream="one", max_rate=True, with_events=True),
        )
        deadline = time.monotonic() + 30
        while not _streams(read_record(str(rec))).get("one") and time.monotonic() < deadline:
            time.sleep(0.05)  # until cycles are on disk
        proc.send_signal(signal.SIGKILL)  # a real kill: no shutdown, no flush
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = read_record(str(rec))
    assert _streams(first)["one"] > 0
    with open(rec, "ab") as f:  # the kill landed mid-record
        f.write(_torn())
    assert read_record(str(rec)).truncated

    with pytest.warns(RuntimeWarning, match="cut a torn tail of"):
        with run_server(record_path=str(rec)) as (srv, col):
            replay(
                make_stream(4.0, 100.0, seed=42),
                ReplayConfig(address=srv.endpoints["listen"], stream="two", max_rate=True, with_events=True),
            )
            assert col.wait_ended("two", 60)
    after = read_record(str(rec))
    assert not after.truncated and after.torn_segments == 0
    assert after.records[: len(first.records)] == first.records
    assert _streams(after) == {"one": _streams(first)["one"], "two": len(col.of_type("cycle", "two"))}
    result = CliRunner().invoke(record_cmd, [str(rec)])
    assert result.exit_code == 0, result.output
    assert "cycle  two R" in result.output and "torn" not in result.output


def _whole(i: int) -> bytes:
    body = msgpack.packb([float(i), b"s", bytes([i]) * 50], use_bin_type=True)
    return len(body).to_bytes(4, "little") + body


@pytest.mark.parametrize(
    "layout, n_records, torn_segments, truncated",
    [
        ([0, 1, "torn", 2, 3], 4, 1, False),  # an old writer appended after torn bytes
        ([0, "torn", "torn", 1], 2, 1, False),  # two torn records in a row: one stretch
        (["torn", 0, 1], 2, 1, False),  # torn right after the magic
        ([0, 1, "torn"], 2, 0, True),  # a truncated tail only
        ([0, "torn", 1, "torn"], 2, 1, True),
        # the torn record's length runs into the records after it, and they parse as its body
        ([0, "torn", 1, 2, 3, 4, 5, 6], 7, 1, False),
    ],
)
def test_reader_reads_past_torn_records(tmp_path, layout, n_records, torn_segments, truncated):
    path = tmp_path / "old.g2hrec"
    path.write_bytes(RECORD_MAGIC + b"".join(_torn() if x == "torn" else _whole(x) for x in layout))
    got = read_record(str(path))
    assert [t for t, _ in got.records] == [float(x) for x in layout if x != "torn"]
    assert len(got.records) == n_records
    assert (got.torn_segments, got.truncated) == (torn_segments, truncated)


@pytest.mark.parametrize(
    "content, kept",
    [
        (RECORD_MAGIC[:3], RECORD_MAGIC),  # killed writing the magic
        (RECORD_MAGIC + _whole(0) + _torn(), RECORD_MAGIC + _whole(0)),
        (RECORD_MAGIC + _whole(0) + b"\x07\x00", RECORD_MAGIC + _whole(0)),  # half a length
    ],
)
def test_writer_cuts_a_torn_tail_before_appending(tmp_path, content, kept):
    path = tmp_path / "r.g2hrec"
    path.write_bytes(content)
    with pytest.warns(RuntimeWarning, match="cut a torn tail"):
        w = RecordWriter(str(path)).open()
    w.write([b"t", b"b"], wall_time_s=5.0)
    w.close()
    assert path.read_bytes().startswith(kept)
    got = read_record(str(path))
    assert not got.truncated and got.torn_segments == 0 and got.records[-1][0] == 5.0


def test_writer_keeps_whole_records_after_a_torn_one(tmp_path):
    """An old writer appended after torn bytes: reopening cuts nothing (the end is whole)."""
    path = tmp_path / "old.g2hrec"
    content = RECORD_MAGIC + _whole(0) + _torn() + b"".join(_whole(i) for i in range(1, 7))
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = RecordWriter(str(path)).open()
    w.write([b"t", b"b"], wall_time_s=7.0)
    w.close()
    assert path.read_bytes().startswith(content)
    got = read_record(str(path))
    assert [t for t, _ in got.records] == [float(i) for i in range(8)]
    assert (got.torn_segments, got.truncated) == (1, False)
