"""The native custom-op library (csrc/, op DenseBlock of domain ai.condense_deploy; GroupedConv in the
bench-only library):
results against a numpy reference of docs/native-ops.md, every ISA, threads, odd sizes, bad inputs,
and the C++ micro-kernel test driver (also for aarch64 under qemu)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from condense_deploy.native.op_models import dense_block_model, dense_params, grouped_conv_model  # noqa: E402
from condense_deploy.native.reference import dense_block_reference, grouped_conv_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "build-kernels.sh"
DOMAIN = "ai.condense_deploy"
LIB_NAME = "libcondense_deploy_ops.so"
BENCH_LIB_NAME = "libcondense_deploy_bench_ops.so"


def _newest_source() -> float:
    files = [BUILD, *(p for p in (ROOT / "csrc").rglob("*") if p.is_file())]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory) -> Path:
    """The built library and the micro-kernel test driver: the package's copy when it is newer than
    the sources, else a fresh build in a temporary folder."""
    have = ROOT / "condense_deploy" / "_native"
    built = [have / LIB_NAME, have / BENCH_LIB_NAME, have / "test_microkernels"]
    if all(p.exists() for p in built) and min(p.stat().st_mtime for p in built) > _newest_source():
        return have
    out = tmp_path_factory.mktemp("native")
    subprocess.run(
        ["bash", str(BUILD), "--test", "--out", str(out)], check=True, capture_output=True, text=True
    )
    return out


@pytest.fixture(scope="session")
def lib_path(native_dir) -> str:
    return str(native_dir / LIB_NAME)


@pytest.fixture(scope="session")
def bench_lib_path(native_dir) -> str:
    """The bench-only library: DenseBlock and GroupedConv."""
    return str(native_dir / BENCH_LIB_NAME)


def _isas(lib_path: str) -> list[str]:
    import ctypes

    lib = ctypes.CDLL(lib_path)
    lib.condense_deploy_isas.restype = ctypes.c_char_p
    return lib.condense_deploy_isas().decode().split(",")


@pytest.fixture(scope="session")
def isas(lib_path) -> list[str]:
    return _isas(lib_path)


# ----------------------------------------------------------------------------------------------
# Parameters as a converted model has them, and the numpy reference of the contract.


def dense_block_ref(x, p):
    """The contract's meaning: the package's numpy reference (float64 inside), one copy for all tests."""
    a = p["attrs"]
    return dense_block_reference(x, p["index"], p["bn_scale"], p["bn_shift"], p["w1"], p["b1"], p["w3"],
                                 growth=a["growth"], mid=a["mid"], groups_1x1=a["groups_1x1"],
                                 groups_3x3=a["groups_3x3"], kept=list(a["kept"]))


# ----------------------------------------------------------------------------------------------
# Models


def session(model, lib_path, threads=1, isa=None):
    old = os.environ.get("CONDENSE_DEPLOY_ISA")
    if isa:
        os.environ["CONDENSE_DEPLOY_ISA"] = isa
    try:
        so = ort.SessionOptions()
        so.register_custom_ops_library(lib_path)
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    finally:
        if isa:
            if old is None:
                del os.environ["CONDENSE_DEPLOY_ISA"]
            else:
                os.environ["CONDENSE_DEPLOY_ISA"] = old


def _close(got, want, atol=1e-4, rtol=1e-4):
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want)
    bad = err > atol + rtol * np.abs(want)
    assert not bad.any(), f"max abs err {err.max():.3g} at {np.unravel_index(err.argmax(), err.shape)}"


# ----------------------------------------------------------------------------------------------
# Correctness

# (C condense factor, G groups, C0, growth, layers)
CONFIGS = [(2, 2, 8, 4, 3), (4, 4, 16, 8, 3), (8, 8, 16, 8, 4), (4, 2, 16, 8, 3), (2, 4, 8, 8, 2)]


@pytest.mark.parametrize("condense,groups,c0,growth,layers", CONFIGS)
@pytest.mark.parametrize("hw", [(7, 7), (13, 11), (1, 1)])
def test_dense_block_matches_reference(lib_path, condense, groups, c0, growth, layers, hw):
    rng = np.random.default_rng(condense * 100 + groups * 10 + hw[0])
    p = dense_params(rng, c0, growth, layers, groups, condense)
    x = rng.normal(0, 1, (2, c0, *hw)).astype(np.float32)
    want = dense_block_ref(x, p)
    got = session(dense_block_model(p, c0), lib_path).run(None, {"X": x})[0]
    _close(got, want)
    assert np.array_equal(got[:, :c0], x)


def test_dense_block_every_isa_and_threads(lib_path, isas):
    """Every ISA this CPU runs, 1 and 2 threads: all match the reference; results per ISA do not
    depend on the thread count (bit-identical). Shapes reach each kernel family: position vectors,
    channel vectors (small images), row bands (1-2 outputs per group on wide images), and the 1x1
    and 3x3 alternating over bands of a large image."""
    rng = np.random.default_rng(7)
    for c0, growth, layers, groups, n, h, w in [
        (48, 16, 3, 8, 3, 14, 13),
        (32, 64, 2, 4, 1, 14, 14),  # C=G=4 block 4: channel-vector 1x1 (64 outputs) and 3x3 (16) at 14x14
        (16, 8, 2, 4, 2, 30, 26),
        (16, 8, 2, 8, 1, 27, 33),
        (16, 8, 2, 8, 1, 97, 101),  # several 1x1 chunks, row bands following them, in image bands
        (16, 16, 2, 4, 1, 64, 70),  # image bands with the position-vector 3x3 (4 outputs per group)
    ]:
        p = dense_params(rng, c0, growth, layers, groups, groups)
        x = rng.normal(0, 1, (n, c0, h, w)).astype(np.float32)
        want = dense_block_ref(x, p)
        model = dense_block_model(p, c0)
        for isa in isas:
            one = session(model, lib_path, threads=1, isa=isa).run(None, {"X": x})[0]
            two = session(model, lib_path, threads=2, isa=isa).run(None, {"X": x})[0]
            _close(one, want)
            assert np.array_equal(one, two), isa


def test_dense_block_imagenet_like_shapes(lib_path):
    """Block-5-like channel counts (large K per group, 7x7) and a block-1-like 1-output group."""
    rng = np.random.default_rng(3)
    for c0, growth, layers, hw in [(1040, 128, 2, 7), (16, 8, 2, 28)]:
        p = dense_params(rng, c0, growth, layers, 8, 8)
        x = rng.normal(0, 1, (1, c0, hw, hw)).astype(np.float32)
        got = session(dense_block_model(p, c0), lib_path, threads=2).run(None, {"X": x})[0]
        _close(got, dense_block_ref(x, p), atol=2e-4)


def test_dense_block_params_as_inputs(lib_path):
    """Non-constant parameters are packed at each run: same result as initializers."""
    rng = np.random.default_rng(11)
    p = dense_params(rng, 16, 8, 2, 4, 4)
    x = rng.normal(0, 1, (1, 16, 9, 9)).astype(np.float32)
    names = ("index", "bn_scale", "bn_shift", "w1", "b1", "w3")
    sess = session(dense_block_model(p, 16, as_inputs=names), lib_path)
    got = sess.run(None, {"X": x, **{n: p[n] for n in names}})[0]
    _close(got, dense_block_ref(x, p))


def test_dense_block_repeated_runs_and_shapes(lib_path):
    """The cached workspace is reused across runs and rebuilt when the input shape changes."""
    rng = np.random.default_rng(5)
    p = dense_params(rng, 8, 4, 2, 2, 2)
    sess = session(dense_block_model(p, 8), lib_path, threads=2)
    for shape in [(1, 8, 5, 6), (2, 8, 5, 6), (1, 8, 12, 3), (1, 8, 5, 6)]:
        x = rng.normal(0, 1, shape).astype(np.float32)
        _close(sess.run(None, {"X": x})[0], dense_block_ref(x, p))


def _bn_of_every_kind(p, rng):
    """BN scales of both signs, zero, and tiny ones whose |shift / scale| is beyond the float range
    (inputs always or never active), as trained models can have them."""
    s, b = p["bn_scale"].copy(), p["bn_shift"].copy()
    kind = rng.integers(0, 6, s.size)
    s[kind == 1] *= -1.0
    s[kind == 2] = 0.0
    s[kind == 3] = np.where(rng.random((kind == 3).sum()) < 0.5, 2e-38, -2e-38)
    b[kind == 3] = np.where(rng.random((kind == 3).sum()) < 0.5, 8.0, -8.0)
    return dict(p, bn_scale=s.astype(np.float32), bn_shift=b.astype(np.float32))


def test_dense_block_bn_scales_of_every_sign_and_size(lib_path, isas):
    """The 1x1 runs BN + ReLU folded into its weights (a max or min clamp per input): negative, zero
    and tiny scales match the reference on every ISA, with the clamp fused into the position-vector
    1x1 (a group's outputs fit a tile) and through the separate clamp gather (larger groups, and the
    channel-vector 1x1 of small images)."""
    rng = np.random.default_rng(21)
    shapes = [(16, 8, 3, 8, 30, 26), (16, 16, 2, 4, 19, 23), (16, 8, 2, 8, 9, 9), (16, 16, 2, 2, 21, 19),
              (16, 16, 2, 2, 7, 7)]
    for c0, growth, layers, groups, h, w in shapes:
        p = _bn_of_every_kind(dense_params(rng, c0, growth, layers, groups, groups), rng)
        x = rng.normal(0, 1, (1, c0, h, w)).astype(np.float32)
        want = dense_block_ref(x, p)
        model = dense_block_model(p, c0)
        for isa in isas:
            _close(session(model, lib_path, isa=isa).run(None, {"X": x})[0], want)


@pytest.mark.parametrize("groups,h,w", [(8, 24, 20), (2, 24, 20), (2, 7, 7)])
def test_dense_block_infinite_bn_shift_runs_unfolded(lib_path, isas, groups, h, w):
    """A BN shift of +inf cannot be folded into the 1x1: that block keeps BN + ReLU in the separate
    gather, and the infinity reaches the outputs as the plain arithmetic says (inf, or NaN where
    infinities of both signs meet), as in the reference."""
    rng = np.random.default_rng(9)
    c0 = 16
    p = dense_params(rng, c0, 8, 1, groups, groups)
    p["bn_shift"] = p["bn_shift"].copy()
    p["bn_shift"][0] = np.inf  # input 0 of group 0, whose 1x1 weights [mid / groups][K] are made positive
    k = p["attrs"]["kept"][0] // groups
    col0 = slice(0, (p["attrs"]["mid"] // groups) * k, k)
    p["w1"] = p["w1"].copy()
    p["w1"][col0] = np.abs(p["w1"][col0])
    x = rng.normal(0, 1, (1, c0, h, w)).astype(np.float32)
    with np.errstate(invalid="ignore"):  # inf - inf in the reference's sums
        want = dense_block_ref(x, p)
    assert not np.isfinite(want).all()
    model = dense_block_model(p, c0)
    for isa in isas:
        got = session(model, lib_path, isa=isa).run(None, {"X": x})[0]
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.array_equal(np.isposinf(got), np.isposinf(want))
        finite = np.isfinite(want)
        _close(got[finite], want[finite])


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("groups,h,w", [(8, 24, 20), (2, 24, 20), (2, 7, 7)])
def test_dense_block_nan_input_contributes_nothing(lib_path, isas, sign, groups, h, w):
    """A NaN input value goes through BN + ReLU as 0 (folded: it clamps to the threshold), so the new
    channels stay finite: the same as an input far on the inactive side of every BN using it (the
    clamp fused into the 1x1, and through the separate gather for larger groups and small images)."""
    rng = np.random.default_rng(5)
    c0 = 16
    p = dense_params(rng, c0, 8, 2, groups, groups)
    p["bn_scale"] = (sign * p["bn_scale"]).astype(np.float32)
    x = rng.normal(0, 1, (1, c0, h, w)).astype(np.float32)
    nan_at = rng.random(x.shape) < 0.05
    x[nan_at] = np.nan
    want = dense_block_ref(np.where(nan_at, np.float32(-sign * 1e30), x), p)
    model = dense_block_model(p, c0)
    for isa in isas:
        got = session(model, lib_path, isa=isa).run(None, {"X": x})[0]
        assert np.array_equal(got[:, :c0], x, equal_nan=True)
        _close(got[:, c0:], want[:, c0:])


@pytest.mark.parametrize(
    "k,group,relu,bias", [(1, 8, 0, True), (3, 8, 1, False), (3, 4, 0, True), (1, 1, 1, False)]
)
def test_grouped_conv_matches_reference(bench_lib_path, isas, k, group, relu, bias):
    lib_path = bench_lib_path
    rng = np.random.default_rng(k * 10 + group)
    c, o = 32, 16
    w = rng.normal(0, np.sqrt(2 / (c // group * k * k)), (o, c // group, k, k)).astype(np.float32)
    b = rng.normal(0, 0.1, o).astype(np.float32) if bias else None
    x = rng.normal(0, 1, (2, c, 13, 7 if group != 8 else 29)).astype(np.float32)
    want = grouped_conv_reference(
        x.astype(np.float64), w.astype(np.float64), group, None if b is None else b.astype(np.float64)
    )
    if relu:
        want = np.maximum(want, 0)
    for isa in isas:
        got = session(grouped_conv_model(w, b, group, relu), lib_path, threads=2, isa=isa).run(
            None, {"X": x}
        )[0]
        _close(got, want)
    got = session(grouped_conv_model(w, b, group, relu, w_as_input=True), lib_path).run(
        None, {"X": x, "Wt": w}
    )[0]
    _close(got, want)


def test_grouped_conv_is_bench_only(lib_path):
    """No graph pass emits GroupedConv: the shipped library leaves it to the bench-only one."""
    w = np.ones((8, 4, 1, 1), np.float32)
    with pytest.raises(Exception, match="GroupedConv"):
        session(grouped_conv_model(w, None, 2, 0), lib_path)


def test_registration_on_an_older_onnxruntime_returns_a_failure_status(lib_path):
    """An onnxruntime whose C API is older than the library's headers: RegisterCustomOps registers
    nothing and returns a failure status, made through API version 1, that names both versions."""
    import ctypes

    create_status_t = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
    get_api_t = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)
    get_version_t = ctypes.CFUNCTYPE(ctypes.c_void_p)

    class ApiBase(ctypes.Structure):  # OrtApiBase: GetApi, GetVersionString
        _fields_ = [("GetApi", get_api_t), ("GetVersionString", get_version_t)]

    status, made, asked = 0x5A5A0, [], []
    create_status = create_status_t(lambda code, msg: made.append((code, msg.decode())) or status)
    api_v1 = (ctypes.c_void_p * 1)(ctypes.cast(create_status, ctypes.c_void_p))  # CreateStatus comes first
    version = ctypes.create_string_buffer(b"1.16.3")
    base = ApiBase(get_api_t(lambda v: asked.append(v) or (ctypes.addressof(api_v1) if v == 1 else None)),
                   get_version_t(lambda: ctypes.addressof(version)))
    lib = ctypes.CDLL(lib_path)
    lib.RegisterCustomOps.restype = ctypes.c_void_p
    lib.RegisterCustomOps.argtypes = [ctypes.c_void_p, ctypes.POINTER(ApiBase)]
    built_for = lib.condense_deploy_ort_api_version()

    assert lib.RegisterCustomOps(None, ctypes.byref(base)) == status
    assert asked == [built_for, 1]
    assert len(made) == 1 and made[0][0] == 1  # ORT_FAIL
    assert f"C API version {built_for}" in made[0][1] and "(1.16.3)" in made[0][1]


def test_isa_report(lib_path, isas):
    import ctypes

    lib = ctypes.CDLL(lib_path)
    lib.condense_deploy_isa.restype = ctypes.c_char_p
    assert lib.condense_deploy_isa().decode() == isas[-1]
    assert isas[0] == "scalar"
    # the AArch64 feature probe's report: empty off AArch64 (the emulated tests check it there)
    lib.condense_deploy_cpu_features.restype = ctypes.c_char_p
    features = lib.condense_deploy_cpu_features().decode()
    if platform.machine() == "aarch64":
        assert features.startswith("asimd") and " tiles=" in features
    else:
        assert features == ""


def test_isa_names_match_the_kernel_files_and_the_old_sse_spelling_still_works(lib_path, isas, monkeypatch):
    """Each x86 table is named as its ukernels/<family>/<isa>.cc files; CONDENSE_DEPLOY_ISA=sse (the
    earlier name of sse2) still picks sse2."""
    import ctypes

    families = [d for d in (ROOT / "csrc" / "ukernels").iterdir() if d.is_dir() and d.name.startswith("f32-")]
    for isa in isas:
        assert all((family / f"{isa}.cc").is_file() for family in families), isa
    if "sse2" not in isas:
        pytest.skip("no SSE2 table on this architecture")
    lib = ctypes.CDLL(lib_path)
    lib.condense_deploy_isa.restype = ctypes.c_char_p
    monkeypatch.setenv("CONDENSE_DEPLOY_ISA", "sse")
    assert lib.condense_deploy_isa().decode() == "sse2"


# ----------------------------------------------------------------------------------------------
# Bad inputs: each runs in a subprocess, so that a crash fails the test instead of killing pytest.

_BAD_PRELUDE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import onnxruntime as ort
    sys.path.insert(0, {tests!r})
    import test_native_ops as t
    from onnx import TensorProto
    lib = {lib!r}
    def expect_error(fn, *words):
        try:
            fn()
        except Exception as e:  # onnxruntime's own exception types
            msg = str(e)
            missing = [w for w in words if w.lower() not in msg.lower()]
            print("RAISED", type(e).__name__, "missing:" if missing else "", missing, msg[:300])
            sys.exit(3 if missing else 0)
        print("NO ERROR")
        sys.exit(2)
    rng = np.random.default_rng(0)
    p = t.dense_params(rng, 16, 8, 2, 4, 4)
    x = rng.normal(0, 1, (1, 16, 6, 6)).astype(np.float32)
    """
)

BAD_CASES = {
    "x_float64": """
m = t.dense_block_model(p, 16, x_type=TensorProto.DOUBLE)
expect_error(lambda: t.session(m, lib).run(None, {"X": x.astype(np.float64)}))
""",
    "x_int32": """
m = t.dense_block_model(p, 16, x_type=TensorProto.INT32)
expect_error(lambda: t.session(m, lib).run(None, {"X": x.astype(np.int32)}))
""",
    "x_rank3": """
m = t.dense_block_model(p, 16, x_shape=[16, 6, 6])
expect_error(lambda: t.session(m, lib).run(None, {"X": x[0]}), "rank 4")
""",
    "x_rank5": """
m = t.dense_block_model(p, 16, x_shape=None)
m.graph.input[0].type.tensor_type.shape.Clear()
expect_error(lambda: t.session(m, lib).run(None, {"X": x[None]}), "rank 4")
""",
    "index_out_of_range": """
p["index"][3] = 16 + 0  # layer 0 has 16 input channels
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib).run(None, {"X": x}), "out of range")
""",
    "index_huge": """
p["index"][-1] = 10**12
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "out of range")
""",
    "index_negative": """
p["index"][0] = -1
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "out of range")
""",
    "too_few_channels": """
m = t.dense_block_model(p, 16, x_shape=["N", "C", "H", "W"])
expect_error(lambda: t.session(m, lib).run(None, {"X": x[:, :4]}), "out of range")
""",
    "w1_wrong_size": """
p["w1"] = p["w1"][:-1]
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "w1")
""",
    "w3_wrong_size_as_input": """
m = t.dense_block_model(p, 16, as_inputs=("w3",))
expect_error(lambda: t.session(m, lib).run(None, {"X": x, "w3": p["w3"][:5]}), "w3")
""",
    "index_float_initializer": """
p["index"] = p["index"].astype(np.float32)
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib))
""",
    "kept_not_divisible": """
p["attrs"]["kept"] = [7, 12]
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "divisible")
""",
    "growth_not_divisible": """
p["attrs"]["groups_3x3"] = 3
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "divisible")
""",
    "negative_attr": """
p["attrs"]["growth"] = -8
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "growth")
""",
    "missing_attr": """
del p["attrs"]["mid"]
expect_error(lambda: t.session(t.dense_block_model(p, 16), lib), "mid")
""",
    "bn_scale_wrong_size_as_input": """
m = t.dense_block_model(p, 16, as_inputs=("bn_scale",))
expect_error(lambda: t.session(m, lib).run(None, {"X": x, "bn_scale": p["bn_scale"][:3]}), "bn_scale")
""",
    "gconv_channels": """
w = np.ones((8, 4, 3, 3), np.float32)
m = t.grouped_conv_model(w, None, 2, 0)
expect_error(lambda: t.session(m, lib).run(None, {"X": np.ones((1, 6, 5, 5), np.float32)}), "channels")
""",
    "gconv_kernel_size": """
w = np.ones((8, 4, 5, 5), np.float32)
expect_error(lambda: t.session(t.grouped_conv_model(w, None, 2, 0), lib), "3, 3")
""",
    "gconv_bias_size": """
w = np.ones((8, 4, 1, 1), np.float32)
expect_error(lambda: t.session(t.grouped_conv_model(w, np.ones(3, np.float32), 2, 0), lib), "B")
""",
    "gconv_rank": """
w = np.ones((8, 4, 1, 1), np.float32)
m = t.grouped_conv_model(w, None, 2, 0)
m.graph.input[0].type.tensor_type.shape.Clear()
expect_error(lambda: t.session(m, lib).run(None, {"X": np.ones((8, 5, 5), np.float32)}), "rank 4")
""",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inputs_raise(lib_path, bench_lib_path, case):
    lib = bench_lib_path if case.startswith("gconv_") else lib_path
    code = _BAD_PRELUDE.format(tests=str(ROOT / "tests"), lib=lib) + BAD_CASES[case]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"


# ----------------------------------------------------------------------------------------------
# The C++ micro-kernel test driver, natively and for aarch64 under qemu.


def test_microkernels_native(native_dir):
    r = subprocess.run([str(native_dir / "test_microkernels")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout


def test_microkernels_aarch64_under_qemu(tmp_path):
    if not shutil.which("aarch64-linux-gnu-g++") or not shutil.which("qemu-aarch64-static"):
        pytest.skip("aarch64-linux-gnu-g++ or qemu-aarch64-static missing")
    subprocess.run(
        ["bash", str(BUILD), "--arch", "aarch64", "--test", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (tmp_path / LIB_NAME).exists()
    # the HWCAP/MIDR probe picks the tile class per core (qemu reports the emulated core's MIDR and
    # HWCAP); CONDENSE_DEPLOY_NEON_TILES overrides it, so both classes run on both cores
    runs = [("cortex-a72", None, "cpu: asimd midr=0x410fd083; NEON tiles narrow"),
            ("neoverse-n1", None, "cpu: asimd fp16 dotprod midr=0x414fd0c1; NEON tiles wide"),
            ("cortex-a72", "wide", "NEON tiles wide"),
            ("neoverse-n1", "narrow", "NEON tiles narrow")]
    for cpu, tiles, expected in runs:
        env = dict(os.environ, CONDENSE_DEPLOY_NEON_TILES=tiles or "")
        # the fp16 checks do not depend on the NEON tiles: once per core
        only_fp32 = ["--no-fp16"] if tiles else []
        r = subprocess.run(
            ["qemu-aarch64-static", "-cpu", cpu, str(tmp_path / "test_microkernels"), *only_fp32],
            capture_output=True,
            text=True,
            timeout=900,  # a loaded 2-core machine: 1.5 min of CPU took 4.5 min of wall time
            env=env,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert expected in r.stdout, (cpu, tiles, r.stdout)
        assert "neon" in r.stdout and "OK" in r.stdout
        # precision fp16: kernels and whole blocks against fp32 where the core has FP16 arithmetic,
        # refused where it has not
        if tiles:
            assert "fp16" not in r.stdout.split("\n", 1)[1], r.stdout
        elif cpu == "neoverse-n1":
            assert "neonfp16 (vl 8, fp16)" in r.stdout and "block 5 C=G=8" in r.stdout, r.stdout
        else:
            refusal = ("fp16: refused: DenseBlock: precision fp16 needs FP16 arithmetic (ARMv8.2 "
                       "fphp+asimdhp, e.g. Cortex-A76 / Raspberry Pi 5); this CPU has: asimd midr=0x410fd083")
            assert refusal in r.stdout, r.stdout
