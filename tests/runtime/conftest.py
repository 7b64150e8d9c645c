"""Runtime fixtures: a small real model bundle + engine, and a server on loopback."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from g2h_edge.schema import IN_COLS, JM_COLS


@pytest.fixture(scope="session")
def jm_bundle_path(tmp_path_factory):
    """A joint-moment Transformer bundle with random weights (flagged synthetic)."""
    import torch

    from g2h_edge.io.synth import MU_X, SD_X
    from g2h_edge.models import Bundle, build_model, default_hparams, save_bundle

    torch.manual_seed(0)
    hp = default_hparams("transformer", len(JM_COLS))
    core = build_model("transformer", hp)
    bundle = Bundle(name="test-jm", arch="transformer", hparams=hp,
                    state_dict=core.state_dict(), in_cols=IN_COLS, out_cols=JM_COLS,
                    mean=np.asarray(MU_X, np.float32), std=np.asarray(SD_X, np.float32),
                    task="jm", unit="Nm/kg", T=180,
                    provenance={"source": "tests/runtime/conftest.py",
                                "training_notes": "random init, runtime tests only"},
                    synthetic=True)
    path = tmp_path_factory.mktemp("bundles") / "test_jm.pt"
    save_bundle(bundle, path)
    return path


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
        values = dict(engines=("in-memory",), listen="tcp://127.0.0.1:*",
                      publish="tcp://127.0.0.1:*", allow_synthetic=True,
                      status_interval_s=0.1)
        values.update(overrides)
        cfg = ServerConfig(**values)
        with LocalServer(cfg, engines=engines or [engine]) as srv:
            with OutputCollector(srv.endpoints["publish"]) as col:
                assert col.wait_ready(30), "no status message from the server"
                yield srv, col
    return _run


@pytest.fixture(scope="session")
def mf_bundle_path(tmp_path_factory):
    """A muscle-force LSTM bundle with random weights (flagged synthetic)."""
    import torch

    from g2h_edge.io.synth import MU_X, SD_X
    from g2h_edge.models import Bundle, build_model, default_hparams, save_bundle
    from g2h_edge.schema import MF_COLS

    torch.manual_seed(1)
    hp = default_hparams("lstm", len(MF_COLS))
    core = build_model("lstm", hp)
    bundle = Bundle(name="test-mf", arch="lstm", hparams=hp, state_dict=core.state_dict(),
                    in_cols=IN_COLS, out_cols=MF_COLS,
                    mean=np.asarray(MU_X, np.float32), std=np.asarray(SD_X, np.float32),
                    task="mf", unit="N/kg", T=180,
                    provenance={"source": "tests/runtime/conftest.py",
                                "training_notes": "random init, runtime tests only"},
                    synthetic=True)
    path = tmp_path_factory.mktemp("bundles") / "test_mf.pt"
    save_bundle(bundle, path)
    return path
