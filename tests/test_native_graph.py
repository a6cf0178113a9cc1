"""The native rewrite: every dense block of a converted CondenseNet becomes one DenseBlock node, and
the rewritten graph computes what PyTorch computes, on random converted CondenseNets of several C/G
values, odd spatial sizes and batch > 1.

Two independent checks: the op's numpy meaning (``native.dense_block_reference``, run by onnx's
reference evaluator, so the pass is tested without the C++ library) and the real kernels in
onnxruntime (the library is built by the ``native_library`` fixture)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from condense_deploy.graph.native import dense_blocks_to_native, shuffle_permutation
from condense_deploy.native.contract import DOMAIN
from condense_deploy.native.reference import dense_block_reference

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIGS = [(2, 2), (4, 4), (8, 8), (4, 2), (2, 4)]
ATOL = 1e-4


class DenseBlock(OpRun):  # the class name is the op type the evaluator matches
    op_domain = DOMAIN

    def _run(self, x, index, bn_scale, bn_shift, w1, b1, w3, growth=None, mid=None, groups_1x1=None,
             groups_3x3=None, kept=None):
        return (dense_block_reference(x, index, bn_scale, bn_shift, w1, b1, w3, growth=growth, mid=mid,
                                      groups_1x1=groups_1x1, groups_3x3=groups_3x3, kept=list(kept)),)


def _random_converted(c: int, g: int, seed: int = 0):
    from test_onnx_passes import random_converted

    return random_converted(c, g, seed)


def _export(model, size: int) -> onnx.ModelProto:
    import io

    import onnxsim
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(model, torch.zeros(1, 3, size, size), buffer, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto, ok = onnxsim.simplify(onnx.load_from_string(buffer.getvalue()))
    assert ok
    return proto


@pytest.fixture(scope="module", params=CONFIGS, ids=[f"C{c}G{g}" for c, g in CONFIGS])
def converted(request):
    """(torch model, its ONNX export at 30x30: blocks at 30x30 and 15x15, an odd size)."""
    c, g = request.param
    model, _, _ = _random_converted(c, g, seed=c * 10 + g)
    return model, _export(model, 30), (c, g)


def _torch_logits(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_shuffle_permutation_matches_the_layer():
    import torch

    from condense_deploy.architectures.layers import channel_shuffle

    x = torch.arange(24.0).view(1, 24, 1, 1)
    expected = channel_shuffle(x, 4).flatten().long().numpy()
    np.testing.assert_array_equal(shuffle_permutation(24, 4), expected)


def test_every_block_becomes_one_node(converted):
    _, proto, (c, g) = converted
    native, sites = dense_blocks_to_native(proto)
    onnx.checker.check_model(native)
    ops = [n.op_type for n in native.graph.node]
    assert ops.count("DenseBlock") == len(sites) == 2
    assert [s.layers for s in sites] == [2, 2] and [s.height for s in sites] == [30, 15]
    assert all(s.groups_1x1 == g and s.groups_3x3 == g for s in sites)
    # nothing of the layers is left: no Concat, Transpose or grouped conv outside the blocks
    assert not {"Concat", "Transpose", "Reshape"} & set(ops)
    assert sum(n.op_type == "Conv" for n in native.graph.node) == 1  # the stem
    assert any(o.domain == DOMAIN and o.version == 1 for o in native.opset_import)


def test_rewrite_matches_pytorch_by_the_ops_meaning(converted):
    model, proto, _ = converted
    native, _ = dense_blocks_to_native(proto)
    x = np.random.default_rng(1).standard_normal((3, 3, 30, 30)).astype(np.float32)
    got = ReferenceEvaluator(native, new_ops=[DenseBlock]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, _torch_logits(model, x), atol=ATOL, rtol=0)


def test_input_model_is_not_modified(converted):
    _, proto, _ = converted
    before = proto.SerializeToString()
    dense_blocks_to_native(proto)
    assert proto.SerializeToString() == before


def test_select_leaves_unpicked_blocks_to_onnxruntime(converted):
    model, proto, _ = converted
    native, sites = dense_blocks_to_native(proto, select=lambda site: site.height > 20)
    assert [s.height for s in sites] == [30]
    ops = [n.op_type for n in native.graph.node]
    assert ops.count("DenseBlock") == 1 and ops.count("Concat") == 2
    x = np.random.default_rng(2).standard_normal((2, 3, 30, 30)).astype(np.float32)
    got = ReferenceEvaluator(native, new_ops=[DenseBlock]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, _torch_logits(model, x), atol=ATOL, rtol=0)


def test_a_graph_without_dense_blocks_is_left_alone(tmp_path):
    from _onnx_models import conv_net

    proto = onnx.load(str(conv_net(tmp_path / "plain.onnx")))
    native, sites = dense_blocks_to_native(proto)
    assert sites == []
    assert [n.op_type for n in native.graph.node] == [n.op_type for n in proto.graph.node]
    assert not any(o.domain == DOMAIN for o in native.opset_import)


# --------------------------------------------------------------------- with the real kernel library

@pytest.fixture(scope="module")
def native_library() -> str:
    """The built kernel library; `make test` builds it. Missing: a skip here, a failure in CI."""
    import os

    from condense_deploy.native import library as native

    if not native.is_available():
        message = "native kernels not built (make kernels)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return native.library_path()


def test_export_native_matches_pytorch_in_onnxruntime(converted, native_library, tmp_path):
    from condense_deploy.export import export_onnx
    from condense_deploy.runtime.sessions import create_session

    model, _, (c, g) = converted
    path = tmp_path / "native.onnx"
    result = export_onnx(model, path, input_size=(3, 30, 30), optimize="native")
    assert result.optimize["mode"] == "native" and result.optimize["native_blocks"] == 2
    x = np.random.default_rng(3).standard_normal((3, 3, 30, 30)).astype(np.float32)
    expected = _torch_logits(model, x)
    for threads in (1, 2):
        session = create_session(path, threads)  # registers the library by itself
        got = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_optimize_native_cli(converted, native_library, tmp_path, runner):
    from condense_deploy.cli import cli

    _, proto, _ = converted
    source = tmp_path / "plain.onnx"
    onnx.save(proto, str(source))
    before = source.read_bytes()
    done = runner.invoke(cli, ["optimize", str(source), "-o", str(tmp_path / "n.onnx"), "--native"])
    assert done.exit_code == 0, done.output
    assert "dense blocks on the native kernels: 2" in done.output
    assert source.read_bytes() == before
    fast = runner.invoke(cli, ["optimize", str(source), "-o", str(tmp_path / "f.onnx")])
    assert fast.exit_code == 0, fast.output
    again = runner.invoke(cli, ["optimize", str(tmp_path / "f.onnx"), "-o", str(tmp_path / "ff.onnx"),
                                "--native"])  # the fast rules changed the blocks: nothing to match
    assert again.exit_code == 1 and "no CondenseNet dense block found" in again.output
    assert not (tmp_path / "ff.onnx").exists()
    both = runner.invoke(cli, ["optimize", str(source), "-o", str(tmp_path / "t.onnx"),
                               "--native", "--tuned"])
    assert both.exit_code == 2 and "--tuned and --native" in both.output


def test_a_native_model_where_the_library_is_missing_gets_one_clear_error(converted, native_library,
                                                                            tmp_path, monkeypatch, runner):
    from condense_deploy.cli import cli
    from condense_deploy.errors import CondenseDeployError
    from condense_deploy.runtime.sessions import create_session

    _, proto, _ = converted
    native, _ = dense_blocks_to_native(proto)
    path = tmp_path / "native.onnx"
    onnx.save(native, str(path))
    monkeypatch.setenv("CONDENSE_DEPLOY_KERNELS", str(tmp_path / "missing.so"))
    with pytest.raises(CondenseDeployError, match="not built here .*make kernels"):
        create_session(path)
    done = runner.invoke(cli, ["bench", str(path), "--runs", "1", "--warmup", "0"])
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert "native kernels" in done.output and "make kernels" in done.output


def test_quantize_refuses_a_native_model(converted, native_library, tmp_path, runner):
    from condense_deploy.cli import cli

    _, proto, _ = converted
    native, _ = dense_blocks_to_native(proto)
    path = tmp_path / "native.onnx"
    onnx.save(native, str(path))
    images = tmp_path / "images"
    images.mkdir()
    done = runner.invoke(cli, ["quantize", str(path), "-o", str(tmp_path / "q.onnx"),
                               "--calibration-data", str(images)])
    assert done.exit_code == 1 and "float32 only" in done.output
    assert not (tmp_path / "q.onnx").exists()


def test_verify_command_checks_a_native_export_against_its_checkpoint(native_library, tmp_path, runner):
    import torch

    from condense_deploy.architectures.registry import create_model
    from condense_deploy.cli import cli
    from condense_deploy.export import export_onnx

    torch.manual_seed(0)
    model = create_model("condensenet50_cifar", converted=True).eval()
    with torch.no_grad():  # BN statistics of both signs, so BN1 and BN2 really fold
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.2)
    checkpoint = tmp_path / "converted.pth"
    torch.save(model.state_dict(), checkpoint)
    path = tmp_path / "native.onnx"
    export_onnx(model, path, input_size=(3, 32, 32), optimize="native")
    done = runner.invoke(cli, ["verify", str(path), str(checkpoint), "--arch", "condensenet50_cifar"])
    assert done.exit_code == 0, done.output
    assert "matches" in done.output
