"""Bench fixtures: a small real model bundle (random weights, flagged synthetic)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def jm_bundle_path(random_bundle):
    return random_bundle("transformer", "jm", seed=0, name="bench-jm")
