"""``condense-deploy convert`` and ``inspect`` end to end on files the tests write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _ckpt_factory import (
    converted_pair,
    original_converted_file,
    original_training_checkpoint,
    tiny_config,
    trained_model,
)

from condense_deploy.cli import cli
from condense_deploy.convert import convert_model


def _fails(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_convert_end_to_end(runner, tmp_path: Path) -> None:
    model = trained_model(tiny_config(4, 4))
    source = original_training_checkpoint(model, tmp_path / "checkpoint_300.pth.tar", legacy=True)
    out = tmp_path / "converted_checkpoint_300.pth.tar"
    result = runner.invoke(cli, ["convert", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "max abs diff" in result.output and "FLOPs:" in result.output and "params:" in result.output
    state = torch.load(out, weights_only=True)["state_dict"]
    expected = convert_model(model).state_dict()
    assert set(state) == {"module." + k for k in expected if not k.endswith("num_batches_tracked")}
    for key, value in state.items():
        assert torch.equal(value, expected[key[len("module."):]]), key
    # the printed counts are the converted model's
    info = json.loads(runner.invoke(cli, ["inspect", str(out), "--json"]).output)
    assert f"{info['flops']:,}" in result.output and f"{info['params']:,}" in result.output
    assert info["form"] == "converted" and info["source_format"] == "original-converted"


def test_convert_zoo_sized_checkpoint_names_the_card(runner, tmp_path: Path) -> None:
    from condense_deploy.architectures.registry import create_model

    model = create_model("condensenet50_cifar")
    model.condense(1.0)
    source = original_training_checkpoint(model, tmp_path / "model_best.pth.tar")
    out = tmp_path / "c50.pth.tar"
    result = runner.invoke(cli, ["convert", str(source), "-o", str(out), "--arch", "condensenet50_cifar"])
    assert result.exit_code == 0, result.output
    assert "condensenet50_cifar" in result.output
    assert "28,639,514" in result.output and "214,186" in result.output


def test_convert_refuses_overwrite_then_force(runner, tmp_path: Path) -> None:
    source = original_training_checkpoint(trained_model(tiny_config()), tmp_path / "t.pth.tar")
    out = tmp_path / "out.pth.tar"
    out.write_bytes(b"keep me")
    _fails(runner.invoke(cli, ["convert", str(source), "-o", str(out)]), "already exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert runner.invoke(cli, ["convert", str(source), "-o", str(out), "--force"]).exit_code == 0
    assert out.read_bytes() != b"keep me"


def test_convert_refuses_unfinished_model(runner, tmp_path: Path) -> None:
    source = original_training_checkpoint(trained_model(tiny_config(4, 4), progress=0.2), tmp_path / "e.pth")
    out = tmp_path / "out.pth.tar"
    _fails(runner.invoke(cli, ["convert", str(source), "-o", str(out)]),
           "features.denseblock_1.denselayer_1.conv_1 is at condensing stage 1 of 3")
    assert not out.exists()


def test_convert_refuses_converted_and_unsafe_files(runner, tmp_path: Path) -> None:
    _, converted = converted_pair(tiny_config())
    source = original_converted_file(converted, tmp_path / "converted.pth.tar")
    out = str(tmp_path / "o.pth")
    _fails(runner.invoke(cli, ["convert", str(source), "-o", out]), "already in converted")
    model = trained_model(tiny_config())
    pickled = tmp_path / "pickled.pth"
    torch.save(model, pickled)
    _fails(runner.invoke(cli, ["convert", str(pickled), "-o", out]),
           "unsafe unpickling", "--trust-checkpoint")
    result = runner.invoke(cli, ["convert", str(pickled), "-o", out, "--trust-checkpoint"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,fragment", [
    (["missing.pth.tar"], "no such file"),
    (["notes.txt"], "not a torch file"),
])
def test_convert_and_inspect_bad_files(runner, tmp_path: Path, args: list[str], fragment: str) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    path = str(tmp_path / args[0])
    _fails(runner.invoke(cli, ["convert", path, "-o", str(tmp_path / "o.pth")]), fragment)
    _fails(runner.invoke(cli, ["inspect", path]), fragment)


def test_inspect_zoo_names(runner) -> None:
    result = runner.invoke(cli, ["inspect", "condensenet74_c8g8", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["flops"], info["params"]) == (274_233_480, 2_935_416)
    assert isinstance(info["flops"], int) and isinstance(info["params"], int)
    assert info["name"] == "condensenet74_c8g8" and info["family"] == "condensenet"
    assert info["form"] == "converted" and info["config"]["group_1x1"] == 8
    result = runner.invoke(cli, ["inspect", "condensenet50_cifar", "--form", "training"])
    assert result.exit_code == 0, result.output
    assert "28,641,834" in result.output and "216,506" in result.output and "training" in result.output
    result = runner.invoke(cli, ["inspect", "densenet_bc100_cifar", "--json"])
    assert json.loads(result.output)["form"] == "plain"


def test_inspect_checkpoint_in_its_own_form(runner, tmp_path: Path) -> None:
    model = trained_model(tiny_config(2, 4, 4))
    source = original_training_checkpoint(model, tmp_path / "t.pth.tar")
    info = json.loads(runner.invoke(cli, ["inspect", str(source), "--json"]).output)
    assert info["form"] == "training" and info["source_format"] == "original-training"
    assert info["config"]["group_1x1"] == 2 and info["config"]["condense_factor"] == 4
    assert len(info["sha256"]) == 64 and info["name"] is None
    text = runner.invoke(cli, ["inspect", str(source)])
    assert text.exit_code == 0 and "stages=2-2-2" in text.output
    _fails(runner.invoke(cli, ["inspect", str(source), "--form", "converted"]),
           "in training form, not converted")


def test_inspect_onnx_file(runner, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("condense_deploy.graph.onnx_info")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])],
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    result = runner.invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["inspect", str(path), "--json"])
    assert result.exit_code == 0 and isinstance(json.loads(result.output), dict)


def test_command_modules_leave_torch_out() -> None:
    code = ("import sys, condense_deploy.commands.inspect, condense_deploy.commands.convert; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
