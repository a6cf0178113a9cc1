"""Each ONNX rewrite computes exactly what the unoptimized graph computes (onnxruntime) and what
PyTorch computes, on random converted CondenseNets of several C/G values (CIFAR-sized)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from condense_deploy.graph import experimental as X
from condense_deploy.graph import passes as P
from condense_deploy.runtime.sessions import create_session

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ATOL = 1e-4
# (condense factor C, groups G): equal, and G != C both ways
CONFIGS = [(2, 2), (4, 4), (8, 8), (4, 2), (2, 4)]


def random_converted(c: int, g: int, seed: int = 0):  # -> (model, torch input, torch output)
    """A small converted CondenseNet with random BN statistics/affine and random valid indexes."""
    import torch
    from torch import nn

    from condense_deploy.architectures.condensenet import CondenseNet
    from condense_deploy.architectures.config import CondenseNetConfig
    from condense_deploy.architectures.layers import CondenseConv, CondenseLinear

    torch.manual_seed(seed)
    growth = [8, 16]
    cfg = CondenseNetConfig(stages=[2, 2], growth=growth, group_1x1=g, group_3x3=g, condense_factor=c,
                            num_classes=10, kind="cifar")
    model = CondenseNet(cfg, converted=True).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(n, generator=gen))  # signs of both kinds
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
            elif isinstance(m, CondenseConv):
                source = m.in_channels * c // g
                per_group = m.in_channels // m.groups
                m.index.copy_(torch.cat([torch.randperm(source, generator=gen)[:per_group]
                                         for _ in range(m.groups)]))
            elif isinstance(m, CondenseLinear):
                m.index.copy_(torch.randperm(cfg.num_features, generator=gen)[:m.in_features])
    x = torch.randn(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        y = model(x)
    return model, x.numpy(), y.numpy()


def export(model, path: Path, simplify: bool = True) -> onnx.ModelProto:
    """The project's export recipe (TorchScript exporter, opset 17, dynamic batch, onnxsim)."""
    import torch

    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(str(path))
    if simplify:
        import onnxsim

        proto, ok = onnxsim.simplify(proto)
        assert ok
    return proto


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = create_session(model, threads=1)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.fixture(scope="module", params=CONFIGS, ids=[f"C{c}G{g}" for c, g in CONFIGS])
def exported(request, tmp_path_factory):
    c, g = request.param
    model, x, y = random_converted(c, g)
    proto = export(model, tmp_path_factory.mktemp("onnx") / "m.onnx")
    return proto, x, y, (c, g)


def _check(before: onnx.ModelProto, after: onnx.ModelProto, x: np.ndarray, y_torch: np.ndarray) -> None:
    onnx.checker.check_model(after)
    y_after = run(after, x)
    np.testing.assert_allclose(y_after, run(before, x), atol=1e-5, rtol=0)
    np.testing.assert_allclose(y_after, y_torch, atol=ATOL, rtol=0)


def test_shuffle_to_gather(exported):
    proto, x, y, _ = exported
    after = P.shuffle_to_gather(proto)
    assert "Transpose" not in ops(after) and "Reshape" not in ops(after)
    assert ops(after).count("Gather") == ops(proto).count("Gather") + ops(proto).count("Transpose")
    _check(proto, after, x, y)


def test_fold_bn_into_conv_through_the_shuffle(exported):
    proto, x, y, _ = exported
    base = P.shuffle_to_gather(proto)
    after = P.fold_bn_into_conv(base)
    layers = ops(proto).count("Transpose")
    assert ops(after).count("BatchNormalization") == ops(base).count("BatchNormalization") - layers
    _check(proto, after, x, y)


def test_relu_before_gather_and_merge(exported):
    proto, x, y, _ = exported
    base = P.fold_bn_into_conv(P.shuffle_to_gather(proto))
    after = P.merge_gathers(P.relu_before_gather(base))
    graph = P.GraphView(after)
    moved = [n for n in graph.nodes if n.op_type == "Relu" and graph.producer[n.input[0]].op_type == "Conv"]
    assert len(moved) == ops(proto).count("Transpose")
    _check(proto, after, x, y)


@pytest.mark.parametrize("max_out", [1, 2, 4])
@pytest.mark.parametrize("duplicate", [False, True], ids=["multiplier", "duplicated"])
def test_grouped_conv_to_depthwise(exported, max_out, duplicate):
    proto, x, y, _ = exported
    base = P.relu_before_gather(P.fold_bn_into_conv(P.shuffle_to_gather(proto)))
    after = P.grouped_conv_to_depthwise(base, max_outputs_per_group=max_out, duplicate_producer=duplicate)
    if duplicate:  # every 3x3 depthwise conv (fed by a conv) then has multiplier 1
        graph = P.GraphView(after)
        for n in graph.nodes:
            w = graph.const(n.input[1]) if n.op_type == "Conv" else None
            if w is not None and w.shape[1] == 1 and w.shape[2] == 3 and graph.attr(n, "group", 1) > 1:
                assert graph.attr(n, "group") == w.shape[0]
    if max_out == 4:  # stage 1 has 8 / G <= 4 outputs per group in every config
        graph = P.GraphView(after)
        assert any(n.op_type == "Conv" and graph.const(n.input[1]).shape[1] == 1
                   and graph.attr(n, "group", 1) > 1 for n in graph.nodes)
    _check(proto, after, x, y)


def test_pad_group_inputs_and_outputs(exported):
    proto, x, y, (c, g) = exported
    base = P.relu_before_gather(P.fold_bn_into_conv(P.shuffle_to_gather(proto)))
    padded_in = P.pad_group_inputs(base, block=8, select=lambda name: True)
    _check(proto, padded_in, x, y)
    graph = P.GraphView(padded_in)
    grouped = [n for n in graph.nodes if n.op_type == "Conv" and graph.attr(n, "group", 1) > 1]
    assert grouped and all(graph.const(n.input[1]).shape[1] % 8 == 0 for n in grouped)
    padded_out = P.pad_group_outputs(padded_in, block=8, select=lambda name: True)
    _check(proto, padded_out, x, y)


def test_bn_to_depthwise_conv(exported):
    proto, x, y, _ = exported
    after = X.bn_to_depthwise_conv(proto)
    assert "BatchNormalization" not in ops(after)
    _check(proto, after, x, y)


def consistent_bn(model) -> None:
    """Give each converted layer's BN the parameters of its source channel at every slot, as
    conversion does (the random fixture draws them per slot, so a duplicated channel differs)."""
    import torch

    from condense_deploy.architectures.layers import CondenseConv

    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CondenseConv):
                sources = int(m.index.max()) + 1
                per_source = [torch.randn(sources, generator=gen), torch.randn(sources, generator=gen) * 0.2,
                              torch.randn(sources, generator=gen) * 0.2,
                              torch.rand(sources, generator=gen) + 0.5]
                norm = m.norm
                for tensor, values in zip((norm.weight, norm.bias, norm.running_mean, norm.running_var),
                                          per_source, strict=True):
                    tensor.copy_(values[m.index])


@pytest.mark.parametrize("cg", CONFIGS, ids=[f"C{c}G{g}" for c, g in CONFIGS])
def test_lgc_as_dense_conv(cg, tmp_path):
    import torch

    model, x, _ = random_converted(*cg)
    consistent_bn(model)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    proto = export(model, tmp_path / "m.onnx")
    base = P.relu_before_gather(P.fold_bn_into_conv(P.shuffle_to_gather(proto)))
    after = X.lgc_as_dense_conv(base, block=8)
    from condense_deploy.architectures.layers import CondenseConv

    layers = sum(isinstance(m, CondenseConv) for m in model.modules())
    # every layer's input (16, 24, 32, 48 channels) is <= 48 and block-aligned: no index Gather left
    # in front of a grouped 1x1 conv; the shuffle Gathers stay
    assert ops(after).count("Gather") == ops(base).count("Gather") - layers
    graph = P.GraphView(after)
    assert not [n for n in graph.nodes if n.op_type == "Conv" and graph.attr(n, "group", 1) > 1
                and graph.const(n.input[1]).shape[2:] == (1, 1)]
    _check(proto, after, x, y)
    # in fast's order (after the depthwise rewrite duplicated some 1x1 convs' outputs) it applies
    # to the same layers and stays exact
    duplicated = P.grouped_conv_to_depthwise(base, duplicate_producer=True)
    fast = X.lgc_as_dense_conv(duplicated, block=8)
    assert ops(fast).count("Gather") == ops(duplicated).count("Gather") - layers
    _check(proto, P.pad_group_outputs(P.pad_group_inputs(fast, block=8), block=8), x, y)


def test_lgc_as_dense_conv_respects_size_alignment_and_bn(exported):
    proto, x, y, _ = exported
    base = P.relu_before_gather(P.fold_bn_into_conv(P.shuffle_to_gather(proto)))
    assert X.lgc_as_dense_conv(base, max_inputs=8, block=8).SerializeToString() == base.SerializeToString()
    assert X.lgc_as_dense_conv(base, block=7).SerializeToString() == base.SerializeToString()
    # the fixture draws BN per slot: convs whose index repeats a channel must be left alone, and
    # whatever is rewritten must stay exact
    _check(proto, X.lgc_as_dense_conv(base, block=8), x, y)


def test_all_passes_on_the_raw_unsimplified_export(tmp_path):
    model, x, y = random_converted(4, 4, seed=3)
    proto = export(model, tmp_path / "raw.onnx", simplify=False)
    after = proto
    for name in ("shuffle_to_gather", "fold_bn_into_conv", "relu_before_gather", "merge_gathers",
                 "grouped_conv_to_depthwise", "pad_group_inputs", "pad_group_outputs", "eliminate_dead"):
        after = P.PASSES[name](after)
    assert "Transpose" not in ops(after)
    _check(proto, after, x, y)


# ------------------------------------------------------------------ hand-made graphs (no torch)

def _model(nodes, inits, cin=8, cout=8, hw=5):
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", cin, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", cout, hw, hw])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_merge_gathers_composes_indexes():
    i = np.array([3, 1, 0, 2, 7, 6, 5, 4], np.int64)
    j = np.array([0, 0, 5, 2, 7, 1, 1, 3], np.int64)
    model = _model([helper.make_node("Gather", ["x", "i"], ["t"], axis=1),
                    helper.make_node("Gather", ["t", "j"], ["y"], axis=1)], {"i": i, "j": j})
    after = P.merge_gathers(model)
    assert ops(after) == ["Gather"]
    x = np.random.default_rng(0).standard_normal((2, 8, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(run(after, x), x[:, i[j]])


def test_bn_not_folded_through_a_duplicating_gather():
    rng = np.random.default_rng(1)
    inits = {"w": rng.standard_normal((8, 8, 1, 1)).astype(np.float32),
             "i": np.array([0, 0, 1, 2, 3, 4, 5, 6], np.int64),
             "s": rng.random(8).astype(np.float32) + 0.5, "b": rng.random(8).astype(np.float32),
             "m": rng.random(8).astype(np.float32), "v": rng.random(8).astype(np.float32) + 0.5}
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"]),
                    helper.make_node("Gather", ["c", "i"], ["g"], axis=1),
                    helper.make_node("BatchNormalization", ["g", "s", "b", "m", "v"], ["y"])], inits)
    after = P.fold_bn_into_conv(model)
    assert "BatchNormalization" in ops(after)  # channel 0 is read twice with two BN parameters


def test_passes_leave_the_input_model_untouched(exported):
    proto, _, _, _ = exported
    before = proto.SerializeToString()
    for rewrite in [*P.PASSES.values(), *X.PASSES.values()]:
        rewrite(proto)
    assert proto.SerializeToString() == before


def test_torch_free_modules():
    code = ("import sys; import condense_deploy.graph.passes, condense_deploy.graph.optimize, "
            "condense_deploy.graph.quantize, condense_deploy.commands.optimize; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
