"""Replay: nothing lost to a late subscriber, pacing, files, events, CLI."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
import zmq

from g2h_edge import wire
from g2h_edge.errors import ConfigError, DataError
from g2h_edge.io.synth import make_stream
from g2h_edge.io.trial import events_path_for, write_events_json, write_trial_csv
from g2h_edge.sources.replay import ReplayConfig, build_messages, load_trial_file, replay


def _collect(addr, until_end, out):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind(addr) if until_end == "bind" else sub.connect(addr)
    while True:
        if not sub.poll(10000):
            break
        msg = wire.decode_input(sub.recv_multipart())
        out.append(msg)
        if isinstance(msg, wire.End):
            break
    sub.close(0)


def test_late_subscriber_loses_nothing(tmp_path):
    trial = make_stream(3.0, 200.0, seed=31)
    addr = f"ipc://{tmp_path}/replay"
    cfg = ReplayConfig(
        address=addr, bind=True, stream="late", max_rate=True, with_events=True, frames_per_message=9
    )
    stats = {}
    th = threading.Thread(target=lambda: stats.update(s=replay(trial, cfg)))
    th.start()
    time.sleep(0.5)  # the publisher is waiting, nobody listens yet
    got: list = []
    _collect(addr, "connect", got)
    th.join(30)
    frames = [m for m in got if isinstance(m, wire.Frames)]
    assert isinstance(got[0], wire.Meta) and isinstance(got[-1], wire.End)
    assert [f.seq for f in frames] == list(range(len(frames)))
    np.testing.assert_array_equal(np.concatenate([f.t for f in frames]), trial.t)
    np.testing.assert_array_equal(np.concatenate([f.q for f in frames]), trial.q)
    ics = sorted(ev for f in frames for ev in f.ic)
    assert ics == sorted((float(x), s) for s in "RL" for x in trial.events[s])
    assert stats["s"].frames == trial.t.shape[0]


def test_real_time_pacing(tmp_path):
    trial = make_stream(1.0, 100.0, seed=32)
    addr = f"ipc://{tmp_path}/paced"
    got: list = []
    th = threading.Thread(target=_collect, args=(addr, "bind", got))
    th.start()
    st = replay(trial, ReplayConfig(address=addr, stream="p", speed=2.0))
    th.join(30)
    assert 0.4 <= st.wall_s and isinstance(got[-1], wire.End)


def test_file_formats(tmp_path):
    trial = make_stream(4.0, 100.0, seed=33, body_mass_kg=65.0)
    csv = tmp_path / "walk_angles.csv"
    write_trial_csv(csv, trial)
    write_events_json(events_path_for(csv), trial)
    back = load_trial_file(csv)
    assert back.body_mass_kg == 65.0 and set(back.events) == {"R", "L"}
    msgs = build_messages(back, ReplayConfig(stream="csv", with_events=True, meta_interval_s=1.0))
    metas = [m for m in (wire.decode_input(p) for _, p in msgs) if isinstance(m, wire.Meta)]
    assert len(metas) >= 4  # repeated every second
    assert metas[0].body_mass_kg == 65.0
    from g2h_edge.io.npz import write_gait2hip_npz
    from g2h_edge.io.synth import make_cohort

    npz = tmp_path / "cohort.npz"
    write_gait2hip_npz(npz, make_cohort("jm", 2, seed=1, trials_per_condition=1))
    tr = load_trial_file(npz, npz_rate_hz=150.0)
    assert tr.rate_hz == pytest.approx(150.0) and len(tr.events["R"]) >= 2


def test_bad_replay_inputs(tmp_path):
    with pytest.raises(ConfigError, match="speed"):
        ReplayConfig(speed=0)
    with pytest.raises(ConfigError, match="frames_per_message"):
        ReplayConfig(frames_per_message=5000)
    with pytest.raises(wire.WireError, match="stream id"):
        ReplayConfig(stream="has space")
    with pytest.raises(DataError, match="does not exist"):
        load_trial_file(tmp_path / "missing.mot")
    trial = make_stream(1.0, 100.0, seed=34)
    trial.events = {}
    with pytest.raises(DataError, match="no IC events"):
        build_messages(trial, ReplayConfig(with_events=True))
    with pytest.raises(DataError, match="no subscriber"):
        replay(
            trial,
            ReplayConfig(address=f"ipc://{tmp_path}/none", bind=True, wait_subscriber_s=0.2, linger_s=0.1),
        )


def test_replay_cli_against_a_server(tmp_path):
    from click.testing import CliRunner

    from g2h_edge.runtime.cli import replay_cmd

    trial = make_stream(4.0, 100.0, seed=35)
    csv = tmp_path / "walk_angles.csv"
    write_trial_csv(csv, trial)
    write_events_json(events_path_for(csv), trial)
    addr = f"ipc://{tmp_path}/cli"
    got: list = []
    th = threading.Thread(target=_collect, args=(addr, "bind", got))
    th.start()
    res = CliRunner().invoke(
        replay_cmd,
        [
            str(csv),
            "--connect",
            addr,
            "--max-rate",
            "--with-events",
            "--frames-per-message",
            "25",
            "--no-confirm",
        ],
    )
    th.join(30)
    assert res.exit_code == 0, res.output
    assert "sent" in res.output
    frames = [m for m in got if isinstance(m, wire.Frames)]
    assert frames[0].stream == "walk_angles" and len(frames) == 16
    assert sum(len(f.ic) for f in frames) == sum(len(v) for v in trial.events.values())


def test_non_finite_frames_are_left_out():
    trial = make_stream(2.0, 100.0, seed=36)
    trial.q = trial.q.copy()
    trial.q[50:53, 2] = np.nan  # a marker dropout
    msgs = build_messages(trial, ReplayConfig(stream="gaps"))
    frames = [m for m in (wire.decode_input(p) for _, p in msgs) if isinstance(m, wire.Frames)]
    t = np.concatenate([f.t for f in frames])
    assert t.shape[0] == trial.t.shape[0] - 3 and not np.isin(trial.t[50:53], t).any()
    trial.q[:] = np.nan
    with pytest.raises(DataError, match="no frame with finite angles"):
        build_messages(trial, ReplayConfig(stream="gaps"))


# --- the server's confirmation (issue 16.8): real Server, real loopback sockets ----------


@pytest.fixture(scope="module")
def jm_engine(random_bundle):
    from g2h_edge.engines import load_engine

    eng = load_engine(random_bundle("transformer", "jm", seed=0, name="test-jm"), threads=1)
    yield eng
    eng.close()


@contextlib.contextmanager
def _server(engine, **overrides):
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer

    cfg = ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
        **overrides,
    )
    with LocalServer(cfg, engines=[engine]) as srv:
        yield srv


def _trial(*, seed=51, knee_sign=1.0, seconds=5.0):
    from g2h_edge.schema import IN_COLS

    trial = make_stream(seconds, 100.0, seed=seed)
    trial.q = trial.q.copy()
    for col in ("knee_angle_r", "knee_angle_l"):
        trial.q[:, IN_COLS.index(col)] *= knee_sign
    return trial


def _trial_file(tmp_path, *, seconds=5.0, name="walk"):
    trial = _trial(seconds=seconds)
    csv = tmp_path / f"{name}.csv"
    write_trial_csv(csv, trial)
    write_events_json(events_path_for(csv), trial)
    return csv, trial


def _replay_cli(csv, listen, publish, *extra):
    from click.testing import CliRunner

    from g2h_edge.runtime.cli import replay_cmd

    return CliRunner().invoke(
        replay_cmd,
        [str(csv), "--connect", listen, "--results", publish, "--max-rate", "--with-events", *extra],
    )


def test_replay_reports_a_confirmed_stream(jm_engine, tmp_path):
    csv, trial = _trial_file(tmp_path)
    with _server(jm_engine) as srv:
        res = _replay_cli(csv, srv.endpoints["listen"], srv.endpoints["publish"])
    assert res.exit_code == 0, res.output
    expected = sum(int(np.sum(trial.events[s][1:] <= trial.t[-1])) for s in "RL")
    assert f"server: {expected} cycles" in res.output and "confirmed by the server" in res.output


def test_replay_reports_a_blocked_stream(jm_engine, tmp_path):
    """The file readers refuse the old knee sign, so the trial goes in as an object."""
    from g2h_edge.sources.confirm import EXIT_REJECTED, exit_code

    trial = _trial(knee_sign=-1.0)  # the old gait2354 knee sign
    with _server(jm_engine) as srv:
        st = replay(
            trial,
            ReplayConfig(
                address=srv.endpoints["listen"],
                stream="blocked",
                max_rate=True,
                with_events=True,
                results=srv.endpoints["publish"],
            ),
        )
    c = st.confirmation
    assert c.blocked and c.convention == "blocked:knee_sign_gait2354"
    assert c.rejects["knee_sign_gait2354"] > 0 and c.cycles == 0
    assert exit_code(c) == EXIT_REJECTED
    assert "blocked:knee_sign_gait2354" in c.summary(st.frames)


def test_replay_exits_3_on_a_refused_stream(jm_engine, tmp_path):
    csv, trial = _trial_file(tmp_path)
    with _server(jm_engine, max_streams=1) as srv:
        hog = ReplayConfig(
            address=srv.endpoints["listen"],
            stream="hog",
            max_rate=True,
            send_end=False,
            results=srv.endpoints["publish"],
        )
        assert replay(trial, hog).confirmation.confirmed  # holds the only stream slot
        res = _replay_cli(csv, srv.endpoints["listen"], srv.endpoints["publish"], "--confirm-wait", "1")
    assert res.exit_code == 3, res.output
    assert "too_many_streams=" in res.output and "UNCONFIRMED" in res.output


def test_replay_without_a_server_output_exits_4(jm_engine, tmp_path):
    csv, _ = _trial_file(tmp_path, seconds=2.0)
    with _server(jm_engine) as srv:  # a wrong --results: nothing confirms
        res = _replay_cli(csv, srv.endpoints["listen"], f"ipc://{tmp_path}/nothing", "--confirm-wait", "0.5")
    assert res.exit_code == 4, res.output
    assert "UNCONFIRMED: no status from the server" in res.output


@pytest.mark.slow
def test_replay_exits_4_when_the_server_is_killed(random_bundle, spawn_serve, tmp_path):
    import signal

    csv, _ = _trial_file(tmp_path, seconds=6.0)
    listen, publish = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    proc = spawn_serve(random_bundle("transformer", "jm", seed=0, name="test-jm"), listen, publish)
    try:
        killer = threading.Timer(1.5, proc.send_signal, args=(signal.SIGKILL,))
        killer.start()  # mid-replay: 6 s paced at 2x
        from click.testing import CliRunner

        from g2h_edge.runtime.cli import replay_cmd

        res = CliRunner().invoke(
            replay_cmd,
            [
                str(csv),
                "--connect",
                listen,
                "--results",
                publish,
                "--speed",
                "2",
                "--with-events",
                "--confirm-wait",
                "2",
            ],
        )
        killer.join()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert res.exit_code == 4, res.output
    assert "sent" in res.output and "UNCONFIRMED: the server counted" in res.output
