"""The bundled example trial (SYNTHETIC): how it was made, and where it is.

``g2h_edge/data/example_trial_angles.csv`` + ``example_trial_events.json`` were written by
:func:`write_example_trial` (``python -m g2h_edge.sources.example g2h_edge/data``): 20 s of
g2h_edge.io.synth.make_stream at 100 Hz, seed 0, cadence 115 steps/min, 0.3 deg sensor
noise, 70 kg. Synthetic kinematics, not a recording of a person.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["EXAMPLE_TRIAL", "example_trial_path", "write_example_trial"]

EXAMPLE_TRIAL = "example_trial_angles.csv"
_NOTE = (
    "SYNTHETIC example trial made by g2h_edge.io.synth.make_stream(duration_s=20, "
    "rate_hz=100, seed=0, cadence_spm=115, noise_deg=0.3, body_mass_kg=70); not a "
    "recording of a person"
)


def example_trial_path() -> Path:
    """Path of the bundled example trial CSV (its events JSON lies next to it)."""
    return Path(__file__).resolve().parents[1] / "data" / EXAMPLE_TRIAL


def write_example_trial(out_dir) -> Path:
    """Regenerate the example trial files in ``out_dir``; returns the CSV path."""
    from g2h_edge.io.synth import make_stream
    from g2h_edge.io.trial import events_path_for, write_events_json, write_trial_csv

    trial = make_stream(20.0, 100.0, seed=0, cadence_spm=115.0, noise_deg=0.3, body_mass_kg=70.0)
    path = Path(out_dir) / EXAMPLE_TRIAL
    write_trial_csv(path, trial)
    path.write_text(f"# {_NOTE}\n" + path.read_text())
    write_events_json(events_path_for(path), trial, extra={"synthetic": True, "note": _NOTE})
    return path


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print(write_example_trial(sys.argv[1] if len(sys.argv) > 1 else "."))
