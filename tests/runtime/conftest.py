"""Runtime fixtures: a small real model bundle + engine, and a server on loopback."""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture(scope="session")
def jm_bundle_path(random_bundle):
    """A joint-moment Transformer bundle with random weights (flagged synthetic)."""
    return random_bundle("transformer", "jm", seed=0, name="test-jm")


@pytest.fixture(scope="session")
def engine(jm_bundle_path):
    from g2h_edge.engines import load_engine

    eng = load_engine(jm_bundle_path, threads=1)
    yield eng
    eng.close()


@pytest.fixture
def run_server(engine):
    """``with run_server(**config) as (srv, col):`` a server on OS-picked loopback ports and
    a subscriber that is already receiving (nothing published after entry is missed)."""
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector

    @contextlib.contextmanager
    def _run(engines=None, **overrides):
        values = dict(
            engines=("in-memory",),
            listen="tcp://127.0.0.1:*",
            publish="tcp://127.0.0.1:*",
            allow_synthetic=True,
            status_interval_s=0.1,
        )
        values.update(overrides)
        cfg = ServerConfig(**values)
        with LocalServer(cfg, engines=engines or [engine]) as srv:
            with OutputCollector(srv.endpoints["publish"]) as col:
                assert col.wait_ready(30), "no status message from the server"
                yield srv, col

    return _run


@pytest.fixture(scope="session")
def mf_bundle_path(random_bundle):
    """A muscle-force LSTM bundle with random weights (flagged synthetic)."""
    return random_bundle("lstm", "mf", seed=1, name="test-mf")


@pytest.fixture(scope="session")
def jm_onnx_path(jm_bundle_path, tmp_path_factory):
    """The joint-moment test bundle exported to ONNX: a `serve` subprocess on it starts
    without importing torch (faster fault/proxy tests)."""
    from g2h_edge.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "test-jm.onnx"
    export_onnx(jm_bundle_path, path)
    return path
