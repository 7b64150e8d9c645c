"""ServerConfig validation, engine checks, several engines per cycle."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.errors import ConfigError
from g2h_edge.io.synth import make_stream
from g2h_edge.runtime.config import ServerConfig, server_config
from g2h_edge.runtime.server import Server
from g2h_edge.schema import JM_COLS, MF_COLS
from g2h_edge.sources.replay import ReplayConfig, replay

BAD = [
    ({"engines": ()}, "non-empty list"),
    ({"engines": "model.onnx"}, "non-empty list"),
    ({"listen": None}, "exactly one of"),
    ({"connect": ("tcp://127.0.0.1:1",)}, "exactly one of"),
    ({"publish": "localhost:5556"}, "not a ZeroMQ endpoint"),
    ({"sides": ("R", "X")}, "R, L or R,L"),
    ({"body_mass_kg": 0.0}, "body_mass_kg"),
    ({"default_rate_hz": 5.0}, "default_rate_hz"),
    ({"stream_timeout_s": "10"}, "stream_timeout_s"),
    ({"max_batch": 0}, "max_batch"),
    ({"allow_synthetic": "yes"}, "allow_synthetic"),
    ({"cycle": {}}, "CycleConfig"),
]


@pytest.mark.parametrize("over,match", BAD)
def test_bad_server_configs(over, match):
    values = {"engines": ("m.onnx",), **over}
    with pytest.raises(ConfigError, match=match):
        ServerConfig(**values)


def test_unknown_config_key():
    with pytest.raises(ConfigError, match="unknown ServerConfig key"):
        server_config({"engines": ("m.onnx",), "listen_port": 5555})
    assert server_config({"engines": ["m.onnx"]}).engines == ("m.onnx",)


def test_synthetic_models_need_allow_synthetic(engine):
    cfg = ServerConfig(engines=("x",), listen="tcp://127.0.0.1:*", publish="tcp://127.0.0.1:*")
    with pytest.raises(ConfigError, match="SYNTHETIC") as info:
        Server(cfg, engines=[engine]).start()
    assert info.value.reason == "synthetic_model"


def test_every_cycle_is_published_by_every_engine(run_server, jm_bundle_path, mf_bundle_path):
    from g2h_edge.engines import load_engine

    engines = [load_engine(p, threads=1) for p in (jm_bundle_path, mf_bundle_path)]
    trial = make_stream(5.0, 100.0, seed=41, body_mass_kg=80.0)
    try:
        with run_server(engines=engines) as (srv, col):
            replay(
                trial,
                ReplayConfig(address=srv.endpoints["listen"], stream="two", max_rate=True, with_events=True),
            )
            assert col.wait_ended("two", 60)
    finally:
        for e in engines:
            e.close()
    cycles = col.of_type("cycle", "two")
    by_model = {m: [c for c in cycles if c["model"] == m] for m in ("test-jm", "test-mf")}
    keys = [{(c["side"], c["cycle"]) for c in v} for v in by_model.values()]
    assert keys[0] == keys[1] and len(keys[0]) >= 6
    assert all(c["outputs"] == list(JM_COLS) for c in by_model["test-jm"])
    assert all(
        c["outputs"] == list(MF_COLS) and c["unit"] == "N/kg" and c["unit_abs"] == "N"
        for c in by_model["test-mf"]
    )
    assert all(np.isfinite(c["y"]).all() and c["y"].shape == (180, 14) for c in by_model["test-mf"])
    status = col.of_type("status")[-1]
    assert {e["name"] for e in status["engines"]} == {"test-jm", "test-mf"}
