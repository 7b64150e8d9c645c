"""`g2h-edge record --export` writes every model's cycles (one NPZ per model)."""

from __future__ import annotations

import numpy as np

from g2h_edge.cli import main
from g2h_edge.runtime.record import RecordWriter
from g2h_edge.schema import JM_COLS, MF_COLS
from g2h_edge.wire import encode_cycle, encode_status


def _write_record(path, rng):
    w = RecordWriter(str(path)).open()
    ys = {"jm-model": [], "mf-model": []}
    for k in range(3):
        for name, cols, unit in (("jm-model", JM_COLS, "Nm/kg"), ("mf-model", MF_COLS, "N/kg")):
            y = rng.normal(size=(180, len(cols))).astype(np.float32)
            ys[name].append(y)
            w.write(
                encode_cycle(
                    stream="s1",
                    side="RL"[k % 2],
                    cycle=k,
                    t_start=k * 1.0,
                    t_end=k + 1.0,
                    model=name,
                    sha256=name[:2] * 32,
                    backend="onnx",
                    outputs=cols,
                    unit=unit,
                    y=y,
                    quality={},
                    latency_ms=1.0 + k,
                    synthetic=True,
                )
            )
    w.write(encode_status({"totals": {}, "rejects": {}, "latency_ms": {}}))
    w.close()
    return ys


def test_export_writes_every_model(tmp_path, capsys):
    rec = tmp_path / "two.g2hrec"
    ys = _write_record(rec, np.random.default_rng(0))
    out = tmp_path / "cycles.npz"
    assert main(["record", str(rec), "--export", str(out)]) == 0
    err = capsys.readouterr().err
    assert "wrote 3 cycles of jm-model" in err and "wrote 3 cycles of mf-model" in err
    assert not out.exists()
    for name, cols in (("jm-model", JM_COLS), ("mf-model", MF_COLS)):
        with np.load(tmp_path / f"cycles_{name}.npz") as z:
            np.testing.assert_array_equal(z["y"], np.stack(ys[name]))
            assert tuple(z["out_cols"]) == cols and set(z["model"]) == {name}
            assert list(z["cycle"]) == [0, 1, 2]
