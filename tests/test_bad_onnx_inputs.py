"""ONNX files that are not what a command expects : empty, truncated, input-less,
int-typed and non-classifier models, a folder named like a model. Each is judged once, on load, with one
`Error:` line naming the input and what was expected; nothing is written."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from _clean import assert_clean_error, temp_files
from _onnx_models import conv_net, int_image_net
from onnx import TensorProto, helper, numpy_helper

from condense_deploy.cli import cli
from condense_deploy.train.synthetic import write_cifar_archive

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _inputless(path: Path) -> Path:
    """A valid model with no graph inputs: a constant goes straight to the output."""
    value = numpy_helper.from_array(
        onnx.numpy_helper.to_array(helper.make_tensor("c", TensorProto.FLOAT, [1, 10], [0.0] * 10)), "c"
    )
    node = helper.make_node("Constant", [], ["y"], value=value)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    model = helper.make_model(
        helper.make_graph([node], "inputless", [], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _feature_map(path: Path) -> Path:
    """Symbolic H/W and a feature-map output (N, 8, H, W), not classifier logits."""
    w = numpy_helper.from_array(torch.ones(8, 3, 1, 1).numpy(), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, "H", "W"])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "fm", [x], [y], [w]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _bad_models(root: Path) -> dict[str, Path]:
    good = conv_net(root / "good.onnx")
    truncated = root / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = root / "empty.onnx"
    empty.write_bytes(b"")
    return {
        "empty": empty,
        "truncated": truncated,
        "inputless": _inputless(root / "inputless.onnx"),
        "int64": int_image_net(root / "int64.onnx"),
    }


_EXPECTED = {
    "empty": "empty",
    "truncated": "not a readable ONNX model",
    "inputless": "has no inputs",
    "int64": "is int64; expected",
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _bad_models(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_cifar_archive(root, train_per_class=1, test_per_class=2, seed=0)  # cifar-10-python.tar.gz
    return root


@pytest.mark.parametrize("kind", list(_EXPECTED))
def test_optimize_blames_the_input(runner, bad, kind: str, tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    result = runner.invoke(cli, ["optimize", str(bad[kind]), "-o", str(target)])
    line = assert_clean_error(result, 1, str(bad[kind]), _EXPECTED[kind])
    assert "produced" not in line
    assert not target.exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("kind", [*_EXPECTED, "feature_map"])
def test_quantize_says_what_it_expected(runner, bad, images, kind: str, tmp_path: Path) -> None:
    source = _feature_map(tmp_path / "fm.onnx") if kind == "feature_map" else bad[kind]
    target = tmp_path / "out.onnx"
    result = runner.invoke(
        cli, ["quantize", str(source), "-o", str(target), "--calibration-data", str(images)]
    )
    line = assert_clean_error(result, 1, str(source))
    if kind == "feature_map":
        assert "expected one float32 input [N, 3, H, W] and logits [N, classes]" in line
    else:
        assert _EXPECTED[kind] in line
    assert not target.exists()


@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_inspect_and_bench_of_a_broken_file(runner, bad, kind: str) -> None:
    assert_clean_error(runner.invoke(cli, ["inspect", str(bad[kind])]), 1, str(bad[kind]))
    assert_clean_error(runner.invoke(cli, ["bench", str(bad[kind]), "--runs", "2"]), 1, str(bad[kind]))


def test_inspect_of_a_directory(runner, tmp_path: Path) -> None:
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    assert_clean_error(runner.invoke(cli, ["inspect", str(folder)]), 1, "is a directory")
    assert_clean_error(runner.invoke(cli, ["inspect", str(tmp_path)]), 1, "is a directory")
