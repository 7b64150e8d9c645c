"""An ensemble served over real loopback sockets: mean, y_sd and quality in every cycle."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge import wire
from g2h_edge.gait import resample_cycle
from g2h_edge.io.synth import make_stream
from g2h_edge.schema import mirror_sides
from g2h_edge.sources.replay import ReplayConfig, replay


@pytest.fixture(scope="module")
def member_paths(random_bundle):
    return [
        random_bundle("lstm", "jm", seed=11, name="ens-a"),
        random_bundle("lstm", "jm", seed=12, name="ens-b"),
    ]


def test_ensemble_cycles_carry_spread_and_quality(member_paths):
    from g2h_edge.engines import load_engine
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector

    spec = ",".join(str(p) for p in member_paths)
    cfg = ServerConfig(
        engines=(spec,),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
        engine_threads=1,
    )
    trial = make_stream(6.0, 100.0, seed=4)
    with LocalServer(cfg) as srv:
        with OutputCollector(srv.endpoints["publish"]) as col:
            assert col.wait_ready(30)
            replay(
                trial,
                ReplayConfig(address=srv.endpoints["listen"], stream="ens", max_rate=True, with_events=True),
            )
            assert col.wait_ended("ens", 60)
    cycles = col.of_type("cycle", "ens")
    assert len(cycles) >= 6
    members = [load_engine(p, threads=1) for p in member_paths]
    x = np.stack([resample_cycle(trial.t, trial.q, c["t_start"], c["t_end"]) for c in cycles])
    x = np.stack([xi if c["side"] == "R" else mirror_sides(xi) for xi, c in zip(x, cycles)]).astype(
        np.float32
    )
    ys = np.stack([m.infer(x) for m in members])  # (2, N, T, K)
    for i, c in enumerate(cycles):
        assert c["model"] == "ens-a+ens-b" and c["backend"] == "ensemble:torch+torch"
        np.testing.assert_allclose(c["y"], ys[:, i].mean(0), rtol=0, atol=1e-5)
        np.testing.assert_allclose(c["y_sd"], ys[:, i].std(0), rtol=0, atol=1e-5)
        q = c["quality"]
        assert q["y_sd_mean"] == pytest.approx(float(ys[:, i].std(0).mean()), rel=1e-3)
        assert isinstance(q["flags"], list) and "ood_z" in q and "ood_channel" in q
        assert q["ic_source"] == "external"
    for m in members:
        m.close()


def test_a_false_ic_flags_the_cycles_against_their_neighbours(run_server):
    """An extra right IC in mid-cycle (a false detection) makes two short cycles; with the
    assembler's own duration/step checks relaxed they are published, and both are flagged
    against the stream's previous right cycles, the others are not."""
    from g2h_edge.gait import CycleConfig

    trial = make_stream(8.0, 100.0, seed=6)
    r = list(trial.events["R"])
    fake = 0.5 * (r[4] + r[5])
    trial.events["R"] = np.array(sorted(r + [fake]))
    relaxed = CycleConfig(min_cycle_s=0.3, min_step_fraction=0.0)
    with run_server(cycle=relaxed) as (srv, col):
        replay(
            trial, ReplayConfig(address=srv.endpoints["listen"], stream="nb", max_rate=True, with_events=True)
        )
        assert col.wait_ended("nb", 60)
    right = {
        round(c["t_end"], 4): c["quality"]["flags"] for c in col.of_type("cycle", "nb") if c["side"] == "R"
    }
    bad = {round(fake, 4), round(r[5], 4)}
    assert bad <= set(right) and len(right) >= 5
    for t_end, flags in right.items():
        assert ("duration_vs_neighbours" in flags) == (t_end in bad), (t_end, flags)


def test_wire_y_sd_roundtrip_and_refusal():
    y = np.arange(180 * 3, dtype=np.float32).reshape(180, 3)
    kw = dict(
        stream="s",
        side="R",
        cycle=0,
        t_start=0.0,
        t_end=1.0,
        model="m",
        sha256="x",
        backend="torch",
        outputs=["a", "b", "c"],
        unit="Nm/kg",
        y=y,
        quality={"flags": ["short_cycle"]},
        latency_ms=1.0,
        synthetic=False,
    )
    msg = wire.decode_output(wire.encode_cycle(**kw, y_sd=y / 10))
    np.testing.assert_array_equal(msg["y_sd"], y / 10)
    assert msg["quality"]["flags"] == ["short_cycle"]
    assert "y_sd" not in wire.decode_output(wire.encode_cycle(**kw))
    with pytest.raises(wire.WireError, match="y_sd has shape"):
        wire.encode_cycle(**kw, y_sd=y[:10])


def test_predict_ensemble_writes_spread_and_quality(member_paths, tmp_path):
    from click.testing import CliRunner

    from g2h_edge.io.cli import predict_cmd
    from g2h_edge.io.npz import write_gait2hip_npz
    from g2h_edge.io.synth import make_cohort

    d = make_cohort("jm", 2, seed=1, trials_per_condition=1)
    d.X[0, :, 7] *= -1  # a flipped right ankle
    write_gait2hip_npz(tmp_path / "in.npz", d)
    spec = ",".join(str(p) for p in member_paths)
    for out in ("p.npz", "p.csv"):
        res = CliRunner().invoke(
            predict_cmd,
            [
                "--ensemble",
                spec,
                "--input",
                str(tmp_path / "in.npz"),
                "-o",
                str(tmp_path / out),
                "--allow-synthetic",
            ],
        )
        assert res.exit_code == 0, res.output
        assert "cycle 0: " in res.output and "ankle_flip_r" in res.output
    with np.load(tmp_path / "p.npz") as z:
        assert z["y_sd"].shape == z["y"].shape and z["y_sd_mean"].shape == (d.n,)
        assert "ankle_flip_r" in str(z["quality_flags"][0]) and np.isfinite(z["ood_z"]).all()
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert "hip_flexion_r_moment_sd" in header and "quality_flags" in header
