"""Rewrite a converted CondenseNet's ONNX graph to our native ``DenseBlock`` ops. Torch-free.

Each dense block of a converted CondenseNet is, per layer, Gather(index) -> BN -> ReLU -> grouped
1x1 Conv -> channel shuffle -> BN -> ReLU -> grouped 3x3 Conv -> Concat with the layer's input.
In stock onnxruntime every layer copies the whole concatenation again and runs each of those nodes
as its own pass over memory. ``dense_blocks_to_native`` finds the blocks (after ``shuffle_to_gather``
has turned each shuffle into one constant Gather) and replaces each by one ``DenseBlock`` node of
the ``ai.condense_deploy`` domain, whose kernel (csrc/) writes every layer's new channels into one
preallocated block buffer. BN1 becomes a per-picked-channel scale/shift, BN2's scale folds into the
1x1 weights and its shift becomes a bias; the shuffle stays a fixed part of the op (see
docs/native-ops.md, the contract both sides follow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ..errors import CondenseDeployError
from ..native.contract import DENSE_BLOCK, DOMAIN, DOMAIN_VERSION
from ..native.precision import DEFAULT_PRECISION, PRECISION_ATTRIBUTE, PRECISIONS
from .passes import channel_gather, eliminate_dead, shuffle_to_gather
from .view import GraphView, NodeTest

__all__ = ["DenseBlockSite", "block_precisions", "dense_blocks_to_native", "native_dense_blocks",
           "shuffle_permutation", "with_precision"]


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    """perm with shuffled[i] = original[perm[i]] for the channel shuffle of ``groups`` groups."""
    per_group = channels // groups
    return np.arange(channels).reshape(groups, per_group).T.reshape(-1)


@dataclass
class _Layer:
    """One dense layer matched in the graph, with its constants already folded."""

    x: str
    out: str
    nodes: list[onnx.NodeProto]
    index: np.ndarray
    bn_scale: np.ndarray
    bn_shift: np.ndarray
    w1: np.ndarray  # [mid, kept/G1] with BN2's scale folded in, pre-shuffle row order
    b1: np.ndarray  # [mid] in shuffled order
    w3: np.ndarray  # [growth, mid/G3, 3, 3]
    groups_1x1: int
    groups_3x3: int

    @property
    def growth(self) -> int:
        return int(self.w3.shape[0])

    @property
    def mid(self) -> int:
        return int(self.w1.shape[0])


@dataclass(frozen=True)
class DenseBlockSite:
    """What a rewritten block looks like: for reports, per-site choices and tests."""

    name: str
    layers: int
    in_channels: int
    growth: int
    mid: int
    groups_1x1: int
    groups_3x3: int
    height: int
    width: int


def _bn_affine(g: GraphView, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) of an inference BatchNormalization with constant parameters, in float64."""
    if bn.op_type != "BatchNormalization" or len(bn.input) != 5 or any(o for o in bn.output[1:]):
        return None
    if g.attr(bn, "training_mode", 0):
        return None
    params = [g.const(name) for name in bn.input[1:5]]
    if any(p is None or p.ndim != 1 for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
    scale = gamma / np.sqrt(var + float(g.attr(bn, "epsilon", 1e-5)))
    return scale, beta - mean * scale


def _conv(g: GraphView, node: onnx.NodeProto, kernel: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(weight, bias, group) of a stride-1, same-padded ``kernel`` x ``kernel`` Conv with constants."""
    weight = g.const(node.input[1])
    if weight is None or weight.ndim != 4 or tuple(weight.shape[2:]) != (kernel, kernel):
        return None
    pad = kernel // 2
    if (list(g.attr(node, "strides", [1, 1])) != [1, 1] or list(g.attr(node, "dilations", [1, 1])) != [1, 1]
            or list(g.attr(node, "pads", [0, 0, 0, 0])) != [pad] * 4
            or g.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
        return None
    bias = np.zeros(weight.shape[0])
    if len(node.input) > 2 and node.input[2]:
        found = g.const(node.input[2])
        if found is None:
            return None
        bias = found
    return weight.astype(np.float64), bias.astype(np.float64), int(g.attr(node, "group", 1))


def _is(op_type: str) -> NodeTest:
    return lambda node: node.op_type == op_type


# a dense layer's new channels, walking up from the 3x3 conv to the index Gather
_LAYER_PATTERN = [_is(kind) for kind in ("Conv", "Relu", "BatchNormalization", "Gather",
                                          "Conv", "Relu", "BatchNormalization", "Gather")]


def _match_layer(g: GraphView, concat: onnx.NodeProto) -> _Layer | None:
    """The dense layer ending in ``concat`` (Concat(x, new channels) on axis 1), or None."""
    if concat.op_type != "Concat" or int(g.attr(concat, "axis", 0)) != 1 or len(concat.input) != 2:
        return None
    x, y = concat.input
    chain = g.match_up(y, _LAYER_PATTERN)
    if chain is None:
        return None
    conv3, relu2, bn2, shuffle, conv1, relu1, bn1, pick = chain
    parts3, parts1 = _conv(g, conv3, 3), _conv(g, conv1, 1)
    if parts3 is None or parts1 is None or pick.input[0] != x:
        return None
    index, perm = channel_gather(g, pick), channel_gather(g, shuffle)
    affine1, affine2 = _bn_affine(g, bn1), _bn_affine(g, bn2)
    if index is None or perm is None or affine1 is None or affine2 is None:
        return None
    w1, bias1, groups1 = parts1
    w3, bias3, groups3 = parts3
    mid, kept = w1.shape[0], len(index)
    if (groups1 < 1 or groups3 < 1 or mid % groups1 or kept % groups1 or w1.shape[1] * groups1 != kept
            or w3.shape[1] * groups3 != mid or w3.shape[0] % groups3 or np.any(bias3 != 0)
            or len(affine1[0]) != kept or len(affine2[0]) != mid
            or not np.array_equal(perm, shuffle_permutation(mid, groups1))):
        return None
    scale2, shift2 = affine2
    row_scale = np.empty(mid)
    row_scale[perm] = scale2  # pre-shuffle row perm[i] becomes shuffled channel i
    return _Layer(
        x=x, out=concat.output[0], nodes=[pick, bn1, relu1, conv1, shuffle, bn2, relu2, conv3, concat],
        index=index, bn_scale=affine1[0], bn_shift=affine1[1],
        w1=w1[:, :, 0, 0] * row_scale[:, None], b1=bias1[perm] * scale2 + shift2, w3=w3,
        groups_1x1=groups1, groups_3x3=groups3)


def _chains(g: GraphView) -> list[list[_Layer]]:
    """Matched layers grouped into blocks: layer l+1 reads layer l's concatenation and nothing else does."""
    matched = [layer for node in g.nodes if (layer := _match_layer(g, node)) is not None]
    by_input = {layer.x: layer for layer in matched}
    taken: set[int] = set()
    blocks = []
    for first in matched:  # graph order is topological: a block's first layer comes first
        if id(first) in taken:
            continue
        block = [first]
        while True:
            last = block[-1]
            follower = by_input.get(last.out)
            readers = {id(n) for n in g.consumers.get(last.out, [])}
            if (follower is None or last.out in g.graph_outputs or not _same_shape(first, follower)
                    or readers != {id(follower.nodes[0]), id(follower.nodes[-1])}):
                break
            block.append(follower)
            taken.add(id(follower))
        blocks.append(block)
    return blocks


def _same_shape(a: _Layer, b: _Layer) -> bool:
    return (a.growth, a.mid, a.groups_1x1, a.groups_3x3) == (b.growth, b.mid, b.groups_1x1, b.groups_3x3)


def _valid_indices(block: list[_Layer], in_channels: int) -> bool:
    return all(0 <= layer.index.min() and layer.index.max() < in_channels + i * layer.growth
               for i, layer in enumerate(block) if len(layer.index))


def dense_blocks_to_native(model: onnx.ModelProto,
                           select: Callable[[DenseBlockSite], bool] | None = None,
                           precision: str = DEFAULT_PRECISION,
                           ) -> tuple[onnx.ModelProto, list[DenseBlockSite]]:
    """Replace every dense block (that ``select`` picks, if given) by one ``DenseBlock`` node.

    ``precision="fp16"`` writes that attribute on every node (the kernels then compute the block in
    ARMv8.2 FP16 arithmetic); ``fp32`` writes none (absent means fp32). Returns the new model and the
    sites rewritten. The input model is not modified; a graph with no matching block comes back
    unchanged (apart from the shuffle Gathers) with no sites.
    """
    _check_precision(precision)
    g = GraphView(shuffle_to_gather(model))
    sites: list[DenseBlockSite] = []
    typed: list[tuple[str, list[int | str]]] = []
    for number, block in enumerate(_chains(g), start=1):
        dims = g.dims(block[0].x)
        if len(dims) != 4 or dims[1] <= 0:
            continue
        in_channels = dims[1]
        if not _valid_indices(block, in_channels):
            continue
        first = block[0]
        site = DenseBlockSite(f"dense_block_{number}", len(block), in_channels, first.growth, first.mid,
                              first.groups_1x1, first.groups_3x3, dims[2], dims[3])
        if select is not None and not select(site):
            continue
        node = _block_node(g, block, site.name, precision)
        g.replace([n for layer in block for n in layer.nodes], [node], block[-1].nodes[-1])
        sites.append(site)
        typed.append((block[-1].out, [dims[0] or "batch", in_channels + site.layers * site.growth,
                                      dims[2] or "height", dims[3] or "width"]))
    out = eliminate_dead(g.finish())
    # onnx cannot infer through a custom op: state each block's output type so that shape
    # inference (and the passes that use it) goes on past it
    known = {info.name for info in out.graph.value_info}
    out.graph.value_info.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)
                                for name, shape in typed if name not in known)
    if sites and not any(o.domain == DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return out, sites


def _block_node(g: GraphView, block: list[_Layer], name: str, precision: str) -> onnx.NodeProto:
    def const(suffix: str, parts: list[np.ndarray], dtype: type) -> str:
        return g.add_const(f"{name}_{suffix}", np.concatenate([p.reshape(-1) for p in parts]).astype(dtype))

    inputs = [
        block[0].x,
        const("index", [layer.index for layer in block], np.int64),
        const("bn_scale", [layer.bn_scale for layer in block], np.float32),
        const("bn_shift", [layer.bn_shift for layer in block], np.float32),
        const("w1", [layer.w1 for layer in block], np.float32),
        const("b1", [layer.b1 for layer in block], np.float32),
        const("w3", [layer.w3 for layer in block], np.float32),
    ]
    first = block[0]
    node = helper.make_node(
        DENSE_BLOCK, inputs, [block[-1].out], name=g.fresh(name), domain=DOMAIN,
        growth=first.growth, mid=first.mid, groups_1x1=first.groups_1x1, groups_3x3=first.groups_3x3,
        kept=[len(layer.index) for layer in block])
    _set_precision(node, precision)
    return node


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise CondenseDeployError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


def _set_precision(node: onnx.NodeProto, precision: str) -> None:
    for attribute in [a for a in node.attribute if a.name == PRECISION_ATTRIBUTE]:
        node.attribute.remove(attribute)
    if precision != DEFAULT_PRECISION:
        node.attribute.append(helper.make_attribute(PRECISION_ATTRIBUTE, precision))


def with_precision(model: onnx.ModelProto, precision: str) -> onnx.ModelProto:
    """A copy of ``model`` whose every DenseBlock computes in ``precision``; nothing else changes.

    The export uses it to verify an fp16 graph at fp32 on a CPU without FP16 arithmetic: the same
    weights, layout and nodes, only the blocks' arithmetic differs.
    """
    _check_precision(precision)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if node.domain == DOMAIN and node.op_type == DENSE_BLOCK:
            _set_precision(node, precision)
    return out


def block_precisions(model: onnx.ModelProto) -> dict[str, int]:
    """How many DenseBlock nodes compute in each precision (``{"fp16": 5}``; empty without blocks)."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.domain == DOMAIN and node.op_type == DENSE_BLOCK:
            value = next((a.s.decode() for a in node.attribute if a.name == PRECISION_ATTRIBUTE),
                         DEFAULT_PRECISION)
            counts[value] = counts.get(value, 0) + 1
    return counts


def native_dense_blocks(model: onnx.ModelProto, min_positions: int = 0,
                        precision: str = DEFAULT_PRECISION) -> onnx.ModelProto:
    """The ``native`` recipe's step: every dense block with at least ``min_positions`` pixels per
    channel (H x W) becomes a DenseBlock computing in ``precision``; smaller ones stay with
    onnxruntime's own kernels."""
    out, _ = dense_blocks_to_native(model, select=lambda site: site.height * site.width >= min_positions,
                                    precision=precision)
    return out
