"""AOTInductor packages (``g2h-edge export aoti`` -> ``.pt2`` -> AotiEngine): what the export
refuses, what the sidecar guards, bf16, and serving one over real loopback sockets.

The fp32 package also runs the whole engine contract (tests/engines/test_contract.py).
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from g2h_edge.engines import load_engine
from g2h_edge.engines.aoti_engine import (
    AotiEngine,
    check_package_compat,
    cpu_isa_flags,
    read_sidecar,
    sidecar_path,
)
from g2h_edge.errors import EngineError, ExportError
from g2h_edge.export.aoti import export_aoti
from g2h_edge.export.cycles import parity_like_cycles
from g2h_edge.models import Bundle, build_model, default_hparams, load_bundle, save_bundle
from g2h_edge.schema import IN_COLS, JM_COLS

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="AOTInductor needs a C++ compiler"
)

SMALL = {
    "transformer": {"d_model": 32, "nhead": 2, "num_layers": 1, "dim_feedforward": 64, "max_len": 200},
    "mamba": {"d_model": 16, "d_state": 4},
    "lstm": {},
}


def _bundle(arch="transformer", seed=0) -> Bundle:
    from g2h_edge.io.synth import MU_X, SD_X

    torch.manual_seed(seed)
    hp = {**default_hparams(arch, len(JM_COLS)), **SMALL[arch]}
    return Bundle(
        name=f"aoti-{arch}",
        arch=arch,
        hparams=hp,
        state_dict=build_model(arch, hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=JM_COLS,
        mean=np.asarray(MU_X, np.float32),
        std=np.asarray(SD_X, np.float32),
        task="jm",
        unit="Nm/kg",
        T=180,
        provenance={"note": "random weights, AOTInductor tests"},
        synthetic=True,
    )


@pytest.fixture(scope="module")
def bf16_package(tmp_path_factory):
    """A small Transformer bundle and its bf16 package (compiled for 1 thread)."""
    d = tmp_path_factory.mktemp("aoti")
    pt = save_bundle(_bundle(), d / "tiny.pt")
    rep = export_aoti(pt, d / "tiny.pt2", precision="bf16", mode="default", max_batch=4, threads=1)
    return pt, rep


def _copy(rep, tmp_path, name="copy.pt2"):
    dst = tmp_path / name
    shutil.copy(rep.path, dst)
    shutil.copy(rep.sidecar, sidecar_path(dst))
    return dst


def test_bf16_package_is_close_to_the_bundle_and_says_what_it_is(bf16_package):
    pt, rep = bf16_package
    side = read_sidecar(rep.path)
    assert side["precision"] == "bf16" and side["threads"] == 1 and side["max_batch"] == 4
    assert side["synthetic"] is True and side["torch_version"] == torch.__version__
    assert set(side["cpu_flags"]) == cpu_isa_flags()
    assert 0 < rep.max_abs_diff == side["verify_max_abs_diff"]
    x = parity_like_cycles(side["mean"], side["std"], 6, 180, seed=5)  # 6 > max_batch: split
    with load_engine(rep.path, threads=1) as eng:
        assert eng.backend == "aoti" and eng.sha256 == rep.sha256 and eng.synthetic
        y = eng.infer(x)
    with torch.no_grad():
        ref = load_bundle(pt).module()(torch.from_numpy(x)).numpy()
    err = np.abs(y - ref).max()
    assert 0 < err <= 0.05 * np.abs(ref).max()  # bf16: close, not equal
    assert np.corrcoef(y.ravel(), ref.ravel())[0, 1] > 0.999


def test_the_engine_calls_the_flat_entry_point(bf16_package):
    """The engine skips the package call's pytree wrapping (see AotiEngine._direct_runner):
    it must run the same kernels and give the same numbers as the package call, at every
    batch size, split batches included."""
    _, rep = bf16_package
    side = read_sidecar(rep.path)
    x = parity_like_cycles(side["mean"], side["std"], 7, 180, seed=6)
    with load_engine(rep.path, threads=1) as eng:
        assert eng.run_ == eng.runner_.loader.run
        for b in (1, 4, 7):  # max_batch 4: 7 runs as 4 + 3
            with torch.inference_mode():
                ref = np.concatenate(
                    [eng.runner_(torch.from_numpy(x[i : min(i + 4, b)])).numpy() for i in range(0, b, 4)]
                )
            np.testing.assert_array_equal(eng.infer(x[:b]), ref)


def test_sidecar_guards_the_package(bf16_package, tmp_path):
    _, rep = bf16_package
    good = _copy(rep, tmp_path)
    AotiEngine.from_file(good, threads=1).close()

    def with_sidecar(**changes):
        path = _copy(rep, tmp_path, f"s{len(list(tmp_path.iterdir()))}.pt2")
        side = json.loads(sidecar_path(path).read_text())
        side.update(changes)
        sidecar_path(path).write_text(json.dumps(side))
        return path

    cases = [
        (
            with_sidecar(torch_version="2.0.0"),
            "package_mismatch",
            r"built with PyTorch 2\.0\.0.*rebuild it on the target",
        ),
        (with_sidecar(machine="aarch64"), "package_mismatch", "built for aarch64"),
        (
            with_sidecar(cpu_flags=sorted(cpu_isa_flags() | {"sve"})),
            "package_mismatch",
            r"CPU features this CPU lacks: \['sve'\]",
        ),
        (with_sidecar(package_sha256="0" * 64), "corrupt", "changed or truncated"),
        (with_sidecar(format="something-else"), "bad_sidecar", "not a g2h-edge AOTInductor"),
        (with_sidecar(threads=0), "bad_sidecar", "invalid values"),
    ]
    for path, reason, match in cases:
        with pytest.raises(EngineError, match=match) as err:
            load_engine(path)
        assert err.value.reason == reason
    sidecar_path(good).unlink()
    with pytest.raises(EngineError, match="has no sidecar") as err:
        load_engine(good)
    assert err.value.reason == "missing_sidecar"
    # bytes that are not a package, with a sidecar that vouches for them: a clear refusal
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    side = read_sidecar(rep.path)
    side["package_sha256"] = __import__("hashlib").sha256(junk.read_bytes()).hexdigest()
    sidecar_path(junk).write_text(json.dumps(side))
    with pytest.raises(EngineError, match="changed after it was signed") as err:
        load_engine(junk)  # the edited sidecar: not this build
    assert err.value.reason == "untrusted_native"
    with pytest.raises(EngineError, match="cannot load AOTInductor package") as err:
        load_engine(junk, trust_native=True)
    assert err.value.reason == "corrupt"


def test_other_thread_counts_are_reported(bf16_package, tmp_path):
    _, rep = bf16_package
    with pytest.warns(RuntimeWarning, match=r"compiled for 1 intra-op threads.*--threads 2"):
        AotiEngine.from_file(_copy(rep, tmp_path), threads=2).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AotiEngine.from_file(_copy(rep, tmp_path, "b.pt2")).close()  # None: the build's count


def test_cpu_flags_are_read_from_cpuinfo():
    x86 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx2 fma avx512f amx_tile amx_bf16 ht\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm sve bf16 i8mm\n"
    assert cpu_isa_flags(x86) == {"sse4_2", "avx2", "fma", "avx512f", "amx_tile", "amx_bf16"}
    assert cpu_isa_flags(arm) == {"asimd", "sve", "bf16", "i8mm"}
    assert cpu_isa_flags("") == set()
    meta = {"torch_version": "x", "machine": "m", "cpu_flags": ["avx2", "amx_tile"], "package_sha256": "s"}
    check_package_compat(
        meta, torch_version="x", machine="m", cpu_flags={"avx2", "amx_tile", "fma"}, package_sha256="s"
    )
    with pytest.raises(EngineError, match=r"lacks: \['amx_tile'\]"):
        check_package_compat(meta, torch_version="x", machine="m", cpu_flags={"avx2"}, package_sha256="s")


def test_export_refusals(tmp_path):
    pt = save_bundle(_bundle(), tmp_path / "t.pt")
    lstm = save_bundle(_bundle("lstm"), tmp_path / "l.pt")
    cases = [
        (dict(bundle=lstm, path=tmp_path / "l.pt2"), "unsupported_arch", "LSTM"),
        (dict(bundle=pt, path=tmp_path / "t.onnx"), "bad_argument", r"must be named \*\.pt2"),
        (dict(bundle=pt, path=tmp_path / "t.pt2", max_batch=0), "bad_argument", "max_batch"),
        (dict(bundle=pt, path=tmp_path / "t.pt2", threads=1.5), "bad_argument", "threads"),
        (dict(bundle=pt, path=tmp_path / "t.pt2", precision="int8"), "bad_argument", "precision"),
        (dict(bundle=pt, path=tmp_path / "t.pt2", mode="fast"), "bad_argument", "mode"),
    ]
    for kwargs, reason, match in cases:
        with pytest.raises(ExportError, match=match) as err:
            export_aoti(kwargs.pop("bundle"), kwargs.pop("path"), **kwargs)
        assert err.value.reason == reason
    assert not list(tmp_path.glob("*.pt2")) and not list(tmp_path.glob("*.json"))


def test_a_bf16_mamba_package_is_close_to_the_bundle(tmp_path):
    pt = save_bundle(_bundle("mamba", seed=3), tmp_path / "m.pt")
    rep = export_aoti(pt, tmp_path / "m.pt2", precision="bf16", mode="default", max_batch=2, threads=1)
    x = parity_like_cycles(rep.metadata["mean"], rep.metadata["std"], 3, 180, seed=2)
    with load_engine(rep.path, threads=1) as eng:
        y = eng.infer(x)
    with torch.no_grad():
        ref = load_bundle(pt).module()(torch.from_numpy(x)).numpy()
    assert 0 < np.abs(y - ref).max() <= 0.05 * np.abs(ref).max()
    assert np.corrcoef(y.ravel(), ref.ravel())[0, 1] > 0.999


def test_a_package_is_served_over_loopback(bf16_package):
    """`serve --engine x.pt2`: external ICs over real sockets give exactly the package's
    output for the resampled cycles (same engine, same inputs)."""
    from g2h_edge.gait import resample_cycle
    from g2h_edge.io.synth import make_stream
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.local import LocalServer, OutputCollector
    from g2h_edge.schema import mirror_sides
    from g2h_edge.sources.replay import ReplayConfig, replay

    _, rep = bf16_package
    trial = make_stream(6.0, 100.0, seed=4, body_mass_kg=70.0)
    with load_engine(rep.path, threads=1) as eng:
        cfg = ServerConfig(
            engines=(str(rep.path),),
            listen="tcp://127.0.0.1:*",
            publish="tcp://127.0.0.1:*",
            allow_synthetic=True,
            status_interval_s=0.1,
        )
        with LocalServer(cfg, engines=[eng]) as srv, OutputCollector(srv.endpoints["publish"]) as col:
            assert col.wait_ready(30)
            replay(
                trial,
                ReplayConfig(address=srv.endpoints["listen"], stream="a", max_rate=True, with_events=True),
            )
            assert col.wait_ended("a", 60)
        cycles = col.of_type("cycle", "a")
        assert len(cycles) >= 6 and not col.of_type("reject", "a")
        x = np.stack([resample_cycle(trial.t, trial.q, c["t_start"], c["t_end"]) for c in cycles])
        x = np.stack([xi if c["side"] == "R" else mirror_sides(xi) for xi, c in zip(x, cycles)])
        y = np.concatenate([eng.infer(x[i : i + 1]) for i in range(len(x))])
    for c, yi in zip(cycles, y):
        assert c["backend"] == "aoti" and c["sha256"] == rep.sha256 and c["synthetic"]
        np.testing.assert_allclose(c["y"], yi, rtol=0, atol=1e-5)


def test_the_runtime_and_the_benchmark_take_a_package_by_its_suffix(bf16_package):
    """`serve --engine x.pt2` loads it through the same path as every engine file, and
    `bench engine` finds its torch-eager baseline from the sidecar's metadata."""
    from click.testing import CliRunner

    from g2h_edge.bench.engine import bench_engine_cmd
    from g2h_edge.errors import ConfigError
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.engines import load_engines

    pt, rep = bf16_package
    engines = load_engines(ServerConfig(engines=(str(rep.path),), allow_synthetic=True, engine_threads=1))
    try:
        assert [type(e).__name__ for e in engines] == ["AotiEngine"]
        assert engines[0].metadata["precision"] == "bf16"
    finally:
        for e in engines:
            e.close()
    with pytest.raises(ConfigError, match="SYNTHETIC"):  # synthetic: refused by default
        load_engines(ServerConfig(engines=(str(rep.path),), engine_threads=1))
    res = CliRunner().invoke(
        bench_engine_cmd,
        [
            "--engine",
            str(rep.path),
            "--batch",
            "1",
            "--iters",
            "5",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--bundle",
            str(pt),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "aoti (bf16)" in res.output and "torch eager transformer (bundle)" in res.output
    assert "speed-up vs torch eager at batch 1" in res.output


# --- trust (issue 16.11): a package is native code; only this user's builds load ---------


def _temp_leftovers() -> set:
    import glob
    import tempfile

    tmp = tempfile.gettempdir()
    return set(glob.glob(f"{tmp}/g2h-aoti-load-*")) | set(glob.glob(f"{tmp}/aotinductor_*"))


def _package_like(rep, tmp_path, name, edit=None, resign_with=None, monkeypatch=None):
    """A copy of the package whose sidecar is edited, and/or signed under another key."""
    from g2h_edge.engines.trust import sign_sidecar

    path = _copy(rep, tmp_path, name)
    side = json.loads(sidecar_path(path).read_text())
    if edit:
        edit(side)
    if resign_with is not None:
        monkeypatch.setenv("G2H_EDGE_CONFIG_DIR", str(resign_with))
        side = sign_sidecar(side)
        monkeypatch.undo()
    sidecar_path(path).write_text(json.dumps(side))
    return path


def test_only_packages_built_by_this_user_load(bf16_package, tmp_path, monkeypatch):
    _, rep = bf16_package
    side = read_sidecar(rep.path)
    assert len(side["build_signature"]) == 64 and len(side["build_key_id"]) == 16
    cases = [
        (dict(resign_with=tmp_path / "other-user"), "signed by another user or machine"),
        (dict(edit=lambda s: s.update(name="renamed")), "changed after it was signed"),
        (dict(edit=lambda s: s.pop("build_signature")), "no build signature"),
    ]
    for i, (how, match) in enumerate(cases):
        path = _package_like(rep, tmp_path, f"p{i}.pt2", monkeypatch=monkeypatch, **how)
        with pytest.raises(EngineError, match=match + r".*--trust-native") as err:
            load_engine(path)
        assert err.value.reason == "untrusted_native"
        with load_engine(path, trust_native=True) as eng:  # the user vouches for it
            assert eng.infer(np.zeros((1, 180, 10), np.float32)).shape == (1, 180, 3)
    monkeypatch.setenv("G2H_EDGE_CONFIG_DIR", str(tmp_path / "nobody"))  # no key at all
    with pytest.raises(EngineError, match="this user has none"):
        load_engine(_copy(rep, tmp_path, "k.pt2"))


def test_serve_refuses_a_foreign_package_unless_trusted(bf16_package, tmp_path, monkeypatch):
    from g2h_edge.runtime.config import ServerConfig
    from g2h_edge.runtime.engines import load_engines

    _, rep = bf16_package
    path = _package_like(rep, tmp_path, "f.pt2", resign_with=tmp_path / "other", monkeypatch=monkeypatch)
    cfg = dict(engines=(str(path),), allow_synthetic=True)
    with pytest.raises(EngineError, match="another user"):
        load_engines(ServerConfig(**cfg))
    for eng in load_engines(ServerConfig(**cfg, trust_native=True)):
        eng.close()


def test_loader_folders_are_removed(bf16_package, tmp_path):
    """Regression: a failed load left the extracted package in $TMPDIR/aotinductor_*."""
    _, rep = bf16_package
    before = _temp_leftovers()
    junk = tmp_path / "junk.pt2"
    with __import__("zipfile").ZipFile(junk, "w") as z:  # extracts, then fails to load
        z.writestr("x/data/aotinductor/model/model.wrapper.so", b"\x7fELF not a library")
        z.writestr("x/archive_format", b"pt2")
    side = read_sidecar(rep.path)
    side["package_sha256"] = __import__("hashlib").sha256(junk.read_bytes()).hexdigest()
    sidecar_path(junk).write_text(json.dumps(side))
    with pytest.raises(EngineError, match="cannot load AOTInductor package"):
        load_engine(junk, trust_native=True)
    assert _temp_leftovers() == before
    eng = load_engine(_copy(rep, tmp_path, "ok.pt2"))
    assert len(_temp_leftovers() - before) == 1  # its own folder while open
    eng.close()
    assert _temp_leftovers() == before


def test_predict_and_bench_engine_take_trust_native(bf16_package, tmp_path, monkeypatch, cli):
    from g2h_edge.io.npz import write_gait2hip_npz
    from g2h_edge.io.synth import make_cohort

    _, rep = bf16_package
    path = _package_like(rep, tmp_path, "f.pt2", resign_with=tmp_path / "other", monkeypatch=monkeypatch)
    cohort = tmp_path / "in.npz"
    write_gait2hip_npz(cohort, make_cohort("jm", 1, seed=2, trials_per_condition=1))
    out = tmp_path / "p.npz"
    predict = ["predict", "--model", str(path), "--input", str(cohort), "-o", str(out), "--allow-synthetic"]
    bench = ["bench", "engine", "--engine", str(path), "--batch", "1", "--iters", "5", "--no-reference"]
    for args in (predict, bench):
        code, text = cli(args)
        assert code != 0 and "another user" in text and "--trust-native" in text, text
        code, text = cli(args + ["--trust-native"])
        assert code == 0, text
    with np.load(out) as z:
        assert z["y"].shape[1:] == (180, 3)
