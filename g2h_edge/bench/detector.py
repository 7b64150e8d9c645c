"""Measure the online IC detector against known initial contacts.

    python -m g2h_edge.bench.detector /path/to/shared/data [--chunk 10] [--tol-ms 60]
                                     [--no-synth] [--bench]

prints one row per trial (real trials of ``schreiber2019/`` at 100 Hz, ``opensim_gait2354/``
at 60 Hz converted from the old knee sign, and synthetic streams at 50-1000 Hz when
``g2h_edge.io.synth.make_stream`` is available) and pooled numbers: detection rate, false
detections, median / 95th-percentile |timing error| (ms), detection delay (ms from the true IC
to the last sample of the update that returned it; flushes count at the stream's last sample).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from g2h_edge.errors import DataError
from g2h_edge.gait.config import ICDetectorConfig
from g2h_edge.gait.detector import OnlineICDetector
from g2h_edge.schema import SIDES

__all__ = [
    "SYNTH_MARGINS_S",
    "TrialResult",
    "match_events",
    "run_online",
    "evaluate_trial",
    "pool",
    "evaluate_data_dir",
    "synthetic_walk",
    "synthetic_trials",
    "format_table",
    "benchmark_detector",
    "main",
]


#: (head, tail) margins for synthetic walks: the real trials' shortest lead / tail
SYNTH_MARGINS_S = (0.05, 0.03)


@dataclass
class TrialResult:
    """Matching of one trial's detected ICs against its true ICs (both sides)."""

    name: str
    rate_hz: float
    n_true: int = 0
    n_detected: int = 0
    n_matched: int = 0
    n_false: int = 0
    errors_s: list = field(default_factory=list)  # detected - true, matched pairs
    delays_s: list = field(default_factory=list)  # confirm time - true IC, matched pairs
    matched_true_s: list = field(default_factory=list)  # true IC time of each matched pair
    t_start: float = 0.0  # first frame of the trial
    missed: list = field(default_factory=list)  # (side, true time)
    false: list = field(default_factory=list)  # (side, detected time)

    @property
    def detection_rate(self) -> float:
        return self.n_matched / self.n_true if self.n_true else float("nan")


def match_events(true_t, det_t, tol_s: float = 0.06):
    """One-to-one matching of detected to true event times (s) within ``tol_s``, closest
    pairs first. Returns ``(pairs [(i_true, j_det)], missed [i_true], false [j_det])``."""
    true_t, det_t = np.asarray(true_t, float), np.asarray(det_t, float)
    cand = [
        (abs(d - tr), i, j)
        for i, tr in enumerate(true_t)
        for j, d in enumerate(det_t)
        if abs(d - tr) <= tol_s
    ]
    used_i, used_j, pairs = set(), set(), []
    for _, i, j in sorted(cand):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    missed = [i for i in range(len(true_t)) if i not in used_i]
    false = [j for j in range(len(det_t)) if j not in used_j]
    return sorted(pairs), missed, false


def run_online(
    t, q, config: ICDetectorConfig | None = None, *, rate_hz: float | None = None, chunk: int = 10
):
    """Stream a trial through :class:`OnlineICDetector`; returns ``[(t_ic, side, t_confirm)]``
    where ``t_confirm`` is the last frame of the update (or flush) that returned the IC."""
    t = np.asarray(t, dtype=np.float64)
    if rate_hz is None:
        rate_hz = 1.0 / float(np.median(np.diff(t)))
    det = OnlineICDetector(config, rate_hz=rate_hz)
    out = []
    for i in range(0, t.shape[0], chunk):
        tc = t[i : i + chunk]
        out += [(ic, s, float(tc[-1])) for ic, s in det.update(tc, q[i : i + chunk])]
    out += [(ic, s, float(t[-1])) for ic, s in det.flush()]
    return out


def evaluate_trial(
    name, t, q, events, config=None, *, chunk=10, tol_s=0.06, margins_s=(0.0, 0.0)
) -> TrialResult:
    """Detect ICs in one trial and match them to ``events`` {"R": times, "L": times}.

    Events outside the trial's time range may be given (synthetic walks know the ICs just
    before the first and after the last frame): they take part in the matching, so a
    detection of them is not a false one, but they are not counted as true ICs to find.
    ``margins_s`` (head, tail) widens that outside zone: synthetic walks use (0.05, 0.03),
    the shortest lead and tail of the real trials, so that an IC on the very first or last
    frame, which no cycle could use, is not counted as one to find."""
    t = np.asarray(t, dtype=np.float64)
    found = run_online(t, q, config, chunk=chunk)
    res = TrialResult(name=name, rate_hz=1.0 / float(np.median(np.diff(t))), t_start=float(t[0]))
    for side in SIDES:
        true_t = np.asarray(events.get(side, []), dtype=float)
        inside = (true_t >= t[0] + margins_s[0]) & (true_t <= t[-1] - margins_s[1])
        det = [(ic, tc) for ic, s, tc in found if s == side]
        det_t = np.array([d[0] for d in det])
        pairs, missed, false = match_events(true_t, det_t, tol_s)
        pairs = [(i, j) for i, j in pairs if inside[i]]
        res.n_true += int(inside.sum())
        res.n_detected += len(det_t)
        res.n_matched += len(pairs)
        res.n_false += len(false)
        res.errors_s += [float(det_t[j] - true_t[i]) for i, j in pairs]
        res.delays_s += [float(det[j][1] - true_t[i]) for i, j in pairs]
        res.matched_true_s += [float(true_t[i]) for i, _ in pairs]
        res.missed += [(side, float(true_t[i])) for i in missed if inside[i]]
        res.false += [(side, float(det_t[j])) for j in false]
    return res


def synthetic_walk(
    duration_s, rate_hz, seed=0, *, cadence_spm=115.0, start_phase=0.8, noise_deg=0.3, margin_s=1.5
):
    """``(t, q, events)`` of a synthetic walk (``make_stream``) cut out of a longer one, so
    that ``events`` also holds the true ICs before its first and after its last frame."""
    from g2h_edge.io.synth import make_stream

    tr = make_stream(
        duration_s + 2 * margin_s,
        rate_hz,
        seed=seed,
        cadence_spm=cadence_spm,
        noise_deg=noise_deg,
        start_phase=start_phase,
    )
    keep = (tr.t >= margin_s - 1e-9) & (tr.t < margin_s + duration_s - 1e-9)
    return tr.t[keep], tr.q[keep], dict(tr.events)


def pool(results, name="pooled", *, after_start_s: float | None = None) -> dict:
    """Pooled numbers over several :class:`TrialResult`. With ``after_start_s`` only the
    timing of matched ICs at least that long after their trial's first frame counts (the
    first strike of a short trial sits in the first samples, where the source's filtering
    and the detector's missing history both matter); counts stay whole-trial."""

    def keep(r):
        if after_start_s is None:
            return np.ones(len(r.errors_s), bool)
        return np.asarray(r.matched_true_s, float) >= r.t_start + after_start_s

    sgn = np.concatenate([np.asarray(r.errors_s)[keep(r)] for r in results] + [[]]) * 1e3
    dly = np.concatenate([np.asarray(r.delays_s)[keep(r)] for r in results] + [[]]) * 1e3
    err = np.abs(sgn)
    n_true = sum(r.n_true for r in results)
    n_match = sum(r.n_matched for r in results)

    def q(a, p):
        return float(np.percentile(a, p)) if a.size else float("nan")

    return {
        "name": name,
        "trials": len(results),
        "n_timed": int(err.size),
        "n_true": n_true,
        "n_matched": n_match,
        "detection_rate": n_match / n_true if n_true else float("nan"),
        "n_false": sum(r.n_false for r in results),
        "median_abs_err_ms": q(err, 50),
        "p95_abs_err_ms": q(err, 95),
        "max_abs_err_ms": float(err.max()) if err.size else float("nan"),
        "bias_ms": q(sgn, 50),
        "median_delay_ms": q(dly, 50),
        "max_delay_ms": float(dly.max()) if dly.size else float("nan"),
    }


def evaluate_data_dir(data_dir, config=None, *, chunk=10, tol_s=0.06) -> list[TrialResult]:
    """Evaluate every trial with events under ``data_dir`` (the shared/data layout):
    ``schreiber2019/*_angles.csv`` and ``opensim_gait2354/*_angles.csv`` (knee sign
    converted)."""
    from g2h_edge.io import read_trial

    data_dir = Path(data_dir)
    groups = [("schreiber2019", False), ("opensim_gait2354", True)]
    paths = [(p, conv) for sub, conv in groups for p in sorted((data_dir / sub).glob("*_angles.csv"))]
    if not paths:
        raise DataError(
            f"no *_angles.csv trials under {data_dir}/schreiber2019 or opensim_gait2354", reason="not_found"
        )
    out = []
    for p, conv in paths:
        tr = read_trial(p, convert_gait2354=conv)
        if not tr.events:
            continue
        name = f"{p.parent.name}/{p.name[: -len('_angles.csv')]}"
        out.append(evaluate_trial(name, tr.t, tr.q, tr.events, config, chunk=chunk, tol_s=tol_s))
    return out


def synthetic_trials(
    rates_hz=(50.0, 100.0, 200.0, 1000.0),
    *,
    seeds=(0, 1, 2),
    duration_s=20.0,
    cadences=(78.0, 115.0, 135.0),
    noise_deg=0.3,
):
    """``(name, (t, q, events))`` synthetic walks with known ICs (:func:`synthetic_walk`),
    every combination of rate, cadence and seed."""
    for rate in rates_hz:
        for cad in cadences:
            for seed in seeds:
                yield (
                    f"synth/{rate:g}Hz/{cad:g}spm/s{seed}",
                    synthetic_walk(duration_s, rate, seed, cadence_spm=cad, noise_deg=noise_deg),
                )


def format_table(results, pooled_rows) -> str:
    """Plain-text table: one line per trial, then the pooled rows."""
    head = (
        f"{'trial':34s} {'Hz':>5s} {'true':>4s} {'det':>4s} {'hit%':>6s} {'false':>5s} "
        f"{'med|e|ms':>8s} {'p95|e|ms':>8s} {'bias ms':>7s} {'delay ms':>8s}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        p = pool([r])
        lines.append(
            f"{r.name[:34]:34s} {r.rate_hz:5.0f} {r.n_true:4d} {r.n_detected:4d} "
            f"{100 * p['detection_rate']:6.1f} {r.n_false:5d} "
            f"{p['median_abs_err_ms']:8.1f} {p['p95_abs_err_ms']:8.1f} "
            f"{p['bias_ms']:7.1f} {p['median_delay_ms']:8.1f}"
        )
        for side, tm in r.missed:
            lines.append(f"    missed {side} IC at {tm:.3f} s")
        for side, tm in r.false:
            lines.append(f"    false  {side} IC at {tm:.3f} s")
    lines.append("-" * len(head))
    for p in pooled_rows:
        lines.append(
            f"{p['name'][:34]:34s} {'':5s} {p['n_true']:4d} {p['n_matched']:4d} "
            f"{100 * p['detection_rate']:6.1f} {p['n_false']:5d} "
            f"{p['median_abs_err_ms']:8.1f} {p['p95_abs_err_ms']:8.1f} "
            f"{p['bias_ms']:7.1f} {p['median_delay_ms']:8.1f}"
            f"  (max |e| {p['max_abs_err_ms']:.1f}, max delay "
            f"{p['max_delay_ms']:.1f})"
        )
    return "\n".join(lines)


def benchmark_detector(
    *, n_streams: int = 100, rate_hz: float = 200.0, chunk: int = 10, duration_s: float = 10.0, seed: int = 0
) -> dict:
    """Time :meth:`OnlineICDetector.update` over ``n_streams`` interleaved synthetic streams
    (``chunk`` frames per call). Returns calls/s and frames/s on this machine, one thread,
    plus the same for a baseline (``np.diff`` of each chunk) measured in the same run."""
    from g2h_edge.io.synth import make_stream

    tr = make_stream(duration_s, rate_hz, seed=seed, noise_deg=0.3)
    dets = [OnlineICDetector(rate_hz=rate_hz) for _ in range(n_streams)]
    starts = range(0, tr.t.shape[0], chunk)
    chunks = [(tr.t[i : i + chunk], tr.q[i : i + chunk]) for i in starts]
    t0 = time.perf_counter()
    n_ic = 0
    for tc, qc in chunks:
        for d in dets:
            n_ic += len(d.update(tc, qc))
    el = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _tc, qc in chunks:
        for _ in dets:
            np.diff(qc, axis=0)
    base = time.perf_counter() - t0
    calls = len(chunks) * n_streams
    return {
        "calls": calls,
        "calls_per_s": calls / el,
        "frames_per_s": calls * chunk / el,
        "us_per_call": 1e6 * el / calls,
        "baseline_us_per_call": 1e6 * base / calls,
        "ratio_vs_baseline": el / base,
        "ics": n_ic,
        "chunk": chunk,
        "rate_hz": rate_hz,
        "streams_at_rate_per_core": calls * chunk / el / rate_hz,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m g2h_edge.bench.detector", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("data_dir", help="folder holding schreiber2019/ and opensim_gait2354/")
    ap.add_argument(
        "--chunk",
        type=int,
        default=1,
        help="frames per update (default 1: the delay is then the algorithm's own)",
    )
    ap.add_argument("--tol-ms", type=float, default=60.0, help="matching window (+-ms)")
    ap.add_argument("--no-synth", action="store_true", help="skip the synthetic streams")
    ap.add_argument("--bench", action="store_true", help="also time update() calls")
    ap.add_argument("--json", help="also write every number to this JSON file")
    a = ap.parse_args(argv)
    tol = a.tol_ms / 1e3
    real = evaluate_data_dir(a.data_dir, chunk=a.chunk, tol_s=tol)
    schr = [r for r in real if r.name.startswith("schreiber2019/")]
    rows = [
        pool(schr, "pooled schreiber2019 (100 Hz)"),
        pool(schr, "  timing of strikes >= 0.1 s in", after_start_s=0.1),
        pool([r for r in real if r not in schr], "pooled opensim_gait2354 (60 Hz)"),
    ]
    synth = []
    if not a.no_synth:
        synth = [
            evaluate_trial(n, *walk, chunk=a.chunk, tol_s=tol, margins_s=SYNTH_MARGINS_S)
            for n, walk in synthetic_trials()
        ]
        for rate in sorted({r.rate_hz for r in synth}):
            rows.append(
                pool([r for r in synth if abs(r.rate_hz - rate) < 1e-6], f"pooled synthetic {rate:.0f} Hz")
            )
    print(format_table(real + synth, rows))
    bench = benchmark_detector() if a.bench else None
    if bench:
        print(
            f"\nupdate(): {bench['us_per_call']:.1f} us/call = {bench['calls_per_s']:.0f} "
            f"calls/s ({bench['chunk']} frames/call, {bench['rate_hz']:.0f} Hz) on one core "
            f"= {bench['streams_at_rate_per_core']:.0f} streams/core; baseline np.diff "
            f"{bench['baseline_us_per_call']:.1f} us/call (ratio "
            f"{bench['ratio_vs_baseline']:.1f}x)"
        )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "trials": [dict(pool([r]), missed=r.missed, false=r.false) for r in real + synth],
                    "pooled": rows,
                    "bench": bench,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
