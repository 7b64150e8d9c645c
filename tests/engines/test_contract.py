"""The engine contract, run against every backend available on this machine.

The ``engine_file`` fixture builds one served file per backend from the same small bundle:
``.pt`` (torch, always), ``.onnx`` through ``g2h-edge export onnx`` (skipped while the ONNX
engine or the exporter cannot be imported), ``.pt2`` through ``g2h-edge export aoti`` (fp32,
compiled for one thread; skipped only without a C++ compiler) and ``.plan`` through
``g2h-edge export trt`` (skipped without tensorrt and a CUDA GPU). Every test then runs against every engine file.
"""

from __future__ import annotations

import importlib
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from g2h_edge.engines import Engine, load_engine
from g2h_edge.errors import EngineError, ModelError
from g2h_edge.models import Bundle, build_model, default_hparams, file_sha256, save_bundle
from g2h_edge.schema import IN_COLS, MF_COLS

BACKENDS = ["torch", "onnxruntime", "aoti", "tensorrt"]
TOL = 1e-4  # every backend in fp32 against the bundle's torch module
MEAN = np.linspace(-10.0, 30.0, 10).astype(np.float32)
STD = np.linspace(5.0, 20.0, 10).astype(np.float32)


SMALL = {
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "max_len": 200},
    "mamba": {"d_model": 16, "d_state": 4},
}


def _bundle(arch: str = "transformer") -> Bundle:
    torch.manual_seed(0)
    hp = {**default_hparams(arch, len(MF_COLS)), **SMALL[arch]}
    return Bundle(
        name="contract-tiny",
        arch=arch,
        hparams=hp,
        state_dict=build_model(arch, hp).state_dict(),
        in_cols=IN_COLS,
        out_cols=MF_COLS,
        mean=MEAN,
        std=STD,
        task="mf",
        unit="N/kg",
        T=180,
        provenance={"note": "random weights, engine contract tests"},
        synthetic=True,
    )


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _cli(args: list[str]) -> None:
    from g2h_edge.cli import cli

    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory):
    return save_bundle(_bundle(), tmp_path_factory.mktemp("contract") / "tiny.pt")


def _export_onnx(bundle_file):
    for module in ("g2h_edge.engines.onnx_engine", "g2h_edge.export.cli"):
        if not _importable(module):
            pytest.skip(f"{module} does not import yet: no ONNX backend to test")
    out = bundle_file.with_suffix(".onnx")
    _cli(["export", "onnx", "--model", str(bundle_file), "-o", str(out)])
    return out


@pytest.fixture(scope="module")
def onnx_file(bundle_file):
    return _export_onnx(bundle_file)


@pytest.fixture(scope="module")
def mamba_files(tmp_path_factory):
    """A small Mamba bundle and its ONNX export (the scan is the hardest part to export)."""
    pt = save_bundle(_bundle("mamba"), tmp_path_factory.mktemp("mamba") / "mamba.pt")
    return {"torch": pt, "onnxruntime": _export_onnx(pt), "aoti": _export_aoti(pt)}


def _export_aoti(bundle_file):
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("AOTInductor needs a C++ compiler")
    out = bundle_file.with_suffix(".pt2")
    _cli(
        [
            "export",
            "aoti",
            "--model",
            str(bundle_file),
            "-o",
            str(out),
            "--precision",
            "fp32",
            "--mode",
            "default",
            "--threads",
            "1",
            "--max-batch",
            "8",
        ]
    )
    return out


@pytest.fixture(scope="module")
def aoti_file(bundle_file):
    return _export_aoti(bundle_file)


@pytest.fixture(scope="module")
def plan_file(onnx_file):
    if (
        not torch.cuda.is_available()
        or not _importable("tensorrt")
        or not _importable("g2h_edge.engines.tensorrt_engine")
    ):
        pytest.skip("TensorRT needs the tensorrt package and a CUDA GPU")
    out = onnx_file.with_suffix(".plan")
    _cli(["export", "trt", "--onnx", str(onnx_file), "-o", str(out)])
    return out


@pytest.fixture(params=BACKENDS)
def engine_file(request):
    name = {"torch": "bundle_file", "onnxruntime": "onnx_file", "aoti": "aoti_file", "tensorrt": "plan_file"}[
        request.param
    ]
    return request.param, request.getfixturevalue(name)


@pytest.fixture
def engine(engine_file):
    eng = load_engine(engine_file[1])
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def cycles():
    rng = np.random.default_rng(7)
    phase = np.linspace(0.0, 2 * np.pi, 180)[None, :, None]
    x = MEAN + STD * np.sin(phase + rng.uniform(0, 2 * np.pi, (5, 1, 10)))
    return x.astype(np.float32)  # (5, 180, 10) degrees


def _reference(x: np.ndarray, arch: str = "transformer") -> np.ndarray:
    with torch.no_grad():
        return _bundle(arch).module()(torch.from_numpy(x)).numpy()


def test_attributes(engine, engine_file):
    backend, path = engine_file
    assert isinstance(engine, Engine) and engine.backend == backend
    assert engine.name == "contract-tiny" and engine.synthetic is True
    assert engine.in_cols == IN_COLS and engine.out_cols == MF_COLS
    assert (engine.task, engine.unit, engine.T) == ("mf", "N/kg", 180)
    assert engine.sha256 == file_sha256(path)
    assert isinstance(engine.metadata, dict) and engine.metadata["name"] == "contract-tiny"
    assert "SYNTHETIC" in repr(engine)


@pytest.mark.parametrize("batch", [1, 5])
def test_infer_matches_the_bundle(engine, cycles, batch):
    x = cycles[:batch]
    y = engine.infer(x)
    assert y.shape == (batch, 180, len(MF_COLS)) and y.dtype == np.float32
    assert y.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(y, _reference(x), rtol=0, atol=TOL)


def test_rows_are_independent_of_the_batch(engine, cycles):
    together = engine.infer(cycles)
    for i in range(len(cycles)):
        np.testing.assert_allclose(engine.infer(cycles[i : i + 1])[0], together[i], rtol=0, atol=TOL)


def test_inputs_are_coerced(engine, cycles):
    ref = engine.infer(cycles[:2])
    np.testing.assert_allclose(engine.infer(cycles[:2].astype(np.float64)), ref, atol=TOL)
    np.testing.assert_allclose(engine.infer(np.asfortranarray(cycles[:2])), ref, atol=TOL)
    ints = np.round(cycles[:1]).astype(np.int32)
    assert engine.infer(ints).shape == (1, 180, len(MF_COLS))


def _with(value, index=(0, 3, 4)):
    def make(x):
        x = x.copy()
        x[index] = value
        return x

    return make


BAD_INPUTS = [
    ("no batch axis", lambda x: x[0], r"shape \(B>=1, 180, 10\).*add a batch axis"),
    ("wrong T", lambda x: x[:, :90], r"got \(5, 90, 10\)"),
    ("wrong channels", lambda x: x[..., :9], r"got \(5, 180, 9\)"),
    ("empty batch", lambda x: x[:0], r"got \(0, 180, 10\)"),
    ("4-d", lambda x: x[None], r"got \(1, 5, 180, 10\)"),
    ("nan", _with(np.nan), r"1 non-finite values .*first at index \(0, 3, 4\)"),
    ("inf", _with(np.inf), "non-finite"),
    ("strings", lambda x: x.astype(str), "must be numeric"),
    ("complex", lambda x: x.astype(np.complex64), "must be numeric"),
    ("float64 overflow", lambda x: x.astype(np.float64) * 1e300, "non-finite"),
]


@pytest.mark.parametrize("case, make, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs(engine, cycles, case, make, match):
    with pytest.raises(EngineError, match=match):
        engine.infer(make(cycles))


def test_warmup_and_close(engine_file, cycles):
    eng = load_engine(engine_file[1], threads=1)
    eng.warmup((1, 3))
    assert eng.infer(cycles[:1]).shape == (1, 180, len(MF_COLS))
    eng.close()
    with pytest.raises(EngineError, match="is closed"):
        eng.infer(cycles[:1])


def test_load_engine_errors(tmp_path, bundle_file):
    (tmp_path / "model.h5").write_bytes(b"x")
    (tmp_path / "junk.pt").write_bytes(b"not a bundle")
    with pytest.raises(EngineError, match="does not exist"):
        load_engine(tmp_path / "absent.pt")
    with pytest.raises(EngineError, match=r"cannot tell the backend of model.h5"):
        load_engine(tmp_path / "model.h5")
    with pytest.raises(ModelError, match="not a torch zip archive"):
        load_engine(tmp_path / "junk.pt")
    for threads in (0, -1, 1.5, True):
        with pytest.raises(EngineError, match="threads must be a positive int"):
            load_engine(bundle_file, threads=threads)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "aoti"])
@pytest.mark.parametrize("batch", [1, 5])
def test_mamba_engines_match_the_bundle(mamba_files, backend, batch, cycles):
    with load_engine(mamba_files[backend]) as eng:
        np.testing.assert_allclose(
            eng.infer(cycles[:batch]), _reference(cycles[:batch], "mamba"), rtol=0, atol=TOL
        )


CPU_BACKENDS = ["torch", "onnxruntime", "aoti"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_from_file_is_the_one_way_in(backend, request, cycles):
    """Every backend loads its file with ``from_file(path, options)``; the constructor takes
    loaded objects only, and ``load_engine`` is the same call chosen by suffix."""
    name = {"torch": "bundle_file", "onnxruntime": "onnx_file", "aoti": "aoti_file"}[backend]
    path = request.getfixturevalue(name)
    with load_engine(path, threads=1) as by_suffix:
        cls = type(by_suffix)
        with cls.from_file(path, cls.Options(threads=1)) as direct:
            assert direct.backend == backend and direct.metadata["path"] == str(path)
            assert direct.options == cls.Options(threads=1)
            np.testing.assert_array_equal(direct.infer(cycles[:2]), by_suffix.infer(cycles[:2]))
    with pytest.raises(TypeError, match="from_file"):
        cls(path, {})
    with pytest.raises(EngineError, match=r"option\(s\) \['nope'\] do not apply") as err:
        load_engine(path, nope=1)
    assert err.value.reason == "bad_option"
    other = next(c for b, c in _OPTION_CLASSES.items() if b != backend)
    with pytest.raises(EngineError, match=f"{other.__name__} .*cannot load {path.name}"):
        load_engine(path, other())


def _option_classes():
    from g2h_edge.engines.aoti_engine import AotiOptions
    from g2h_edge.engines.onnx_engine import OnnxOptions
    from g2h_edge.engines.torch_engine import TorchOptions

    return {"torch": TorchOptions, "onnxruntime": OnnxOptions, "aoti": AotiOptions}


_OPTION_CLASSES = _option_classes()


@pytest.mark.parametrize("options_cls", list(_OPTION_CLASSES.values()), ids=list(_OPTION_CLASSES))
@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_every_options_class_checks_threads(options_cls, threads):
    with pytest.raises(EngineError, match="threads must be a positive int"):
        options_cls(threads=threads)


def test_options_are_frozen():
    opts = _OPTION_CLASSES["onnxruntime"](threads=1, providers=["CPUExecutionProvider"])
    assert opts.providers == ("CPUExecutionProvider",)
    with pytest.raises(AttributeError):
        opts.threads = 2


@pytest.mark.parametrize(
    "n, max_batch, pad_to, runs",
    [
        (5, 8, None, [5]),  # one chunk, no padding
        (5, 2, None, [2, 2, 1]),  # chunks, the last one short
        (5, 2, lambda n: 2, [2, 2, 2]),  # fixed batch: the last one padded
        (3, 64, lambda n: 1 << (n - 1).bit_length(), [4]),  # power-of-two bucket
        (1, 8, lambda n: max(n, 2), [2]),  # a profile's minimum batch
    ],
)
def test_run_in_chunks(n, max_batch, pad_to, runs):
    from g2h_edge.engines.common import run_in_chunks

    x = np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 2, 3)
    seen = []

    def run_once(chunk):
        seen.append(chunk.shape[0])
        assert chunk.flags["C_CONTIGUOUS"]
        return chunk[..., :1] * 2.0  # (b, T, 1): rows independent

    y = run_in_chunks(run_once, x, max_batch=max_batch, pad_to=pad_to)
    assert seen == runs
    np.testing.assert_array_equal(y, x[..., :1] * 2.0)
