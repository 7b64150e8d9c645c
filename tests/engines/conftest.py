"""Engine-test fixtures: a private g2h-edge config dir (the build key of .pt2/.plan
signatures) so tests never read or create the real ~/.config/g2h-edge/build-key."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_build_key_dir(tmp_path_factory):
    before = os.environ.get("G2H_EDGE_CONFIG_DIR")
    os.environ["G2H_EDGE_CONFIG_DIR"] = str(tmp_path_factory.mktemp("g2h-config"))
    yield os.environ["G2H_EDGE_CONFIG_DIR"]
    if before is None:
        os.environ.pop("G2H_EDGE_CONFIG_DIR", None)
    else:
        os.environ["G2H_EDGE_CONFIG_DIR"] = before
