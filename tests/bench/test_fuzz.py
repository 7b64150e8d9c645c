"""The fuzz bench, small: hostile messages vs a real server with two healthy streams."""

from __future__ import annotations

from collections import Counter

from g2h_edge.bench.fuzz import FuzzConfig, run_fuzz
from g2h_edge.bench.hostile import MESSAGE_REASONS, HostileGenerator


def test_generator_is_seeded_and_covers_every_category():
    a = HostileGenerator(seed=5).messages(3000)
    b = HostileGenerator(seed=5).messages(3000)
    assert [(p, r) for p, r in a] == [(p, r) for p, r in b]
    assert a != HostileGenerator(seed=6).messages(3000)
    reasons = Counter(r for _, r in a)
    assert reasons[None] > 0 and set(reasons) - {None} <= MESSAGE_REASONS
    # every message-level reason except the server-capacity ones is produced
    assert MESSAGE_REASONS - set(reasons) == {"too_many_streams", "too_many_sources"}


def test_fuzz_small(jm_bundle_path):
    res = run_fuzz(
        FuzzConfig(messages=2500, seed=1, engine=str(jm_bundle_path), healthy_s=15.0, timeout_s=120),
        echo=lambda *_: None,
    )
    assert res["finished"] and res["server_alive"]
    assert res["loop_errors"] == 0 and res["internal_errors"] == 0
    assert res["healthy_cycles_clean"] >= 20
    assert res["healthy_lost"] == 0 and res["healthy_extra"] == 0 and res["healthy_moved"] == 0
    assert res["healthy_max_abs_dy"] < 1e-4
    assert res["healthy_rejects_fuzz"] == res["healthy_rejects_clean"]
    assert res["reject_mismatch"] == {}, res["reject_mismatch"]
    assert sum(res["message_rejects"].values()) == 2500 - res["accepted_hostile"]
    assert res["published_rejects_match_status"]
