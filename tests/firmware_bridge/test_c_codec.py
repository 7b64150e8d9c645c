"""The C reference codec (firmware_bridge/c) against the Python codec, built with the system
C compiler (skipped when there is none): identical bytes for every frame type, each side
accepts the other's frames, and garbage never crashes the C decoder (ASan + UBSan)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import g2h_edge.firmware_bridge as fb
from g2h_edge.firmware_bridge import link
from g2h_edge.firmware_bridge.deframer import LinkDecoder

C_DIR = Path(fb.__file__).resolve().parent / "c"
SOURCES = [str(C_DIR / "g2h_link.c"), str(C_DIR / "host_test.c")]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1"]
C_REASON = {
    -1: "cobs",
    -2: "truncated",
    -3: "oversize",
    -4: "crc",
    -5: "wrong_version",
    -6: "bad_length",
    -7: "unknown_type",
    -8: "bad_payload",
}


def _compiler():
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no C compiler (cc/gcc/clang) on this machine")


def _build(out: Path, extra: list[str]) -> Path | None:
    cc = _compiler()
    proc = subprocess.run([cc, *STRICT, *extra, "-o", str(out), *SOURCES], capture_output=True, text=True)
    if proc.returncode != 0:
        return None if extra else pytest.fail(f"C codec does not compile:\n{proc.stderr}")
    return out


@pytest.fixture(scope="module")
def host_test(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("c") / "host_test", ["-O2"])


@pytest.fixture(scope="module")
def host_test_san(tmp_path_factory, host_test):
    """Sanitised build when the compiler and the machine support it, else the plain one."""
    exe = _build(tmp_path_factory.mktemp("c_san") / "host_test_san", SAN)
    if exe is None:
        return host_test
    probe = subprocess.run([str(exe), "lines"], input="crc 00\n", capture_output=True, text=True)
    return exe if probe.returncode == 0 else host_test


def run_lines(exe, lines: list[str]) -> list[str]:
    proc = subprocess.run(
        [str(exe), "lines"], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == len(lines)
    return out


def run_stream(exe, data: bytes, mode="stream"):
    proc = subprocess.run([str(exe), mode], input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    assert b"runtime error" not in proc.stderr and b"Sanitizer" not in proc.stderr
    return proc.stdout.decode().splitlines()


def fbits(x) -> str:
    return f"0x{struct.unpack('<I', struct.pack('<f', float(x)))[0]:08x}"


def hexs(b: bytes) -> str:
    return b.hex() if b else "-"


def vectors(seed=0, n=40):
    """(C command line, Python frame bytes) for every frame type, random fields."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ident = dict(
            stream=int(rng.integers(256)), seq=int(rng.integers(65536)), t_us=int(rng.integers(2**32))
        )
        head = f"{ident['stream']} {ident['seq']} {ident['t_us']}"
        q = (rng.normal(size=10) * 50).astype(np.float32)
        if i == 0:
            q[:3] = [np.nan, np.inf, -0.0]
        out.append((f"pack_angles {head} " + " ".join(fbits(x) for x in q), link.pack_angles(q, **ident)))
        side, ic = int(rng.integers(2)), int(rng.integers(2**32))
        out.append((f"pack_ic {head} {side} {ic}", link.pack_ic_event(side, ic, **ident)))
        rate, mass = np.float32(rng.uniform(10, 2000)), np.float32(rng.uniform(0, 200))
        out.append((f"pack_meta {head} {fbits(rate)} {fbits(mass)}", link.pack_meta(rate, mass, **ident)))
        ch, pts = int(rng.integers(1, 15)), int(rng.integers(1, 37))
        vals = rng.integers(-32768, 32768, (ch, pts)).astype(np.int16)
        kind, cyc = int(rng.integers(2)), int(rng.integers(65536))
        out.append(
            (
                f"pack_prediction {head} {side} {kind} {cyc} {ch} {pts} "
                + " ".join(str(v) for v in vals.ravel()),
                link.pack_prediction(side, kind, cyc, vals, **ident),
            )
        )
        counts = [int(x) for x in rng.integers(0, 2**32, 4)]
        out.append((f"pack_status {head} " + " ".join(map(str, counts)), link.pack_status(*counts, **ident)))
    return out


def test_crc_and_cobs_match(host_test):
    rng = np.random.default_rng(5)
    blobs = [
        b"123456789",
        b"",
        b"\x00",
        bytes(300),
        bytes(range(1, 255)),
        bytes(range(1, 255)) + b"\x00" + bytes(range(1, 255)),
    ]
    blobs += [rng.integers(0, 3, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 1100, 30)]
    lines = [f"crc {hexs(b)}" for b in blobs] + [f"cobs {hexs(b)}" for b in blobs]
    enc = [link.cobs_encode(b) for b in blobs]
    lines += [f"uncobs {hexs(e)}" for e in enc]
    out = run_lines(host_test, lines)
    n = len(blobs)
    assert out[0] == "29b1"
    assert out[:n] == [f"{link.crc16(b):04x}" for b in blobs]
    assert out[n : 2 * n] == [e.hex() for e in enc]
    assert out[2 * n :] == [hexs(b) for b in blobs]
    bad = run_lines(host_test, ["uncobs 0511", "uncobs 021100", "uncobs ff01"])
    assert bad == ["err -1"] * 3


def test_identical_bytes_for_every_frame_type(host_test):
    vecs = vectors()
    out = run_lines(host_test, [cmd for cmd, _ in vecs])
    for (cmd, want), got in zip(vecs, out):
        assert got == want.hex(), cmd.split()[0]
    ser = run_lines(host_test, [f"serial {want.hex()}" for _, want in vecs])
    assert ser == [link.serial_frame(want).hex() for _, want in vecs]


def _python_fields(raw: bytes) -> str:
    f = link.parse_frame(raw)
    p = link.parse_payload(f)
    head = f"ok {f.type} {f.stream} {f.seq} {f.t_us} {f.flags}"
    if f.type == link.ANGLES:
        rest = [fbits(x)[2:] for x in p.q]
    elif f.type == link.META:
        rest = [fbits(p.rate_hz)[2:], fbits(p.body_mass_kg)[2:]]
    elif f.type == link.PREDICTION:
        rest = [p.side, p.kind, p.cycle, *p.values.shape, *p.values.ravel().tolist()]
    else:
        rest = list(p)
    return " ".join([head, *map(str, rest)])


def test_each_side_accepts_the_others_frames(host_test):
    vecs = vectors(seed=1)
    c_frames = [bytes.fromhex(h) for h in run_lines(host_test, [c for c, _ in vecs])]
    py_view = [_python_fields(raw) for raw in c_frames]  # Python parses C frames
    c_view = run_lines(host_test, [f"parse {raw.hex()}" for _, raw in vecs])  # and back
    assert c_view == py_view


def test_c_rejects_bad_frames_like_python(host_test):
    good = link.pack_angles(np.zeros(10), stream=1, seq=5, t_us=1000)

    def recrc(body):
        return body + struct.pack("<H", link.crc16(body))

    bad = [
        good[:-1] + b"\x00",
        good[:13],
        recrc(good[:40]),
        recrc(good[:-2] + b"\x01"),
        bytes(1100),
        recrc(good[:6] + struct.pack("<H", 2000) + good[8:-2]),
        recrc(b"\x02" + good[1:-2]),
        recrc(good[:1] + b"\x7f" + good[2:-2]),
        recrc(link.pack_frame(link.IC_EVENT, bytes([3, 0, 0, 0, 0]))[:-2]),
    ]
    out = run_lines(host_test, [f"parse {b.hex()}" for b in bad])
    for raw, line in zip(bad, out):
        try:
            link.parse_payload(link.parse_frame(raw))
        except fb.link.BridgeError as exc:
            code = int(line.split()[-1])
            assert C_REASON[code] == exc.reason, (line, exc.reason)
        else:
            pytest.fail(f"Python accepted {raw.hex()}")


def _mixed_stream(seed=2) -> bytes:
    rng = np.random.default_rng(seed)
    parts = [b"junk before sync\x00"]
    for _, raw in vectors(seed, 60):
        r = rng.random()
        if r < 0.1:
            raw = bytearray(raw)
            raw[int(rng.integers(len(raw)))] ^= 0x40
            raw = bytes(raw)
        elif r < 0.15:
            parts.append(rng.integers(0, 256, int(rng.integers(1, 80)), dtype=np.uint8).tobytes())
        elif r < 0.17:
            parts.append(b"\x33" * 1500 + b"\x00")
        parts.append(link.serial_frame(raw))
    return b"".join(parts)


def _python_stream_view(data: bytes) -> list[str]:
    dec = LinkDecoder()
    lines = []
    for f in dec.feed(data):
        try:
            link.parse_payload(f)
            rc = 0
        except fb.link.BridgeError:
            rc = -8
        lines.append(f"frame {f.type} {f.stream} {f.seq} {f.t_us} {len(f.payload)} {rc}")
    c = dec.counters()
    lines.append(
        "counters "
        + " ".join(
            str(c[k])
            for k in (
                "frames_ok",
                "crc_errors",
                "framing_errors",
                "oversize",
                "wrong_version",
                "unknown_type",
            )
        )
    )
    return lines


def test_streaming_deframers_agree(host_test):
    data = _mixed_stream()
    assert run_stream(host_test, data) == _python_stream_view(data)


def test_garbage_never_crashes_the_c_decoder(host_test_san):
    rng = np.random.default_rng(11)
    junk = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    valid = bytearray(b"".join(link.serial_frame(raw) for _, raw in vectors(3, 200)))
    for k in rng.integers(0, len(valid), 2000):  # mutate valid frames
        valid[k] = int(rng.integers(256))
    sparse = (rng.integers(1, 256, 100_000) * (rng.random(100_000) > 0.01)).astype(np.uint8)
    for blob in (junk, bytes(valid), sparse.tobytes()):
        out = run_stream(host_test_san, blob)
        assert out == _python_stream_view(blob)  # same verdicts as Python
        summary = run_stream(host_test_san, blob, mode="chunks")
        assert summary[0].startswith("chunks ")
