"""One crafted trace per detector gate (g2h_edge.gait.gates.GATES).

Each trace is a slow walk (stride 1.6 s, ~75 steps/min) of foot reaches built from keyframes,
with one artefact that only its gate refuses: with the gate the detector returns exactly the
true ICs (each reach maximum + ic_offset_s), without it a false IC (and, for some, a missed
one). Verified by disabling each gate in turn (docs/gait_events.md, "Gates"). The traces set
the reach directly (angles solved for it), so they specify the rules, not physiology.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from g2h_edge.gait import ICDetectorConfig, OnlineICDetector, foot_reach
from g2h_edge.gait.gates import GATES, PeakMeasures, gate_peak

STRIDE_S = 1.6
PEAK, LOW, TOE = 0.9, -0.75, 0.62  # reach maximum / minimum, toe-off phase
RATE_HZ = 100.0
OFFSET_S = ICDetectorConfig().ic_offset_s


def _walk(t_peak: float, t_end: float = 8.0) -> list[tuple[float, float]]:
    """Keyframes (t, reach) of one foot: maxima at t_peak + k * STRIDE_S, minima TOE later."""
    k0 = math.floor(-t_peak / STRIDE_S) - 1
    keys = []
    for k in range(k0, k0 + int(t_end / STRIDE_S) + 4):
        tp = t_peak + k * STRIDE_S
        keys += [(tp, PEAK), (tp + TOE * STRIDE_S, LOW)]
    return keys


def _splice(keys, t0: float, t1: float, new):
    """Replace the keyframes within [t0, t1] by ``new``."""
    return sorted([k for k in keys if not t0 <= k[0] <= t1] + list(new))


def _keyed(t, keys) -> np.ndarray:
    """Cosine interpolation through keyframes: smooth, flat at every keyframe."""
    kt, kv = np.array(keys).T
    i = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, kt.size - 2)
    u = np.clip((t - kt[i]) / (kt[i + 1] - kt[i]), 0.0, 1.0)
    return kv[i] + (kv[i + 1] - kv[i]) * (1.0 - np.cos(np.pi * u)) / 2.0


def _angles(t, reach_r, reach_l, knee_r_deg=None) -> np.ndarray:
    """(n, 10) deg whose foot reaches are the given ones (hip solved for the knee angle)."""
    q = np.zeros((t.size, 10))
    knee_r = np.full(t.size, 5.0) if knee_r_deg is None else knee_r_deg
    for reach, knee, hip_col, knee_col in ((reach_r, knee_r, 0, 6), (reach_l, np.full(t.size, 5.0), 3, 8)):
        k = np.radians(knee)  # sin(h) + sin(h - k) = 2 sin(h - k/2) cos(k/2)
        q[:, hip_col] = np.degrees(k / 2 + np.arcsin(reach / (2 * np.cos(k / 2))))
        q[:, knee_col] = knee
    return q


def _trace(gate: str):
    """(t, q, true reach maxima [(t, side)]) of the crafted trace for ``gate``."""
    t = np.arange(0.0, 8.0, 1.0 / RATE_HZ)
    kr, kl, knee = _walk(0.5), _walk(1.3), None
    true = [
        (0.5, "R"),
        (1.3, "L"),
        (2.1, "R"),
        (2.9, "L"),
        (3.7, "R"),
        (4.5, "L"),
        (5.3, "R"),
        (6.1, "L"),
        (6.9, "R"),
        (7.7, "L"),
    ]
    if gate == "swing":  # R: a forward wiggle in stance, 0.35 above its stance minimum
        kr = _splice(kr, 2.2, 3.2, [(2.45, 0.35), (2.65, 0.7), (3.09, LOW)])
        kl = _splice(kl, 2.2, 3.2, [(2.75, LOW), (3.0, PEAK)])  # L still behind
        true[3] = (3.0, "L")
    elif gate == "lead":  # R: a pause in mid swing, level with L, then the real maximum
        kr = _splice(kr, 2.9, 3.75, [(3.09, -0.8), (3.35, 0.1), (3.45, 0.04), (3.7, 1.0)])
    elif gate == "other_leg":  # R: kicks forward again in stance while L swings through
        kr = _splice(kr, 2.2, 3.2, [(2.35, 0.0), (2.63, 0.85), (3.09, LOW)])
    elif gate == "knee":  # R: swing with the knee flexed 60 deg (stepping over something)
        kr = _splice(kr, 2.9, 3.75, [(3.09, -0.8), (3.4, 0.3), (3.5, 0.1), (3.7, 1.0)])
        kl = _splice(kl, 3.2, 4.0, [(3.45, LOW), (3.85, -0.8)])
        knee = _keyed(t, [(0.0, 5.0), (3.1, 5.0), (3.35, 60.0), (3.45, 60.0), (3.65, 5.0), (9.0, 5.0)])
    elif gate == "stride":  # R: strikes, slides back and swings again (a stumble) 0.35 s on
        kr = _splice(kr, 3.75, 4.7, [(3.85, -0.2), (4.05, 0.75), (4.6, LOW)])
        kl = _splice(kl, 3.2, 4.4, [(4.2, -0.8)])
    elif gate == "step":  # L: kicks forward (a trip) 0.15 s after R's strike
        kr = _splice(kr, 3.75, 4.6, [(3.9, 0.2)])
        kl = _splice(kl, 3.2, 4.4, [(3.76, -0.8), (3.88, PEAK), (4.1, -0.8)])
    elif gate.startswith("start_"):  # the stream begins in R's stance
        kr, kl = _walk(1.2), _walk(2.0)
        true = [
            (x + k * STRIDE_S, s)
            for k in range(5)
            for x, s in ((1.2, "R"), (2.0, "L"))
            if x + k * STRIDE_S < 7.96
        ]
        if gate == "start_lead":  # ... at a flat R maximum leading L by only 0.67
            kr = _splice(kr, -5, 0.6, [(-0.1, 0.45), (0.02, 0.5), (0.59, LOW)])
            kl = _splice(kl, -5, 0.3, [(-0.1, -0.05), (0.1, -0.25)])
            true.append((0.4, "L"))
        elif gate == "start_edge":  # ... 60 ms after an R maximum (its strike: before it)
            kr, kl = _walk(-0.06), _walk(0.74)
            true = [
                (x + k * STRIDE_S, s)
                for k in range(5)
                for x, s in ((1.54, "R"), (0.74, "L"))
                if x + k * STRIDE_S < 7.96
            ]
        elif gate == "start_curvature":  # ... where R's fall, 0.5 s after its peak, flattens
            kr = _splice(kr, -5, 0.6, [(-0.5, 1.2), (0.1, 0.45), (0.59, LOW)])
            kl = _splice(kl, -5, 0.5, [(-0.5, -0.4), (0.2, -0.8)])
        elif gate == "start_drop":  # ... as R's reach, 0.3 s after its peak, falls steeply
            kr = _splice(kr, -5, 0.6, [(-0.3, 1.2), (-0.01, 1.1), (0.12, 0.45), (0.59, LOW)])
            kl = _splice(kl, -5, 0.5, [(-0.5, -0.4), (0.2, -0.8)])
    return t, _angles(t, _keyed(t, kr), _keyed(t, kl), knee), sorted(true)


def _detect(t, q, chunk: int):
    det = OnlineICDetector(rate_hz=RATE_HZ)
    found = []
    for i in range(0, t.size, chunk):
        found += det.update(t[i : i + chunk], q[i : i + chunk])
    return sorted(found + det.flush()), det.rejected_


def test_every_gate_has_a_trace():
    assert set(GATES) == {
        "swing",
        "lead",
        "other_leg",
        "knee",
        "stride",
        "step",
        "start_lead",
        "start_edge",
        "start_curvature",
        "start_drop",
    }


@pytest.mark.parametrize("chunk", [5, 1000])  # the scalar and the vectorised path
@pytest.mark.parametrize("gate", GATES)
def test_gate_refuses_its_artefact_and_keeps_the_true_ics(gate, chunk):
    t, q, true = _trace(gate)
    found, rejected = _detect(t, q, chunk)
    assert [s for _, s in found] == [s for _, s in true], (found, true)
    err = [t_ic - (t_peak + OFFSET_S) for (t_ic, _), (t_peak, _) in zip(found, true)]
    assert max(abs(e) for e in err) < 0.02, err
    assert rejected.get(gate, 0) >= 1, rejected


def test_traces_set_the_reach():
    """The angles of a trace give back the keyed reach (the solve is exact)."""
    t = np.arange(0.0, 2.0, 0.01)
    r, l_ = _keyed(t, _walk(0.5)), _keyed(t, _walk(1.3))
    knee = _keyed(t, [(0.0, 5.0), (0.8, 60.0), (2.0, 5.0)])
    np.testing.assert_allclose(foot_reach(_angles(t, r, l_, knee)), np.stack([r, l_], 1), atol=1e-9)


def _measures(**kw) -> PeakMeasures:
    ok = dict(
        lead_reach=1.5,
        swing_rise_reach=1.6,
        stance_seen=True,
        other_speed_reach_s=-2.0,
        knee_deg=5.0,
        vertex_lead_s=0.0,
        curvature=-5.0,
        drop_after_reach=0.01,
    )
    return PeakMeasures(**{**ok, **kw})


@pytest.mark.parametrize(
    "changes, gate",
    [
        ({}, None),
        ({"swing_rise_reach": 0.79}, "swing"),
        ({"swing_rise_reach": 0.5, "stance_seen": False, "lead_reach": 0.9}, "start_lead"),
        ({"swing_rise_reach": 0.5, "stance_seen": False, "vertex_lead_s": 0.021}, "start_edge"),
        ({"swing_rise_reach": 0.5, "stance_seen": False, "curvature": 0.0}, "start_curvature"),
        ({"swing_rise_reach": 0.5, "stance_seen": False, "drop_after_reach": 0.09}, "start_drop"),
        ({"swing_rise_reach": 0.5, "stance_seen": False}, None),
        ({"lead_reach": 0.59}, "lead"),
        ({"other_speed_reach_s": 1.01}, "other_leg"),
        ({"knee_deg": 35.1}, "knee"),
    ],
)
def test_gate_peak_rules(changes, gate):
    """The rules at their default thresholds (docs/gait_events.md, "Gates")."""
    assert gate_peak(_measures(**changes), ICDetectorConfig()) == gate
