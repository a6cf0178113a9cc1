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
- ``lgc_as_dense_conv``: a learned group conv whose whole input is small and block-aligned (the first
  dense block of the ImageNet models: 16-40 channels at 112x112) becomes BN -> ReLU -> one dense
  1x1 conv over all input channels, the pruned connections as zero weights. 8x the MACs of that
  conv, but the Gather goes, and with it the NCHWc <-> NCHW reorders around it: the whole block
  then stays in onnxruntime's blocked layout (BN turns into an NCHWc depthwise conv). The whole
  model gained only within noise, so neither ``fast`` nor ``tuned`` uses it (the ablation does).
- ``eliminate_dead``: drops nodes and initializers nothing reads any more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import CondenseDeployError

__all__ = [
    "PASSES",
    "GraphView",
    "eliminate_dead",
    "fold_bn_into_conv",
    "grouped_conv_to_depthwise",
    "lgc_as_dense_conv",
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


# ---------------------------------------------------------------------------------------------
# A small mutable view of a graph: producers, consumers, constant initializers.
# ---------------------------------------------------------------------------------------------

class GraphView:
    """Index a model's graph so passes can find producers/consumers and read/write constants."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.graph = self.model.graph
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in self.graph.initializer
        }
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes: list[onnx.NodeProto] = list(self.graph.node)
        self._counter = 0
        self._shapes: dict[str, list[int]] | None = None
        self._used: set[str] | None = None
        self.reindex()

    def reindex(self) -> None:
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.nodes:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(node)
        self.graph_outputs = {o.name for o in self.graph.output}

    def dims(self, name: str) -> list[int]:
        """Static shape of a tensor from ONNX shape inference (0 for unknown dims, [] if unknown)."""
        if self._shapes is None:
            self._shapes = {}
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model)
            except Exception:  # noqa: BLE001 - shapes are only a hint for the passes
                inferred = self.model
            graph = inferred.graph
            for info in [*graph.value_info, *graph.input, *graph.output]:
                self._shapes[info.name] = [d.dim_value if d.HasField("dim_value") else 0
                                           for d in info.type.tensor_type.shape.dim]
        return self._shapes.get(name, [])

    def spatial(self, name: str) -> tuple[int, int]:
        """Static (H, W) of a 4-D tensor, (2, 3) when unknown."""
        dims = self.dims(name)
        if len(dims) == 4 and dims[2] > 0 and dims[3] > 0:
            return dims[2], dims[3]
        return 2, 3

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        """The single node reading ``name`` (None if several, none, or it is a graph output)."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    def fresh(self, base: str) -> str:
        """A name no tensor, initializer or node of the graph uses yet."""
        if self._used is None:
            self._used = {i.name for i in self.graph.initializer} | {i.name for i in self.graph.input}
            for node in self.nodes:
                self._used.update(node.input)
                self._used.update(node.output)
                self._used.add(node.name)
        base = base.split("__cd")[0]
        while True:
            self._counter += 1
            name = f"{base}__cd{self._counter}"
            if name not in self._used:
                self._used.add(name)
                return name

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.consts[name] = value
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def set_const(self, name: str, value: np.ndarray) -> str:
        """Store a new constant for a tensor that was ``name``; returns the new name (never reused)."""
        return self.add_const(name.split("__cd")[0], value)

    def replace(self, old: Iterable[onnx.NodeProto], new: Iterable[onnx.NodeProto],
                at: onnx.NodeProto) -> None:
        """Remove nodes ``old`` and insert ``new`` where ``at`` was (keeps a topological order)."""
        old_ids = {id(n) for n in old}
        position = next(i for i, n in enumerate(self.nodes) if n is at)
        before = [n for n in self.nodes[:position] if id(n) not in old_ids]
        after = [n for n in self.nodes[position:] if id(n) not in old_ids]
        self.nodes = before + list(new) + after
        self.reindex()

    def attr(self, node: onnx.NodeProto, name: str, default: object = None) -> object:
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def finish(self) -> onnx.ModelProto:
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        used = {i for n in self.nodes for i in n.input} | self.graph_outputs
        keep = [init for init in self.graph.initializer if init.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)
        return self.model


def _node(op: str, inputs: list[str], outputs: list[str], name: str, **attrs: object) -> onnx.NodeProto:
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
    if bias is None:
        return None
    return weight, bias, int(g.attr(conv, "group", 1))


def _channel_gather(g: GraphView, node: onnx.NodeProto) -> np.ndarray | None:
    """The constant 1-D index of a Gather along axis 1, else None."""
    if node.op_type != "Gather" or int(g.attr(node, "axis", 0)) != 1:
        return None
    index = g.const(node.input[1])
    if index is None or index.ndim != 1:
        return None
    return index.astype(np.int64)


def _is_permutation(index: np.ndarray, channels: int) -> bool:
    return len(index) == channels and np.array_equal(np.sort(index), np.arange(channels))


def _make_conv(g: GraphView, like: onnx.NodeProto, x: str, y: str, weight: np.ndarray,
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
    return _node("Conv", inputs, [y], like.name or g.fresh("conv"), **attrs)


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
    seen: set[str] = set()
    inits = [t for t in inits if not (t.name in seen or seen.add(t.name))]
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
        out = ReferenceEvaluator(probe).run(None, {x: data})[0]
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


def _rewrite_until_done(model: onnx.ModelProto,
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
        gather = _node("Gather", [x, index], [last.output[0]], g.fresh("shuffle_gather"), axis=1)
        g.replace([node, transpose, last], [gather], last)
        return True

    return _rewrite_until_done(model, rewrite)


def fold_bn_into_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold BatchNormalization into the Conv before it, also through channel-permuting Gathers."""

    def rewrite(g: GraphView, bn: onnx.NodeProto) -> bool:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1 and any(bn.output[1:]):
            return False
        params = [g.const(i) for i in bn.input[1:5]]
        if any(p is None for p in params):
            return False
        scale, shift, mean, var = (p.astype(np.float64) for p in params)
        eps = float(g.attr(bn, "epsilon", 1e-5))
        # walk back through permutation Gathers to a Conv with one consumer
        chain: list[onnx.NodeProto] = []
        tensor = bn.input[0]
        conv = None
        while True:
            if g.only_consumer(tensor) is None:
                break
            producer = g.producer.get(tensor)
            if producer is None:
                break
            if producer.op_type == "Conv":
                conv = producer
                break
            if _channel_gather(g, producer) is None:
                break
            chain.append(producer)
            tensor = producer.input[0]
        if conv is None or _conv_parts(g, conv) is None:
            return False
        weight, bias, group = _conv_parts(g, conv)
        channels = weight.shape[0]
        if not all(_is_permutation(_channel_gather(g, gather), channels) for gather in chain):
            return False
        src = np.arange(channels)  # BN input channel j is conv output channel src[j]
        for gather in reversed(chain):
            src = src[_channel_gather(g, gather)]
        a = scale / np.sqrt(var + eps)
        b = shift - mean * a
        a_conv = np.empty(channels)
        b_conv = np.empty(channels)
        a_conv[src] = a
        b_conv[src] = b
        new_weight = (weight.astype(np.float64) * a_conv[:, None, None, None]).astype(weight.dtype)
        new_bias = (bias.astype(np.float64) * a_conv + b_conv).astype(weight.dtype)
        out = conv.output[0]
        new_conv = _make_conv(g, conv, conv.input[0], out, new_weight, new_bias, group)
        # the last node of the chain (or the conv) now writes the BN's output
        if chain:
            chain[0].output[0] = bn.output[0]
        else:
            new_conv.output[0] = bn.output[0]
        g.replace([conv, bn], [new_conv], conv)
        return True

    return _rewrite_until_done(model, rewrite)


def relu_before_gather(model: onnx.ModelProto) -> onnx.ModelProto:
    """Gather(axis=1) -> Relu becomes Relu -> Gather, so the Relu lands right after the conv."""

    def rewrite(g: GraphView, relu: onnx.NodeProto) -> bool:
        if relu.op_type != "Relu":
            return False
        gather = g.producer.get(relu.input[0])
        if (gather is None or _channel_gather(g, gather) is None
                or g.only_consumer(gather.output[0]) is None):
            return False
        source = gather.input[0]
        if g.only_consumer(source) is None:
            return False
        mid = g.fresh(source + "_relu")
        new_relu = _node("Relu", [source], [mid], g.fresh(relu.name or "relu"))
        new_gather = _node("Gather", [mid, gather.input[1]], [relu.output[0]],
                           g.fresh(gather.name or "gather"), axis=1)
        g.replace([gather, relu], [new_relu, new_gather], gather)
        return True

    return _rewrite_until_done(model, rewrite)


def merge_gathers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Gather(Gather(x, i), j) along axis 1 is Gather(x, i[j])."""

    def rewrite(g: GraphView, outer: onnx.NodeProto) -> bool:
        j = _channel_gather(g, outer)
        if j is None:
            return False
        inner = g.producer.get(outer.input[0])
        if inner is None or _channel_gather(g, inner) is None or g.only_consumer(inner.output[0]) is None:
            return False
        i = _channel_gather(g, inner)
        index = g.add_const("merged_index", i[j])
        merged = _node("Gather", [inner.input[0], index], [outer.output[0]], g.fresh("merged_gather"),
                       axis=1)
        g.replace([inner, outer], [merged], outer)
        return True

    return _rewrite_until_done(model, rewrite)


def _grouped_conv_to_rewrite(g: GraphView, conv: onnx.NodeProto, done: set[str],
                             select: Callable[[str], bool] | None,
                             ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(weight, bias, group) of a grouped Conv that a per-conv pass may still rewrite: one it has not
    rewritten already (``done``) and that ``select`` (if given) picks; None for anything else."""
    if conv.op_type != "Conv" or conv.name in done or (select and not select(conv.name)):
        return None
    parts = _conv_parts(g, conv)
    return None if parts is None or parts[2] == 1 else parts


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def pad_group_inputs(model: onnx.ModelProto, block: int | None = None, max_ratio: float = 1.34,
                     select: Callable[[str], bool] | None = None) -> onnx.ModelProto:
    """Pad each group's inputs of a Gather -> [BN] -> [Relu] -> grouped Conv to a multiple of ``block``.

    The padding channels repeat the group's first channel; their weights are zero, so the result is
    unchanged. BN (if present) gets neutral parameters for them. ``select(conv_name)`` limits it.
    """
    block = block or nchwc_block()
    done: set[str] = set()

    def rewrite(g: GraphView, conv: onnx.NodeProto) -> bool:
        parts = _grouped_conv_to_rewrite(g, conv, done, select)
        if parts is None:
            return False
        weight, bias, group = parts
        per_in = weight.shape[1]
        target = _round_up(per_in, block)
        if target == per_in or (select is None and target > max_ratio * per_in):
            return False
        chain = []  # nodes between the index gather and the conv, elementwise per channel
        tensor = conv.input[0]
        gather = None
        while True:
            producer = g.producer.get(tensor)
            if producer is None or g.only_consumer(tensor) is None:
                break
            if producer.op_type in ("Relu", "BatchNormalization"):
                if producer.op_type == "BatchNormalization" and any(
                        g.const(i) is None for i in producer.input[1:5]):
                    break
                chain.append(producer)
                tensor = producer.input[0]
                continue
            if _channel_gather(g, producer) is not None:
                gather = producer
            break
        if gather is None:
            return False
        index = _channel_gather(g, gather)
        slots = np.arange(group)[:, None] * per_in + np.concatenate(
            [np.arange(per_in), np.zeros(target - per_in, np.int64)])[None, :]
        slots = slots.reshape(-1)  # padded position -> original position (pads copy slot 0)
        real = np.concatenate([np.ones(per_in, bool), np.zeros(target - per_in, bool)])
        real = np.tile(real, group)
        new_nodes = []
        new_index = g.add_const("padded_index", index[slots])
        tensor = g.fresh(gather.output[0])
        new_nodes.append(_node("Gather", [gather.input[0], new_index], [tensor], g.fresh("padded_gather"),
                               axis=1))
        for node in reversed(chain):
            out = g.fresh(node.output[0])
            if node.op_type == "Relu":
                new_nodes.append(_node("Relu", [tensor], [out], g.fresh("relu")))
            else:
                params = [g.const(i)[slots] for i in node.input[1:5]]
                params[0] = np.where(real, params[0], 1.0).astype(params[0].dtype)
                names = [g.add_const("bn", p) for p in params]
                new_nodes.append(_node("BatchNormalization", [tensor, *names], [out], g.fresh("bn"),
                                       epsilon=float(g.attr(node, "epsilon", 1e-5))))
            tensor = out
        new_weight = np.zeros((weight.shape[0], target) + weight.shape[2:], weight.dtype)
        per_out = weight.shape[0] // group
        for k in range(group):
            new_weight[k * per_out:(k + 1) * per_out, :per_in] = weight[k * per_out:(k + 1) * per_out]
        new_conv = _make_conv(g, conv, tensor, conv.output[0], new_weight,
                              bias if len(conv.input) > 2 else None, group)
        new_conv.name = conv.name
        done.add(conv.name)
        g.replace([gather, *chain, conv], new_nodes + [new_conv], conv)
        return True

    return _rewrite_until_done(model, rewrite)


def pad_group_outputs(model: onnx.ModelProto, block: int | None = None, max_ratio: float = 2.0,
                      select: Callable[[str], bool] | None = None) -> onnx.ModelProto:
    """Give each group of a grouped Conv zero output channels up to a multiple of ``block``,
    then Gather the real outputs back (a grouped conv off the fast path costs more than the
    extra MACs when groups have few outputs)."""
    block = block or nchwc_block()
    done: set[str] = set()

    def rewrite(g: GraphView, conv: onnx.NodeProto) -> bool:
        parts = _grouped_conv_to_rewrite(g, conv, done, select)
        if parts is None:
            return False
        weight, bias, group = parts
        per_out = weight.shape[0] // group
        target = _round_up(per_out, block)
        too_wide = select is None and target > max_ratio * per_out
        if target == per_out or weight.shape[1] % block or too_wide:
            return False
        new_weight = np.zeros((group * target,) + weight.shape[1:], weight.dtype)
        new_bias = np.zeros(group * target, weight.dtype)
        keep = []
        for k in range(group):
            new_weight[k * target:k * target + per_out] = weight[k * per_out:(k + 1) * per_out]
            new_bias[k * target:k * target + per_out] = bias[k * per_out:(k + 1) * per_out]
            keep.extend(range(k * target, k * target + per_out))
        wide = g.fresh(conv.output[0] + "_padded")
        new_conv = _make_conv(g, conv, conv.input[0], wide, new_weight,
                              new_bias if len(conv.input) > 2 else None, group)
        new_conv.name = conv.name
        index = g.add_const("unpad_index", np.array(keep, np.int64))
        gather = _node("Gather", [wide, index], [conv.output[0]], g.fresh("unpad_gather"), axis=1)
        done.add(conv.name)
        g.replace([conv], [new_conv, gather], conv)
        return True

    return _rewrite_until_done(model, rewrite)


# The largest input (channels) ``lgc_as_dense_conv`` rewrites by default: on CondenseNet-74 (x86,
# 1 thread) limits of 40 and 48 (the first dense block) were the best, 64 less good, 80 and more
# slower than no rewrite at all. Even at 48 the whole-model gain is within noise (-1% +- 3%, paired
# interleaved runs), so ``fast`` leaves it out; timed per conv (as ``tuned`` times forms) it never
# won on any of CondenseNet-74 C=G=8's 36 learned group convs, so ``tuned`` leaves it out too.
DENSE_LGC_MAX_INPUTS = 48


def _lgc_chain(g: GraphView, conv: onnx.NodeProto,
               ) -> tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto] | None:
    """(Gather, BN, Relu) feeding ``conv`` as the converted learned group conv exports it, each
    read only by the next; None for any other shape of graph."""
    relu = g.producer.get(conv.input[0])
    if relu is None or relu.op_type != "Relu" or g.only_consumer(relu.output[0]) is None:
        return None
    bn = g.producer.get(relu.input[0])
    if bn is None or bn.op_type != "BatchNormalization" or g.only_consumer(bn.output[0]) is None:
        return None
    gather = g.producer.get(bn.input[0])
    if gather is None or _channel_gather(g, gather) is None or g.only_consumer(gather.output[0]) is None:
        return None
    return gather, bn, relu


def _scatter_bn(params: list[np.ndarray], index: np.ndarray, channels: int) -> list[np.ndarray] | None:
    """BN parameters per gathered slot -> per source channel (neutral for unused channels); None
    when one source channel has two different parameter sets (then BN does not commute)."""
    neutral = (1.0, 0.0, 0.0, 1.0)  # scale, shift, mean, var
    full = [np.full(channels, value, p.dtype) for value, p in zip(neutral, params, strict=True)]
    for f, p in zip(full, params, strict=True):
        f[index] = p
        if not np.array_equal(f[index], p):
            return None
    return full


def lgc_as_dense_conv(model: onnx.ModelProto, max_inputs: int = DENSE_LGC_MAX_INPUTS,
                      block: int | None = None) -> onnx.ModelProto:
    """Rewrite Gather -> BN -> ReLU -> grouped 1x1 Conv as BN -> ReLU -> a dense 1x1 Conv over the
    Gather's whole input, when that input has at most ``max_inputs`` channels, a multiple of ``block``.

    Each pruned connection becomes a zero weight; a channel the index selects twice sums its
    weights.
    """
    block = block or nchwc_block()
    done: set[str] = set()

    def rewrite(g: GraphView, conv: onnx.NodeProto) -> bool:
        parts = _grouped_conv_to_rewrite(g, conv, done, None)
        chain = _lgc_chain(g, conv) if parts is not None else None
        if parts is None or chain is None or parts[0].shape[2:] != (1, 1):
            return False
        weight, bias, group = parts
        gather, bn, relu = chain
        dims = g.dims(gather.input[0])
        channels = dims[1] if len(dims) == 4 else 0
        if channels <= 0 or channels % block or channels > max_inputs:
            return False
        params = [g.const(i) for i in bn.input[1:5]]
        index = _channel_gather(g, gather)
        full = None if any(p is None for p in params) else _scatter_bn(params, index, channels)
        if full is None:
            return False
        per_out, per_in = weight.shape[0] // group, weight.shape[1]
        dense = np.zeros((weight.shape[0], channels, 1, 1), weight.dtype)
        for k in range(group):
            rows = slice(k * per_out, (k + 1) * per_out)
            for j, source in enumerate(index[k * per_in:(k + 1) * per_in]):
                dense[rows, source] += weight[rows, j]
        normed, activated = g.fresh(bn.output[0]), g.fresh(relu.output[0])
        new_bn = _node("BatchNormalization", [gather.input[0], *(g.add_const("bn", f) for f in full)],
                       [normed], g.fresh("bn"), epsilon=float(g.attr(bn, "epsilon", 1e-5)))
        new_relu = _node("Relu", [normed], [activated], g.fresh("relu"))
        new_conv = _make_conv(g, conv, activated, conv.output[0], dense,
                              bias if len(conv.input) > 2 else None, 1)
        done.add(conv.name)
        g.replace([gather, bn, relu, conv], [new_bn, new_relu, new_conv], conv)
        return True

    return _rewrite_until_done(model, rewrite)


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
    done: set[str] = set()

    def rewrite(g: GraphView, conv: onnx.NodeProto) -> bool:
        parts = _grouped_conv_to_rewrite(g, conv, done, select)
        if parts is None:
            return False
        weight, bias, group = parts
        out_channels, per_in = weight.shape[:2]
        in_channels = per_in * group
        per_out = out_channels // group
        if group == 1 or per_in == 1 or per_out > max_outputs_per_group:
            return False
        removed: list[onnx.NodeProto] = [conv]
        x = conv.input[0]
        src = np.arange(in_channels)  # conv input channel c is tensor x channel src[c]
        producer = g.producer.get(x)
        if producer is not None and g.only_consumer(x) is not None:
            index = _channel_gather(g, producer)
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
        dw_conv = _make_conv(g, conv, x, mid, dw, None, dw_groups)
        dw_conv.name = conv.name + "_dw"
        sum_conv = _make_conv(g, conv, mid, conv.output[0], summ,
                              bias if len(conv.input) > 2 else None, 1, kernel_like=False)
        sum_conv.name = conv.name + "_sum"
        done.update({conv.name, dw_conv.name, sum_conv.name})
        g.replace(removed, [*added, dw_conv, sum_conv], conv)
        return True

    return _rewrite_until_done(model, rewrite)


def _duplicate_producer(g: GraphView, x: str, times: int,
                        ) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto], str] | None:
    """If ``x`` is Conv [-> Relu] with single consumers, a copy whose every output channel s is
    repeated at s*times .. s*times+times-1: (nodes to remove, nodes to add, new tensor)."""
    relu = g.producer.get(x)
    if relu is None or g.only_consumer(x) is None:
        return None
    conv = relu
    chain = []
    if relu.op_type == "Relu":
        chain.append(relu)
        conv = g.producer.get(relu.input[0])
        if conv is None or g.only_consumer(relu.input[0]) is None:
            return None
    parts = _conv_parts(g, conv)
    if parts is None:
        return None
    weight, bias, group = parts
    rows = np.repeat(np.arange(weight.shape[0]), times)
    wide = g.fresh(conv.output[0] + "_dup")
    new_conv = _make_conv(g, conv, conv.input[0], wide, weight[rows], bias[rows], group)
    added = [new_conv]
    out = wide
    if chain:
        out = g.fresh(x + "_dup")
        added.append(_node("Relu", [wide], [out], g.fresh(relu.name or "relu")))
    return [conv, *chain], added, out


def bn_to_depthwise_conv(model: onnx.ModelProto, min_channels: int = 8) -> onnx.ModelProto:
    """A BatchNormalization that could not be folded (it follows a Gather or Concat) becomes a
    depthwise 1x1 Conv with bias: onnxruntime then fuses the ReLU after it and runs both in its
    blocked NCHWc layout, one pass over memory instead of two."""
    g = GraphView(model)
    for bn in list(g.nodes):
        if bn.op_type != "BatchNormalization" or any(bn.output[1:]):
            continue
        params = [g.const(i) for i in bn.input[1:5]]
        if any(p is None for p in params) or params[0].shape[0] < min_channels:
            continue
        scale, shift, mean, var = (p.astype(np.float64) for p in params)
        a = scale / np.sqrt(var + float(g.attr(bn, "epsilon", 1e-5)))
        weight = a.reshape(-1, 1, 1, 1).astype(np.float32)
        bias = (shift - mean * a).astype(np.float32)
        conv = _node("Conv", [bn.input[0], g.add_const("bn_w", weight), g.add_const("bn_b", bias)],
                     [bn.output[0]], bn.name or g.fresh("bn_conv"), group=int(len(a)), kernel_shape=[1, 1])
        g.replace([bn], [conv], bn)
    return eliminate_dead(g.finish())


PASSES: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "shuffle_to_gather": shuffle_to_gather,
    "fold_bn_into_conv": fold_bn_into_conv,
    "relu_before_gather": relu_before_gather,
    "merge_gathers": merge_gathers,
    "grouped_conv_to_depthwise": grouped_conv_to_depthwise,
    "pad_group_inputs": pad_group_inputs,
    "pad_group_outputs": pad_group_outputs,
    "lgc_as_dense_conv": lgc_as_dense_conv,
    "bn_to_depthwise_conv": bn_to_depthwise_conv,
    "eliminate_dead": eliminate_dead,
}


def check_model(model: onnx.ModelProto, where: str) -> None:
    """Raise a one-line error when a pass produced an invalid model (a bug, but never silent)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise CondenseDeployError(f"{where}: produced an invalid ONNX model: {str(e).splitlines()[0]}") from e
