"""--precision fp16: the native recipe's opt-in for DenseBlocks computed in ARMv8.2 FP16 arithmetic.

On this x86 machine fp16 blocks cannot run: the export verifies the same graph at fp32 and says so,
every command that would run the model refuses it with one line, and ``info`` says fp16 blocks do not
run here. The fp16 kernels themselves are checked under qemu (tests/test_fp16_emulated.py).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from condense_deploy.graph.metadata import PRECISION_KEY
from condense_deploy.native import precision as P
from condense_deploy.native.contract import DENSE_BLOCK

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIZE = 30
NO_FP16_HERE = P.cpu_fp16_problem() is not None


@pytest.fixture(scope="module")
def native_library() -> str:
    import os

    from condense_deploy.native import library as native

    if not native.is_available():
        if os.environ.get("CI"):
            pytest.fail("native kernels not built (make kernels)")
        pytest.skip("native kernels not built (make kernels)")
    return native.library_path()


@pytest.fixture(scope="module")
def exports(native_library, tmp_path_factory):
    """A small random converted CondenseNet (C=G=8) exported as is, native fp32 and native fp16."""
    from test_onnx_passes import random_converted

    from condense_deploy.export import export_onnx

    model = random_converted(8, 8, seed=1)[0]
    folder = tmp_path_factory.mktemp("fp16")
    paths = {name: folder / f"{name}.onnx" for name in ("none", "fp32", "fp16")}
    results = {
        "none": export_onnx(model, paths["none"], input_size=(3, SIZE, SIZE), optimize="none"),
        "fp32": export_onnx(model, paths["fp32"], input_size=(3, SIZE, SIZE), optimize="native"),
        "fp16": export_onnx(model, paths["fp16"], input_size=(3, SIZE, SIZE), optimize="native",
                            precision="fp16"),
    }
    return model, paths, results


def _blocks(path) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == DENSE_BLOCK]


def _precision_attribute(node: onnx.NodeProto) -> str | None:
    return next((a.s.decode() for a in node.attribute if a.name == P.PRECISION_ATTRIBUTE), None)


def test_fp16_export_marks_every_block_and_records_the_precision(exports):
    _, paths, results = exports
    blocks = _blocks(paths["fp16"])
    assert len(blocks) == 2 and all(_precision_attribute(n) == "fp16" for n in blocks)
    meta = {p.key: p.value for p in onnx.load(str(paths["fp16"])).metadata_props}
    assert meta[PRECISION_KEY] == "fp16"
    assert json.loads(meta["condense_deploy.optimize"])["precision"] == "fp16"
    verification = json.loads(meta["condense_deploy.verification"])
    assert verification["verified_at"] == "fp32" and max(verification["max_abs_diff"].values()) <= 1e-4
    result = results["fp16"]
    assert result.precision == "fp16" and result.fp16 is not None
    if NO_FP16_HERE:
        assert result.fp16 == {"ran": False, "why": P.cpu_fp16_problem()} == verification["fp16"]


def test_fp32_stays_the_default_and_writes_no_attribute(exports):
    _, paths, results = exports
    assert all(_precision_attribute(n) is None for n in _blocks(paths["fp32"]))
    meta = {p.key: p.value for p in onnx.load(str(paths["fp32"])).metadata_props}
    assert meta[PRECISION_KEY] == "fp32"
    assert results["fp32"].precision == "fp32" and results["fp32"].fp16 is None
    assert PRECISION_KEY not in {p.key for p in onnx.load(str(paths["none"])).metadata_props}


def test_the_fp16_graph_is_the_fp32_graph_but_for_the_attribute(exports):
    from condense_deploy.graph.native import block_precisions, with_precision

    _, paths, _ = exports
    fp16, fp32 = onnx.load(str(paths["fp16"])), onnx.load(str(paths["fp32"]))
    assert block_precisions(fp16) == {"fp16": 2} and block_precisions(fp32) == {"fp32": 2}
    assert with_precision(fp16, "fp32").graph == fp32.graph
    assert with_precision(fp32, "fp16").graph == fp16.graph
    assert P.uses_fp16(fp16.SerializeToString()) and not P.uses_fp16(fp32.SerializeToString())


def test_fp16_needs_the_native_recipe():
    from condense_deploy.errors import CondenseDeployError
    from condense_deploy.export import check_options
    from condense_deploy.graph.optimize import check_precision

    for mode in ("none", "fast", "tuned"):
        with pytest.raises(CondenseDeployError, match=f"fp16 needs optimize mode native.*not {mode}"):
            check_precision(mode, "fp16")
    with pytest.raises(CondenseDeployError, match="precision must be one of fp32, fp16, not 'fp8'"):
        check_options(17, "dynamic", "torchscript", "native", "fp8")
    check_precision("native", "fp16")


@pytest.mark.parametrize("command", ["export", "optimize"])
def test_cli_fp16_without_native_is_a_usage_error(command, exports, runner, tmp_path):
    from condense_deploy.cli import cli

    _, paths, _ = exports
    source = "condensenet74_cifar" if command == "export" else str(paths["none"])
    done = runner.invoke(cli, [command, source, "-o", str(tmp_path / "x.onnx"), "--precision", "fp16"])
    assert done.exit_code == 2
    assert "Error: --precision fp16 needs --optimize native (got --optimize fast)" in done.output
    assert not (tmp_path / "x.onnx").exists()
    bad = runner.invoke(cli, [command, source, "-o", str(tmp_path / "x.onnx"), "--optimize", "native",
                              "--precision", "fp8"])
    assert bad.exit_code == 2 and "'fp8' is not one of 'fp32', 'fp16'" in bad.output


def test_cli_optimize_native_fp16(exports, runner, tmp_path):
    from condense_deploy.cli import cli

    _, paths, _ = exports
    out = tmp_path / "n16.onnx"
    done = runner.invoke(cli, ["optimize", str(paths["none"]), "-o", str(out), "--optimize", "native",
                               "--precision", "fp16"])
    assert done.exit_code == 0, done.output
    assert "dense blocks on the native kernels: 2, precision fp16" in done.output
    assert "the same graph at fp32" in done.output
    if NO_FP16_HERE:
        assert "fp16 blocks not run here: this CPU (x86_64) has no ARMv8.2 FP16 arithmetic" in done.output
    assert all(_precision_attribute(n) == "fp16" for n in _blocks(out))


def test_cli_export_and_verify_say_the_precision_and_what_was_checked(native_library, runner, tmp_path):
    from condense_deploy.cli import cli

    out = tmp_path / "c16.onnx"
    done = runner.invoke(cli, ["export", "condensenet50_cifar", "-o", str(out), "--optimize", "native",
                               "--precision", "fp16"])
    assert done.exit_code == 0, done.output
    assert "optimize native, precision fp16" in done.output
    assert "max abs diff vs PyTorch, the same graph at fp32: batch 1" in done.output
    if NO_FP16_HERE:
        assert "fp16 blocks not run here" in done.output and "--precision fp16` there" in done.output
    checked = runner.invoke(cli, ["verify", str(out), "condensenet50_cifar"])
    assert checked.exit_code == 0, checked.output
    assert "condensenet50_cifar at fp32 (its fp16 blocks as fp32): max abs diff batch 1" in checked.output
    if NO_FP16_HERE:
        assert "fp16 blocks not run here" in checked.output


def test_inspect_shows_the_precision(exports, runner):
    from condense_deploy.cli import cli

    _, paths, _ = exports
    done = runner.invoke(cli, ["inspect", str(paths["fp16"])])
    assert done.exit_code == 0, done.output
    assert "precision: fp16 (2 DenseBlock ops); runs only on a CPU with ARMv8.2 FP16" in done.output
    as_json = json.loads(runner.invoke(cli, ["inspect", str(paths["fp16"]), "--json"]).output)
    assert as_json["dense_block_precision"] == {"fp16": 2}
    plain = runner.invoke(cli, ["inspect", str(paths["fp32"])]).output
    assert "precision: fp32 (2 DenseBlock ops)\n" in plain


@pytest.mark.skipif(not NO_FP16_HERE, reason="this CPU runs fp16 blocks")
def test_commands_refuse_an_fp16_model_with_one_line(exports, runner, tmp_path):
    from PIL import Image

    from condense_deploy.cli import cli
    from condense_deploy.errors import CondenseDeployError
    from condense_deploy.runtime.sessions import create_session

    _, paths, _ = exports
    model = str(paths["fp16"])
    with pytest.raises(CondenseDeployError, match="precision fp16 needs FP16 arithmetic .*x86_64"):
        create_session(model)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(photo)
    for args in (["bench", model, "--runs", "1", "--warmup", "0"], ["predict", model, str(photo)]):
        done = runner.invoke(cli, args)
        assert done.exit_code == 1, done.output
        errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in done.output, done.output
        assert errors[0].startswith(f"Error: {model}: this CPU cannot run it: DenseBlock: precision fp16 "
                                    "needs FP16 arithmetic (ARMv8.2"), errors[0]
        assert "this is an x86_64 CPU" in errors[0] and "as an ONNX model" not in errors[0]


def test_info_says_whether_fp16_blocks_run_here(native_library, runner):
    from condense_deploy.cli import cli
    from condense_deploy.runtime.install_info import describe_install

    done = runner.invoke(cli, ["info"])
    assert done.exit_code == 0, done.output
    fp16 = describe_install()["kernels"]["fp16"]
    if NO_FP16_HERE:
        assert fp16 == {"runs": False, "why": P.cpu_fp16_problem()}
        assert "fp16 blocks:  no: this CPU" in done.output
    else:
        assert "fp16 blocks:  yes" in done.output


def test_on_aarch64_the_kernels_probe_decides(monkeypatch, tmp_path):
    """The library's own probe (``condense_deploy_cpu_features``) says whether the CPU has fp16."""
    monkeypatch.setattr(P, "host_machine", lambda: "aarch64")
    monkeypatch.setattr(P, "library_problem", lambda path: None)
    answers = {"a76": "asimd fp16 dotprod midr=0x414fd0b1 tiles=wide",
               "a72": "asimd midr=0x410fd083 tiles=narrow"}
    for core, text in answers.items():
        monkeypatch.setattr(P, "library_queries",
                            lambda path, *names, text=text: {"condense_deploy_cpu_features": text})
        problem = P.cpu_fp16_problem(str(tmp_path / "lib.so"))
        assert (problem is None) == (core == "a76")
    assert "aarch64 without fphp/asimdhp" in (problem or "")
