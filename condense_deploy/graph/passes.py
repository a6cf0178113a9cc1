"""Pure ``onnx.ModelProto -> onnx.ModelProto`` rewrites that make converted CondenseNets fast in
onnxruntime. Torch-free (onnx + numpy), so they run on a board.

Every pass computes exactly the same function (up to float rounding of folded constants); the
tests check each on random models against the unoptimized graph and against PyTorch. Why each
pass exists (measured on onnxruntime 1.32, see docs/performance.md):

- ``shuffle_to_gather``: the channel shuffle is exported as Shape/Slice/Concat/Reshape/Transpose/
  Reshape; one Gather with a constant permutation does the same with one copy and no shape ops.
- ``fold_bn_into_conv``: the BatchNormalization after the grouped 1x1 conv (behind the shuffle)
  folds into the conv's weights and bias through the permutation; standalone BN cost ~10%.
- ``relu_before_gather``: ReLU commutes with any channel Gather; moved next to the conv it fuses
  into it (FusedConv / NchwcConv activation) instead of being a separate pass over memory.
- ``merge_gathers``: Gather of Gather along the same axis is one Gather with composed indices.
- ``pad_group_inputs``: a grouped conv fed by an index Gather takes onnxruntime's NCHWc path only
  when its per-group input and output channel counts are multiples of the SIMD block (8 with
  AVX2 kernels, found by probing). The index Gather can feed each group extra copies of a channel
  whose weights are zero, so the padding costs only a few zero multiply-adds.
- ``grouped_conv_to_depthwise``: a grouped 3x3 conv with few outputs per group (1-2) runs per
  group on the slow im2col path; depthwise 3x3 (multiplier = outputs per group) plus a dense
  1x1 sum with 0/1 weights computes the same sums on fast kernels, and the shuffle Gather in
  front folds into both (depthwise does not care about channel order).
- ``pad_group_outputs``: a grouped conv whose outputs per group are below the block gets zero
  output channels up to the block, then a Gather keeps the real ones (more MACs, fast path).
- ``eliminate_dead``: drops nodes and initializers nothing reads any more.

Passes that no recipe uses (``lgc_as_dense_conv``, ``bn_to_depthwise_conv``) live in
``experimental.py``, kept for the ablation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import CondenseDeployError, first_line
from .view import GraphView

__all__ = [
    "PASSES",
    "GraphView",
    "eliminate_dead",
    "fold_bn_into_conv",
    "grouped_conv_to_depthwise",
    "merge_gathers",
    "nchwc_block",
    "pad_group_inputs",
    "pad_group_outputs",
    "relu_before_gather",
    "shuffle_to_gather",
]

_DATA_MOVEMENT = {"Reshape", "Transpose", "Shape", "Slice", "Concat", "Gather", "Unsqueeze", "Squeeze",
                  "Constant", "Cast", "Mod", "Div", "Mul", "Add", "Sub", "Flatten"}


def nchwc_block() -> int:
    """The channel block onnxruntime's NCHWc convs want on this CPU (8 on AVX2, 16 on AVX-512 MLAS).

    Probed once: the smallest block b such that a grouped conv with b inputs/outputs per group
    becomes an NchwcConv. Falls back to 8 when onnxruntime cannot be asked.
    """
    global _BLOCK
    if _BLOCK is None:
        _BLOCK = _probe_block()
    return _BLOCK


_BLOCK: int | None = None


def _probe_block() -> int:
    try:
        import onnxruntime  # noqa: F401 - only asks whether it is installed
    except ImportError:
        return 8
    import os
    import tempfile

    from ..runtime.sessions import create_session
    for block in (4, 8, 16):
        weight = numpy_helper.from_array(np.ones((2 * block, block, 1, 1), np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["y"], group=2)], "probe",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2 * block, 4, 4])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2 * block, 4, 4])], [weight])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "o.onnx")
            create_session(model, threads=None, optimized_model_path=path)
            optimized = onnx.load(path)
        if any(n.op_type == "ReorderInput" for n in optimized.graph.node):
            return block
    return 8


def make_node(op: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


def _conv_parts(g: GraphView, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(weight, bias, group) of a Conv with constant weight (bias zero when absent), else None."""
    if conv.op_type != "Conv":
        return None
    weight = g.const(conv.input[1])
    if weight is None or weight.ndim != 4:
        return None
    bias = g.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0],
                                                                                            weight.dtype)
    group = int(g.attr(conv, "group", 1))
    # a Conv no runtime can run (group < 1, channels not divisible by it) is left for onnxruntime to
    # refuse with its own reason, never rewritten on a wrong assumption
    if bias is None or bias.shape != (weight.shape[0],) or group < 1 or weight.shape[0] % group:
        return None
    return weight, bias, group


def channel_gather(g: GraphView, node: onnx.NodeProto) -> np.ndarray | None:
    """The constant 1-D index of a Gather along axis 1, else None."""
    if node.op_type != "Gather" or int(g.attr(node, "axis", 0)) != 1:
        return None
    index = g.const(node.input[1])
    if index is None or index.ndim != 1:
        return None
    return index.astype(np.int64)


def _is_permutation(index: np.ndarray, channels: int) -> bool:
    return len(index) == channels and np.array_equal(np.sort(index), np.arange(channels))


def make_conv(g: GraphView, like: onnx.NodeProto, x: str, y: str, weight: np.ndarray,
               bias: np.ndarray | None, group: int, kernel_like: bool = True) -> onnx.NodeProto:
    """A Conv with ``like``'s spatial attributes (or 1x1 defaults when ``kernel_like`` is False)."""
    inputs = [x, g.add_const((like.name or "conv") + "_w", weight.astype(np.float32))]
    if bias is not None:
        inputs.append(g.add_const((like.name or "conv") + "_b", bias.astype(np.float32)))
    attrs: dict[str, object] = {"group": int(group), "kernel_shape": list(weight.shape[2:])}
    if kernel_like:
        for key in ("pads", "strides", "dilations", "auto_pad"):
            value = g.attr(like, key)
            if value is not None:
                attrs[key] = value.decode() if isinstance(value, bytes) else value
    return make_node("Conv", inputs, [y], like.name or g.fresh("conv"), **attrs)


# ---------------------------------------------------------------------------------------------
# Passes
# ---------------------------------------------------------------------------------------------

def eliminate_dead(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove nodes whose outputs nobody reads, and unused initializers."""
    g = GraphView(model)
    needed = set(g.graph_outputs)
    keep: list[onnx.NodeProto] = []
    for node in reversed(g.nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    g.nodes = list(reversed(keep))
    return g.finish()


def _evaluate_channel_map(g: GraphView, nodes: list[onnx.NodeProto], x: str, y: str,
                          channels: int, spatial: tuple[int, int] = (2, 3)) -> np.ndarray | None:
    """If ``nodes`` map x [N, C, H, W] to y by a fixed channel permutation, return it (by evaluation)."""
    from onnx.reference import ReferenceEvaluator

    inits = [numpy_helper.from_array(g.consts[i], i) for n in nodes for i in n.input
             if i in g.consts and i not in {o for m in nodes for o in m.output}]
    inits = list({t.name: t for t in inits}.values())  # each constant once (same name, same value)
    graph = helper.make_graph(
        [helper.make_node(n.op_type, list(n.input), list(n.output), **{
            a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in nodes],
        "probe", [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, None)], inits)
    opset = [o for o in g.model.opset_import if o.domain in ("", "ai.onnx")]
    probe = helper.make_model(graph, opset_imports=opset or [helper.make_opsetid("", 17)])
    plane = spatial[0] * spatial[1]
    data = np.arange(2 * channels * plane, dtype=np.float32).reshape(2, channels, *spatial)
    try:
        out = cast(Any, ReferenceEvaluator(probe).run(None, {x: data}))[0]
    except Exception:  # noqa: BLE001 - anything the evaluator cannot run is simply not rewritten
        return None
    if out.shape != data.shape:
        return None
    perm = (out[0, :, 0, 0] / plane).round().astype(np.int64)
    if not _is_permutation(perm, channels) or not np.array_equal(out, data[:, perm]):
        return None
    return perm


def _ancestors_until(g: GraphView, name: str, stop: str) -> list[onnx.NodeProto] | None:
    """Nodes computing ``name`` from ``stop`` and constants only, in graph order; None otherwise."""
    found: dict[int, onnx.NodeProto] = {}
    todo = [name]
    while todo:
        tensor = todo.pop()
        if tensor == stop or tensor in g.consts and tensor not in g.producer:
            continue
        node = g.producer.get(tensor)
        if node is None or node.op_type not in _DATA_MOVEMENT:
            return None
        if id(node) not in found:
            found[id(node)] = node
            todo.extend(i for i in node.input if i)
    return [n for n in g.nodes if id(n) in found]


def _single_kind(g: GraphView, name: str, op_type: str) -> onnx.NodeProto | None:
    """The one consumer of ``name`` with this op type (others may only be Shape nodes)."""
    users = g.consumers.get(name, [])
    main = [u for u in users if u.op_type == op_type]
    if len(main) != 1 or any(u.op_type not in (op_type, "Shape") for u in users) or name in g.graph_outputs:
        return None
    return main[0]


def rewrite_until_done(model: onnx.ModelProto,
                        rewrite: Callable[[GraphView, onnx.NodeProto], bool]) -> onnx.ModelProto:
    """Apply ``rewrite`` at the first node where it applies (it returns True), then scan again from
    the start, until no node accepts it. A rewrite changes the node list, so every scan starts over."""
    g = GraphView(model)
    while any(rewrite(g, node) for node in list(g.nodes)):
        pass
    return eliminate_dead(g.finish())


def shuffle_to_gather(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Reshape -> Transpose -> Reshape channel shuffle by one constant Gather."""

    def rewrite(g: GraphView, node: onnx.NodeProto) -> bool:
        if node.op_type != "Reshape":
            return False
        transpose = _single_kind(g, node.output[0], "Transpose")
        if transpose is None:
            return False
        last = _single_kind(g, transpose.output[0], "Reshape")
        if last is None:
            return False
        x = node.input[0]
        producer = g.producer.get(x)
        parts = _conv_parts(g, producer) if producer is not None else None
        if parts is None:
            return False
        channels = parts[0].shape[0]
        chain = _ancestors_until(g, last.output[0], x)
        if chain is None:
            return False
        inside = {id(n) for n in chain}
        if any(id(user) not in inside for t in (node.output[0], transpose.output[0])
               for user in g.consumers[t]):
            return False  # an intermediate tensor is read outside the shuffle
        perm = _evaluate_channel_map(g, chain, x, last.output[0], channels, g.spatial(x))
        if perm is None:
            return False
        index = g.add_const("shuffle_index", perm)
        gather = make_node("Gather", [x, index], [last.output[0]], g.fresh("shuffle_gather"), axis=1)
        g.replace([node, transpose, last], [gather], last)
        return True

    return rewrite_until_done(model, rewrite)


def fold_bn_into_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold BatchNormalization into the Conv before it, also through channel-permuting Gathers."""

    def rewrite(g: GraphView, bn: onnx.NodeProto) -> bool:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1 and any(bn.output[1:]):
            return False
        params = g.consts_of(bn.input[1:5])
        if params is None:
            return False
        scale, shift, mean, var = (p.astype(np.float64) for p in params)
        eps = float(g.attr(bn, "epsilon", 1e-5))
        # walk back through permutation Gathers to a Conv with one consumer
        chain, conv = g.walk_up(bn.input[0], through=lambda n: channel_gather(g, n) is not None,
                                stop=lambda n: n.op_type == "Conv")
        parts = _conv_parts(g, conv) if conv is not None else None
        if conv is None or parts is None:
            return False
        weight, bias, group = parts
        channels = weight.shape[0]
        indexes = [channel_gather(g, gather) for gather in chain]
        perms = [i for i in indexes if i is not None and _is_permutation(i, channels)]
        if len(perms) != len(chain):
            return False
        src = np.arange(channels)  # BN input channel j is conv output channel src[j]
        for index in reversed(perms):
            src = src[index]
        a = scale / np.sqrt(var + eps)
        b = shift - mean * a
        a_conv = np.empty(channels)
        b_conv = np.empty(channels)
        a_conv[src] = a
        b_conv[src] = b
        new_weight = (weight.astype(np.float64) * a_conv[:, None, None, None]).astype(weight.dtype)
        new_bias = (bias.astype(np.float64) * a_conv + b_conv).astype(weight.dtype)
        out = conv.output[0]
        new_conv = make_conv(g, conv, conv.input[0], out, new_weight, new_bias, group)
        # the last node of the chain (or the conv) now writes the BN's output
        if chain:
            chain[0].output[0] = bn.output[0]
        else:
            new_conv.output[0] = bn.output[0]
        g.replace([conv, bn], [new_conv], conv)
        return True

    return rewrite_until_done(model, rewrite)


def relu_before_gather(model: onnx.ModelProto) -> onnx.ModelProto:
    """Gather(axis=1) -> Relu becomes Relu -> Gather, so the Relu lands right after the conv."""

    def rewrite(g: GraphView, relu: onnx.NodeProto) -> bool:
        if relu.op_type != "Relu":
            return False
        gather = g.producer.get(relu.input[0])
        if (gather is None or channel_gather(g, gather) is None
                or g.only_consumer(gather.output[0]) is None):
            return False
        source = gather.input[0]
        if g.only_consumer(source) is None:
            return False
        mid = g.fresh(source + "_relu")
        new_relu = make_node("Relu", [source], [mid], g.fresh(relu.name or "relu"))
        new_gather = make_node("Gather", [mid, gather.input[1]], [relu.output[0]],
                           g.fresh(gather.name or "gather"), axis=1)
        g.replace([gather, relu], [new_relu, new_gather], gather)
        return True

    return rewrite_until_done(model, rewrite)


def merge_gathers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Gather(Gather(x, i), j) along axis 1 is Gather(x, i[j])."""

    def rewrite(g: GraphView, outer: onnx.NodeProto) -> bool:
        j = channel_gather(g, outer)
        if j is None:
            return False
        inner = g.producer.get(outer.input[0])
        i = channel_gather(g, inner) if inner is not None else None
        if inner is None or i is None or g.only_consumer(inner.output[0]) is None:
            return False
        index = g.add_const("merged_index", i[j])
        merged = make_node("Gather", [inner.input[0], index], [outer.output[0]], g.fresh("merged_gather"),
                       axis=1)
        g.replace([inner, outer], [merged], outer)
        return True

    return rewrite_until_done(model, rewrite)


def _per_channel(g: GraphView, node: onnx.NodeProto) -> bool:
    """A Relu, or a BatchNormalization with constant parameters: elementwise per channel."""
    if node.op_type == "Relu":
        return True
    return node.op_type == "BatchNormalization" and g.consts_of(node.input[1:5]) is not None


def grouped_conv_to_rewrite(g: GraphView, conv: onnx.NodeProto, done: set[str],
                             select: Callable[[str], bool] | None,
                             ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(weight, bias, group) of a grouped Conv that a per-conv pass may still rewrite: one it has not
    rewritten already (``done``) and that ``select`` (if given) picks; None for anything else."""
    if conv.op_type != "Conv" or conv.name in done or (select and not select(conv.name)):
        return None
    parts = _conv_parts(g, conv)
    return None if parts is None or parts[2] == 1 else parts


# rewrite(g, conv, weight, bias, group) -> the names of the nodes it leaves in conv's place (never
# rewritten again), or None where it does not apply
GroupedConvRewrite = Callable[[GraphView, onnx.NodeProto, np.ndarray, np.ndarray, int], set[str] | None]


def rewrite_grouped_convs(model: onnx.ModelProto, rewrite: GroupedConvRewrite,
                          select: Callable[[str], bool] | None = None) -> onnx.ModelProto:
    """``rewrite_until_done`` over the grouped Convs ``grouped_conv_to_rewrite`` offers, each rewritten
    at most once (the nodes a rewrite leaves are not offered again, so it cannot loop)."""
    done: set[str] = set()

    def step(g: GraphView, conv: onnx.NodeProto) -> bool:
        parts = grouped_conv_to_rewrite(g, conv, done, select)
        made = None if parts is None else rewrite(g, conv, *parts)
        if not made:
            return False
        done.update(made)
        return True

    return rewrite_until_done(model, step)


def given_bias(conv: onnx.NodeProto, bias: np.ndarray) -> np.ndarray | None:
    """``bias`` for a Conv that replaces ``conv``, or None where ``conv`` has no bias input (the
    replacement then has none either)."""
    return bias if len(conv.input) > 2 else None


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def pad_group_inputs(model: onnx.ModelProto, block: int | None = None, max_ratio: float = 1.34,
                     select: Callable[[str], bool] | None = None) -> onnx.ModelProto:
    """Pad each group's inputs of a Gather -> [BN] -> [Relu] -> grouped Conv to a multiple of ``block``.

    The padding channels repeat the group's first channel; their weights are zero, so the result is
    unchanged. BN (if present) gets neutral parameters for them. ``select(conv_name)`` limits it.
    """
    block = block or nchwc_block()

    def rewrite(g: GraphView, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray,
                group: int) -> set[str] | None:
        per_in = weight.shape[1]
        target = _round_up(per_in, block)
        if target == per_in or (select is None and target > max_ratio * per_in):
            return None
        # nodes between the index gather and the conv, elementwise per channel
        chain, gather = g.walk_up(conv.input[0], through=lambda n: _per_channel(g, n),
                                  stop=lambda n: channel_gather(g, n) is not None)
        if gather is None:
            return None
        index = channel_gather(g, gather)
        if index is None:
            return None
        slots = np.arange(group)[:, None] * per_in + np.concatenate(
            [np.arange(per_in), np.zeros(target - per_in, np.int64)])[None, :]
        slots = slots.reshape(-1)  # padded position -> original position (pads copy slot 0)
        real = np.concatenate([np.ones(per_in, bool), np.zeros(target - per_in, bool)])
        real = np.tile(real, group)
        new_nodes = []
        new_index = g.add_const("padded_index", index[slots])
        tensor = g.fresh(gather.output[0])
        new_nodes.append(make_node("Gather", [gather.input[0], new_index], [tensor], g.fresh("padded_gather"),
                               axis=1))
        for node in reversed(chain):
            out = g.fresh(node.output[0])
            if node.op_type == "Relu":
                new_nodes.append(make_node("Relu", [tensor], [out], g.fresh("relu")))
            else:
                consts = g.consts_of(node.input[1:5])
                assert consts is not None  # _per_channel took only BNs with constant parameters
                params = [c[slots] for c in consts]
                params[0] = np.where(real, params[0], 1.0).astype(params[0].dtype)
                names = [g.add_const("bn", p) for p in params]
                new_nodes.append(make_node("BatchNormalization", [tensor, *names], [out], g.fresh("bn"),
                                       epsilon=float(g.attr(node, "epsilon", 1e-5))))
            tensor = out
        new_weight = np.zeros((weight.shape[0], target) + weight.shape[2:], weight.dtype)
        per_out = weight.shape[0] // group
        for k in range(group):
            new_weight[k * per_out:(k + 1) * per_out, :per_in] = weight[k * per_out:(k + 1) * per_out]
        new_conv = make_conv(g, conv, tensor, conv.output[0], new_weight, given_bias(conv, bias), group)
        new_conv.name = conv.name
        g.replace([gather, *chain, conv], new_nodes + [new_conv], conv)
        return {conv.name}

    return rewrite_grouped_convs(model, rewrite, select)


def pad_group_outputs(model: onnx.ModelProto, block: int | None = None, max_ratio: float = 2.0,
                      select: Callable[[str], bool] | None = None) -> onnx.ModelProto:
    """Give each group of a grouped Conv zero output channels up to a multiple of ``block``,
    then Gather the real outputs back (a grouped conv off the fast path costs more than the
    extra MACs when groups have few outputs)."""
    block = block or nchwc_block()

    def rewrite(g: GraphView, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray,
                group: int) -> set[str] | None:
        per_out = weight.shape[0] // group
        target = _round_up(per_out, block)
        too_wide = select is None and target > max_ratio * per_out
        if target == per_out or weight.shape[1] % block or too_wide:
            return None
        new_weight = np.zeros((group * target,) + weight.shape[1:], weight.dtype)
        new_bias = np.zeros(group * target, weight.dtype)
        keep: list[int] = []
        for k in range(group):
            new_weight[k * target:k * target + per_out] = weight[k * per_out:(k + 1) * per_out]
            new_bias[k * target:k * target + per_out] = bias[k * per_out:(k + 1) * per_out]
            keep.extend(range(k * target, k * target + per_out))
        wide = g.fresh(conv.output[0] + "_padded")
        new_conv = make_conv(g, conv, conv.input[0], wide, new_weight, given_bias(conv, new_bias), group)
        new_conv.name = conv.name
        index = g.add_const("unpad_index", np.array(keep, np.int64))
        gather = make_node("Gather", [wide, index], [conv.output[0]], g.fresh("unpad_gather"), axis=1)
        g.replace([conv], [new_conv, gather], conv)
        return {conv.name}

    return rewrite_grouped_convs(model, rewrite, select)


def grouped_conv_to_depthwise(model: onnx.ModelProto, max_outputs_per_group: int = 2,
                              select: Callable[[str], bool] | None = None,
                              duplicate_producer: bool = False) -> onnx.ModelProto:
    """A grouped KxK conv with few outputs per group -> depthwise KxK (multiplier = outputs per
    group) + dense 1x1 conv with 0/1 weights that sums each group. A channel-permuting Gather in
    front (the shuffle) is absorbed: the depthwise conv reads the unshuffled tensor.

    onnxruntime runs a depthwise conv with a multiplier > 1 off its fast path; with
    ``duplicate_producer`` the conv (+ ReLU) that feeds it computes each channel ``multiplier``
    times instead (its weight rows repeated), so the depthwise conv has multiplier 1.
    """
    def rewrite(g: GraphView, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray,
                group: int) -> set[str] | None:
        out_channels, per_in = weight.shape[:2]
        in_channels = per_in * group
        per_out = out_channels // group
        if group == 1 or per_in == 1 or per_out > max_outputs_per_group:
            return None
        removed: list[onnx.NodeProto] = [conv]
        x = conv.input[0]
        src = np.arange(in_channels)  # conv input channel c is tensor x channel src[c]
        producer = g.producer.get(x)
        if producer is not None and g.only_consumer(x) is not None:
            index = channel_gather(g, producer)
            if index is not None and _is_permutation(index, in_channels):
                src = index
                x = producer.input[0]
                removed.append(producer)
        # depthwise output channel s*per_out + p = input s convolved with W[o=g*per_out+p, t]
        dw = np.zeros((in_channels * per_out, 1) + weight.shape[2:], weight.dtype)
        summ = np.zeros((out_channels, in_channels * per_out, 1, 1), weight.dtype)
        for c in range(in_channels):
            k, t = divmod(c, per_in)
            s = src[c]
            for p in range(per_out):
                o = k * per_out + p
                dw[s * per_out + p, 0] = weight[o, t]
                summ[o, s * per_out + p] = 1.0
        dw_groups = in_channels
        added: list[onnx.NodeProto] = []
        if duplicate_producer and per_out > 1:
            duplicated = _duplicate_producer(g, x, per_out)
            if duplicated is not None:
                old, added, x = duplicated
                removed.extend(old)
                dw_groups = in_channels * per_out
        mid = g.fresh(conv.output[0] + "_dw")
        dw_conv = make_conv(g, conv, x, mid, dw, None, dw_groups)
        dw_conv.name = conv.name + "_dw"
        sum_conv = make_conv(g, conv, mid, conv.output[0], summ, given_bias(conv, bias), 1, kernel_like=False)
        sum_conv.name = conv.name + "_sum"
        g.replace(removed, [*added, dw_conv, sum_conv], conv)
        return {conv.name, dw_conv.name, sum_conv.name}

    return rewrite_grouped_convs(model, rewrite, select)


def _duplicate_producer(g: GraphView, x: str, times: int,
                        ) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto], str] | None:
    """If ``x`` is Conv [-> Relu] with single consumers, a copy whose every output channel s is
    repeated at s*times .. s*times+times-1: (nodes to remove, nodes to add, new tensor)."""
    chain, conv = g.walk_up(x, through=lambda n: n.op_type == "Relu", stop=lambda n: True, limit=1)
    if conv is None:
        return None
    parts = _conv_parts(g, conv)
    if parts is None:
        return None
    weight, bias, group = parts
    rows = np.repeat(np.arange(weight.shape[0]), times)
    wide = g.fresh(conv.output[0] + "_dup")
    new_conv = make_conv(g, conv, conv.input[0], wide, weight[rows], bias[rows], group)
    added = [new_conv]
    out = wide
    if chain:
        out = g.fresh(x + "_dup")
        added.append(make_node("Relu", [wide], [out], g.fresh(chain[0].name or "relu")))
    return [conv, *chain], added, out


# name -> pass; each takes the model and optional keyword settings (the recipes give them)
PASSES: dict[str, Callable[..., onnx.ModelProto]] = {
    "shuffle_to_gather": shuffle_to_gather,
    "fold_bn_into_conv": fold_bn_into_conv,
    "relu_before_gather": relu_before_gather,
    "merge_gathers": merge_gathers,
    "grouped_conv_to_depthwise": grouped_conv_to_depthwise,
    "pad_group_inputs": pad_group_inputs,
    "pad_group_outputs": pad_group_outputs,
    "eliminate_dead": eliminate_dead,
}


def check_model(model: onnx.ModelProto, where: str) -> None:
    """Raise a one-line error when a pass produced an invalid model (a bug, but never silent)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise CondenseDeployError(f"{where}: produced an invalid ONNX model: {first_line(e)}") from e
