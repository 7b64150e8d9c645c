"""Device bytes -> bridge -> the real runtime server -> predictions back to the device."""

from __future__ import annotations

import numpy as np
import pytest

from g2h_edge.firmware_bridge import BridgeConfig, link, resample_waveform
from g2h_edge.schema import IN_COLS, JM_COLS

pytest.importorskip("serial")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def jm_engine(tmp_path_factory):
    """A joint-moment model with random weights (flagged synthetic) behind a real engine."""
    import torch

    from g2h_edge.engines import load_engine
    from g2h_edge.io.synth import MU_X, SD_X
    from g2h_edge.models import Bundle, build_model, default_hparams, save_bundle

    torch.manual_seed(0)
    hp = default_hparams("lstm", len(JM_COLS))
    bundle = Bundle(
        name="bridge-test-jm",
        arch="lstm",
        hparams=hp,
        state_dict=build_model("lstm", hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=JM_COLS,
        mean=np.asarray(MU_X, np.float32),
        std=np.asarray(SD_X, np.float32),
        task="jm",
        unit="Nm/kg",
        T=180,
        provenance={
            "source": "tests/firmware_bridge",
            "training_notes": "random init, bridge end-to-end test only",
        },
        synthetic=True,
    )
    path = tmp_path_factory.mktemp("bundle") / "jm.pt"
    save_bundle(bundle, path)
    eng = load_engine(path, threads=1)
    yield eng
    eng.close()


def device_bytes(trial, t0_us: int) -> bytes:
    """What the wearable sends: META, then ANGLES with IC_EVENT frames as contacts occur."""
    us = lambda t: (t0_us + int(round(t * 1e6))) & 0xFFFFFFFF  # noqa: E731
    events = sorted((float(t), side) for side in ("R", "L") for t in trial.events[side])
    out, seq, e = [link.pack_meta(trial.rate_hz, 68.0, stream=2, seq=0, t_us=us(0))], 1, 0
    for t, q in zip(trial.t, trial.q):
        out.append(link.pack_angles(q, stream=2, seq=seq & 0xFFFF, t_us=us(t)))
        seq += 1
        while e < len(events) and events[e][0] <= t:
            ic_t, side = events[e]
            out.append(
                link.pack_ic_event(0 if side == "R" else 1, us(ic_t), stream=2, seq=seq & 0xFFFF, t_us=us(t))
            )
            seq, e = seq + 1, e + 1
    return b"".join(link.serial_frame(f) for f in out)


def test_device_to_server_and_back(jm_engine, pty_device, run_bridge):
    from g2h_edge.io.synth import make_stream
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector

    trial = make_stream(6.0, 100.0, seed=4)
    cfg = ServerConfig(
        engines=("in-memory",),
        listen="tcp://127.0.0.1:*",
        publish="tcp://127.0.0.1:*",
        allow_synthetic=True,
        status_interval_s=0.1,
    )
    with LocalServer(cfg, engines=[jm_engine]) as srv, OutputCollector(srv.endpoints["publish"]) as col:
        assert col.wait_ready(30)
        bcfg = BridgeConfig(
            to_addr=srv.endpoints["listen"],
            from_addr=srv.endpoints["publish"],
            serial_port=pty_device.path,
            status_interval_s=0.1,
            meta_interval_s=0.1,
        )
        with run_bridge(bcfg) as bridge:
            assert pty_device.wait_frames(lambda fs: any(f.type == link.STATUS for f in fs))
            # the clock starts near the u32 wrap: the bridge must unwrap it
            data = device_bytes(trial, t0_us=2**32 - 2_000_000)
            meta_end = data.index(b"\x00") + 1
            pty_device.write(b"\x00" + data[:meta_end])
            assert col.wait_for(
                lambda ms: any(m["type"] == "status" and "mcu2" in m.get("streams", {}) for m in ms), 20
            )
            pty_device.write(data[meta_end:])
            assert pty_device.wait_frames(lambda fs: sum(f.type == link.PREDICTION for f in fs) >= 4, 30)
            n = len(trial.t)
            assert col.wait_for(
                lambda ms: any(  # every frame counted in the server status
                    m["type"] == "status"
                    and m.get("sources", {})
                    .get("mcu2", {})
                    .get("firmware_bridge", {})
                    .get("stream_angles", 0)
                    == n
                    for m in ms
                ),
                20,
            )
            c = bridge.counters()
    cycles = {(m["side"], m["cycle"] & 0xFFFF): m for m in col.of_type("cycle", "mcu2")}
    preds = [f for f in pty_device.frames if f.type == link.PREDICTION]
    assert cycles and preds
    for f in preds:
        p = link.parse_payload(f)
        m = cycles[("R" if p.side == 0 else "L", p.cycle)]
        assert p.kind == link.KIND_JOINT_MOMENT and f.stream == 2
        want = np.clip(np.rint(resample_waveform(m["y"], 20) * 1000), -32767, 32767)
        np.testing.assert_array_equal(p.values, want)
        assert f.t_us == round(m["t_end"] * 1e6) % 2**32
    ts = [m["t_end"] for m in cycles.values()]
    assert min(ts) > (2**32 - 2_000_000) * 1e-6  # device clock, unwrapped
    assert max(ts) > 2**32 * 1e-6  # ... past the wrap
    assert c["crc_errors"] == c["framing_errors"] == c["seq_gaps"] == 0
    assert c["ic_events"] >= 8
    status = [
        m["sources"]["mcu2"]["firmware_bridge"]
        for m in col.of_type("status")
        if "mcu2" in m.get("sources", {})
    ]
    assert max(s["stream_angles"] for s in status) == len(trial.t)
    assert max(s["stream_ic_events"] for s in status) >= 8
