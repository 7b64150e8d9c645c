"""Offline cycles from a trial and its events, with the server's own checks.

:func:`cut_cycles` feeds a :class:`~g2h_edge.io.trial.Trial`'s finite frames and its IC
events (force plates, hand-marked c3d events) through the runtime's
:class:`~g2h_edge.gait.assembler.CycleAssembler`, so a cycle from a file is accepted or
rejected exactly as the server would (duration, ``gap`` across an unfilled dropout, ``nan``,
``implausible_angles``, ``missed_ic``, ``step_asymmetry``...). Left cycles come back
mirrored (``mirror_sides``): the right-hip model's input for the left hip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2h_edge.errors import DataError, GaitError
from g2h_edge.gait.assembler import CycleAssembler
from g2h_edge.gait.config import CycleConfig
from g2h_edge.schema import N_IN, SIDES, T, mirror_sides

__all__ = ["TrialCycles", "cut_cycles"]


@dataclass
class TrialCycles:
    """Accepted cycles (``X`` (N, 180, 10) degrees, left ones mirrored) and the rejects."""

    X: np.ndarray
    side: tuple[str, ...]
    t_start: np.ndarray  # (N,) s
    t_end: np.ndarray  # (N,) s
    rejects: list  # [(side, t_start, t_end, reason, message)]
    frames_in: int
    dropout_frames: int

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def reject_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rejects:
            out[r[3]] = out.get(r[3], 0) + 1
        return out


def cut_cycles(
    trial, *, sides=SIDES, config: CycleConfig | None = None, mirror_left: bool = True
) -> TrialCycles:
    """Cycles IC to IC of each side in ``sides`` from ``trial.events`` (see module doc)."""
    events = getattr(trial, "events", None) or {}
    pairs = sorted((float(t), s) for s in SIDES for t in np.asarray(events.get(s, [])))
    if not any(s in sides for _, s in pairs):
        raise DataError(
            f"{getattr(trial, 'source', 'trial')}: no foot-strike events for "
            f"side(s) {list(sides)}: give events (--events FILE.json/.c3d, a "
            "sibling <stem>_events.json, or a c3d EVENT group)",
            reason="no_events",
        )
    t = np.asarray(trial.t, dtype=np.float64)
    q = np.asarray(trial.q, dtype=np.float32)
    ok = np.isfinite(q).all(axis=1)
    t_ok, q_ok = t[ok], q[ok]
    cfg = (
        config
        if config is not None
        else CycleConfig(
            buffer_s=max(6.0, float(t[-1] - t[0]) + 1.0), max_buffer_frames=max(20000, int(t.shape[0]) + 1)
        )
    )
    asm = CycleAssembler(cfg)
    xs, side_out, t0s, t1s, rejects = [], [], [], [], []
    pushed = 0
    for t_ic, side in pairs:
        upto = int(np.searchsorted(t_ok, t_ic, side="right")) + 1  # one frame past the IC
        if upto > pushed:
            asm.push(t_ok[pushed:upto], q_ok[pushed:upto])
            pushed = upto
        try:
            cyc = asm.on_ic(t_ic, side, source="events")
        except GaitError as exc:
            if side in sides:
                rejects.append(
                    (side, float(getattr(exc, "t_start", t_ic)), float(t_ic), exc.reason, str(exc))
                )
            continue
        if cyc is None or side not in sides:
            continue
        x = cyc.x
        xs.append(mirror_sides(x) if (mirror_left and side == "L") else x)
        side_out.append(side)
        t0s.append(cyc.t_start)
        t1s.append(cyc.t_end)
    X = np.stack(xs).astype(np.float32) if xs else np.zeros((0, T, N_IN), np.float32)
    return TrialCycles(
        X=X,
        side=tuple(side_out),
        t_start=np.asarray(t0s, np.float64),
        t_end=np.asarray(t1s, np.float64),
        rejects=rejects,
        frames_in=int(t.shape[0]),
        dropout_frames=int(np.count_nonzero(~ok)),
    )
