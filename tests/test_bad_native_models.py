"""Models with our custom ops that break the op contract (docs/native-ops.md): every attribute is
checked for its type as well as its value, every input for its type, rank and size; what the library
cannot see through onnxruntime's C API (an attribute it does not read) is refused by the session
factory's audit. Each is an error when the session is created, never a silently different model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from _clean import assert_clean_error
from _native_fuzz import Case, build, conv_config, dense_config, run_case
from _onnx_models import native_block_net
from onnx import helper

from condense_deploy.cli import cli
from condense_deploy.native import library

pytestmark = pytest.mark.skipif(not library.is_available(), reason="native kernels not built (make kernels)")


def _bench_library() -> str:
    try:
        return library.bench_library_path()
    except Exception:  # noqa: BLE001 - CondenseDeployError: not built
        # `make test` builds the shipped library only; the slow fuzz target covers GroupedConv in any case
        pytest.skip("bench-only library not built (scripts/build-kernels.sh --bench)")


def _refusal(case: Case, lib: str) -> str:
    """onnxruntime's message when it refuses ``case`` (fails the test when the model runs)."""
    import onnxruntime as ort

    data, feeds = build(case)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.register_custom_ops_library(lib)
    with pytest.raises(Exception) as refused:  # noqa: PT011 - onnxruntime's pybind exception types
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]).run(None, feeds)
    return str(refused.value)


@pytest.mark.parametrize(("name", "value", "got"), [
    ("relu", helper.make_attribute("relu", 1.0), "got a float"),
    ("group", helper.make_attribute("group", [2]), "got ints"),
    ("group", helper.make_attribute("group", "2"), "got a string"),
])
def test_grouped_conv_attribute_of_another_type(name: str, value: onnx.AttributeProto, got: str) -> None:
    base = conv_config(np.random.default_rng(0))
    valid = Case("valid", "GroupedConv", base["attrs"], base["params"], base["x"], valid=True,
                 reference=lambda: np.zeros(0))
    lib = _bench_library()
    assert "refused" not in (run_case(valid, lib, 1) or "")  # the same model with int attributes runs
    attrs = {**base["attrs"], name: value}
    message = _refusal(Case("bad", "GroupedConv", attrs, base["params"], base["x"], valid=False), lib)
    assert f"mismatched attribute type: '{name}' must be an int, {got}" in message


def test_an_empty_bias_is_not_no_bias() -> None:
    base = conv_config(np.random.default_rng(1))
    params = {**base["params"], "B": np.zeros(0, np.float32)}
    case = Case("bad", "GroupedConv", base["attrs"], params, base["x"], valid=False)
    assert "B has 0 elements" in _refusal(case, _bench_library())


@pytest.mark.parametrize(("change", "fragment"), [
    ({"growth": helper.make_attribute("growth", 4.0)}, "'growth' must be an int, got a float"),
    ({"kept": helper.make_attribute("kept", 4)}, "'kept' must be ints, got one int"),
    ({"kept": helper.make_attribute("kept", [4.0])}, "'kept' must be ints, got floats"),
])
def test_dense_block_attribute_of_another_type(change: dict, fragment: str) -> None:
    base = dense_config(np.random.default_rng(2))
    case = Case("bad", "DenseBlock", {**base["attrs"], **change}, base["params"], base["x"], valid=False)
    assert fragment in _refusal(case, library.library_path())


def test_dense_block_parameters_have_rank_one() -> None:
    base = dense_config(np.random.default_rng(3))
    params = {**base["params"], "w1": base["params"]["w1"].reshape(1, -1)}
    case = Case("bad", "DenseBlock", base["attrs"], params, base["x"], valid=False)
    assert "input w1 must have rank 1" in _refusal(case, library.library_path())


@pytest.mark.parametrize(("attribute", "fragment"), [
    (helper.make_attribute("stride", 2), "attribute 'stride' is not in the op contract"),
    (helper.make_attribute("mid", 8.0), "mismatched attribute type"),
])
def test_the_cli_refuses_a_node_off_contract_in_one_line(
        runner, tmp_path: Path, attribute: onnx.AttributeProto, fragment: str) -> None:
    path = native_block_net(tmp_path / "native.onnx")
    model = onnx.load(str(path))
    block = next(n for n in model.graph.node if n.op_type == "DenseBlock")
    kept = [a for a in block.attribute if a.name != attribute.name]
    del block.attribute[:]
    block.attribute.extend([*kept, attribute])
    onnx.save(model, str(path))
    result = runner.invoke(cli, ["bench", str(path), "--runs", "1", "--warmup", "0"])
    assert_clean_error(result, 1, str(path), fragment)


# ---- the optional `precision` attribute ---------------------------------------------------------

def _has_fp16() -> bool:
    """Whether this CPU runs the fp16 kernels (AArch64 with FP16 arithmetic; never x86)."""
    import ctypes

    lib = ctypes.CDLL(library.library_path())
    lib.condense_deploy_cpu_features.restype = ctypes.c_char_p
    return " fp16 " in f" {lib.condense_deploy_cpu_features().decode()} "


def test_dense_block_precision_fp32_is_the_default_bit_for_bit() -> None:
    import onnxruntime as ort

    base = dense_config(np.random.default_rng(4))
    outputs = []
    for attrs in (base["attrs"], {**base["attrs"], "precision": "fp32"}):
        data, feeds = build(Case("fp32", "DenseBlock", attrs, base["params"], base["x"], valid=True))
        options = ort.SessionOptions()
        options.register_custom_ops_library(library.library_path())
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, feeds)[0])
    assert np.array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize(("value", "fragment"), [
    (helper.make_attribute("precision", 16), "'precision' must be a string, got one int"),
    (helper.make_attribute("precision", 16.0), "'precision' must be a string, got a float"),
    (helper.make_attribute("precision", "fp64"),
     "attribute 'precision' must be \"fp32\" or \"fp16\", got \"fp64\""),
    (helper.make_attribute("precision", "FP16"), "got \"FP16\""),
])
def test_dense_block_precision_of_another_type_or_value(value: onnx.AttributeProto, fragment: str) -> None:
    base = dense_config(np.random.default_rng(5))
    attrs = {**base["attrs"], "precision": value}
    case = Case("bad", "DenseBlock", attrs, base["params"], base["x"], valid=False)
    assert fragment in _refusal(case, library.library_path())


def test_dense_block_precision_fp16_is_refused_without_fp16_arithmetic(monkeypatch) -> None:
    """On a CPU without ARMv8.2 FP16 arithmetic (every x86 CPU) the kernel is not created, whatever
    CONDENSE_DEPLOY_ISA says; the message names what the CPU lacks."""
    if _has_fp16():
        pytest.skip("this CPU has FP16 arithmetic")
    base = dense_config(np.random.default_rng(6))
    attrs = {**base["attrs"], "precision": "fp16"}
    case = Case("bad", "DenseBlock", attrs, base["params"], base["x"], valid=False)
    for isa in ("", "scalar"):
        monkeypatch.setenv("CONDENSE_DEPLOY_ISA", isa)
        message = _refusal(case, library.library_path())
        assert "DenseBlock: precision fp16 needs FP16 arithmetic (ARMv8.2 fphp+asimdhp" in message
        assert message.count("precision fp16 needs") == 1


@pytest.mark.parametrize(("precision", "fragment"), [
    ("fp16", "DenseBlock: precision fp16 needs FP16 arithmetic"),
    ("fp64", "attribute 'precision' must be one of 'fp32', 'fp16', got 'fp64'"),
    (16, "mismatched attribute type: 'precision' must be STRING, got INT"),
])
def test_the_cli_refuses_a_precision_it_cannot_run_in_one_line(
        runner, tmp_path: Path, monkeypatch, precision: object, fragment: str) -> None:
    if precision == "fp16" and _has_fp16():
        pytest.skip("this CPU has FP16 arithmetic")
    monkeypatch.setenv("CONDENSE_DEPLOY_ISA", "scalar")  # no way around the refusal
    path = native_block_net(tmp_path / "native.onnx")
    model = onnx.load(str(path))
    block = next(n for n in model.graph.node if n.op_type == "DenseBlock")
    block.attribute.append(helper.make_attribute("precision", precision))
    onnx.save(model, str(path))
    result = runner.invoke(cli, ["bench", str(path), "--runs", "1", "--warmup", "0"])
    line = assert_clean_error(result, 1, str(path), fragment)
    assert line.count("precision") <= 2, line
