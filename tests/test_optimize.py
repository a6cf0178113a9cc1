"""optimize_onnx modes, the optimize command (verification, no-overwrite, errors)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from test_onnx_passes import consistent_bn, export, random_converted, run

from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError
from condense_deploy.graph import optimize as O
from condense_deploy.runtime.sessions import session_options

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    import torch

    model, x, _ = random_converted(4, 4, seed=5)
    consistent_bn(model)  # as conversion leaves it
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    folder = tmp_path_factory.mktemp("opt")
    proto = export(model, folder / "m.onnx")
    onnx.save(proto, str(folder / "m.onnx"))
    return folder / "m.onnx", proto, x, y


@pytest.mark.parametrize("mode", ["none", "fast", "tuned"])
def test_modes_are_exact_and_recorded(small, mode):
    _, proto, x, y = small
    optimized, report = O.optimize_onnx(proto, mode)
    np.testing.assert_allclose(run(optimized, x), y, atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in optimized.metadata_props}
    assert json.loads(meta[O.METADATA_KEY])["mode"] == mode
    if mode == "tuned":
        assert report["choices"] and all(c["form"] in O.FORMS for c in report["choices"].values())
        whole = report["whole_model"]  # tuned keeps per-conv choices only when they win as a whole
        assert whole["kept"] == ("tuned" if whole["tuned_ms"] < whole["fast_ms"] else "fast")
        if whole["kept"] == "fast":
            fast, _ = O.optimize_onnx(proto, "fast")
            assert [n.op_type for n in optimized.graph.node] == [n.op_type for n in fast.graph.node]
    if mode != "none":
        assert "Transpose" not in report["ops_after"]
        assert report["ops_after"]["BatchNormalization"] < report["ops_before"]["BatchNormalization"]


def test_unknown_mode(small):
    with pytest.raises(CondenseDeployError, match="mode"):
        O.optimize_onnx(small[1], "fastest")


def test_optimize_command(small, tmp_path, runner):
    source, _, x, y = small
    target = tmp_path / "o.onnx"
    result = runner.invoke(cli, ["optimize", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "max abs diff" in result.output
    np.testing.assert_allclose(run(onnx.load(str(target)), x), y, atol=1e-4, rtol=0)
    before = target.read_bytes()
    again = runner.invoke(cli, ["optimize", str(source), "-o", str(target)])
    assert again.exit_code == 1 and "Error:" in again.output and "--force" in again.output
    assert "Traceback" not in again.output and target.read_bytes() == before
    forced = runner.invoke(cli, ["optimize", str(source), "-o", str(target), "--force", "--tuned"])
    assert forced.exit_code == 0, forced.output
    assert "forms chosen" in forced.output


def test_verification_failure_writes_nothing(small, tmp_path, runner, monkeypatch):
    source, proto, _, _ = small
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    init = next(i for i in broken.graph.initializer if len(i.dims) == 4)
    arr = onnx.numpy_helper.to_array(init) + 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    monkeypatch.setattr(O, "optimize_onnx", lambda *a, **k: (broken, {"mode": "fast"}))
    target = tmp_path / "bad.onnx"
    result = runner.invoke(cli, ["optimize", str(source), "-o", str(target)])
    assert result.exit_code == 1 and "max abs diff" in result.output and "Traceback" not in result.output
    assert not target.exists() and not list(tmp_path.iterdir())


def test_not_an_onnx_file(tmp_path, runner):
    bad = tmp_path / "x.onnx"
    bad.write_text("not a model")
    result = runner.invoke(cli, ["optimize", str(bad), "-o", str(tmp_path / "y.onnx")])
    assert result.exit_code == 1 and result.output.startswith("Error:") and "Traceback" not in result.output
    assert not (tmp_path / "y.onnx").exists()


def test_session_options():
    options = session_options(2, spinning=False, denormal_as_zero=True)
    assert options.intra_op_num_threads == 2
