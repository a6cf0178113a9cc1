"""onnx_info.py: describe an ONNX file without torch (opset, shapes with symbolic dims, op histogram,
weights, size, metadata), its text form, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from condense_deploy.errors import CondenseDeployError
from condense_deploy.graph.onnx_info import describe_onnx, format_description


def small_model(path: Path, batch: int | str = "N") -> Path:
    """Gather(axis=1, int64 constant) -> Conv 1x1 (with bias) -> Relu -> GlobalAveragePool -> Flatten."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4, 1, 1)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    index = numpy_helper.from_array(np.array([3, 1, 0, 2], np.int64), "index")
    nodes = [
        helper.make_node("Gather", ["input", "index"], ["g"], axis=1),
        helper.make_node("Conv", ["g", "w", "b"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 4, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 8])],
        [weight, bias, index],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "condense_deploy.arch_params", json.dumps({"stages": [1, 2], "note": "x" * 300})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_describe(tmp_path: Path) -> None:
    path = small_model(tmp_path / "m.onnx")
    info = describe_onnx(path)
    assert info["opset"] == 17 and info["opset_imports"] == {"ai.onnx": 17}
    assert info["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["N", 4, 6, 6]}]
    assert info["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["N", 8]}]
    assert info["op_types"] == {"Conv": 1, "Flatten": 1, "Gather": 1, "GlobalAveragePool": 1, "Relu": 1}
    assert info["nodes"] == 5
    assert info["params"] == 8 * 4 + 8  # float weights only
    assert info["int_constants"] == 4  # the index list
    assert info["initializers"] == 3
    assert info["file_size"] == path.stat().st_size
    assert info["producer"] == "test"
    assert json.loads(info["metadata"]["condense_deploy.arch_params"])["stages"] == [1, 2]
    json.dumps(info)  # JSON-ready, as inspect --json prints it


def test_fixed_batch_and_histogram_order(tmp_path: Path) -> None:
    info = describe_onnx(small_model(tmp_path / "m.onnx", batch=4))
    assert info["inputs"][0]["shape"] == [4, 4, 6, 6]
    assert list(info["op_types"]) == sorted(info["op_types"])  # all counts equal: by name


def test_format_description(tmp_path: Path) -> None:
    text = format_description(describe_onnx(small_model(tmp_path / "m.onnx")))
    assert "opset 17" in text
    assert "input:     input float32 [N, 4, 6, 6]" in text
    assert "output:    logits float32 [N, 8]" in text
    assert "params:    40 float weights" in text
    assert "Gather 1" in text
    assert "arch_params" in text and "condense_deploy.arch_params" not in text
    assert max(len(line) for line in text.splitlines()) < 200  # long metadata is cut in the text form


def test_constant_nodes_count_as_weights(tmp_path: Path) -> None:
    ones = numpy_helper.from_array(np.ones((2, 3), np.float32))
    const = helper.make_node("Constant", [], ["k"], value=ones)
    add = helper.make_node("Add", ["x", "k"], ["y"])
    graph = helper.make_graph([const, add], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "c.onnx"))
    assert describe_onnx(tmp_path / "c.onnx")["params"] == 6


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(CondenseDeployError, match="no such file"):
        describe_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00not protobuf" * 50)
    with pytest.raises(CondenseDeployError, match="junk.onnx"):
        describe_onnx(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(CondenseDeployError, match="empty.onnx"):
        describe_onnx(empty)


def test_torch_free(tmp_path: Path) -> None:
    path = small_model(tmp_path / "m.onnx")
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "from condense_deploy.graph.onnx_info import describe_onnx, format_description\n"
        f"print(format_description(describe_onnx({str(path)!r})).splitlines()[2])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("input:")


def test_inspect_command_dispatches_onnx(tmp_path: Path, runner) -> None:
    from condense_deploy.cli import cli

    path = small_model(tmp_path / "m.onnx")
    result = runner.invoke(cli, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["op_types"]["Gather"] == 1
    result = runner.invoke(cli, ["inspect", str(tmp_path / "nope.onnx")])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output
