"""Passes that no recipe uses: kept for the ablation (benchmarks/lowering_ablation.py), measured
and left out of ``fast`` and ``tuned``. onnx + numpy only.

- ``lgc_as_dense_conv``: a learned group conv whose whole input is small and block-aligned (the first
  dense block of the ImageNet models: 16-40 channels at 112x112) becomes BN -> ReLU -> one dense
  1x1 conv over all input channels, the pruned connections as zero weights. 8x the MACs of that
  conv, but the Gather goes, and with it the NCHWc <-> NCHW reorders around it. The whole model
  gained only within noise.
- ``bn_to_depthwise_conv``: a BatchNormalization that could not be folded becomes a depthwise 1x1
  Conv with bias.
"""

from __future__ import annotations

import numpy as np
import onnx

from .passes import (
    channel_gather,
    eliminate_dead,
    given_bias,
    make_conv,
    make_node,
    nchwc_block,
    rewrite_grouped_convs,
)
from .view import GraphView

__all__ = ["DENSE_LGC_MAX_INPUTS", "PASSES", "bn_to_depthwise_conv", "lgc_as_dense_conv"]


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
    chain = g.match_up(conv.input[0], [lambda n: n.op_type == "Relu",
                                       lambda n: n.op_type == "BatchNormalization",
                                       lambda n: channel_gather(g, n) is not None])
    if chain is None:
        return None
    relu, bn, gather = chain
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

    def rewrite(g: GraphView, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray,
                group: int) -> set[str] | None:
        chain = _lgc_chain(g, conv)
        if chain is None or weight.shape[2:] != (1, 1):
            return None
        gather, bn, relu = chain
        dims = g.dims(gather.input[0])
        channels = dims[1] if len(dims) == 4 else 0
        if channels <= 0 or channels % block or channels > max_inputs:
            return None
        params = g.consts_of(bn.input[1:5])
        index = channel_gather(g, gather)
        full = None if params is None or index is None else _scatter_bn(params, index, channels)
        if full is None or index is None:
            return None
        per_out, per_in = weight.shape[0] // group, weight.shape[1]
        dense = np.zeros((weight.shape[0], channels, 1, 1), weight.dtype)
        for k in range(group):
            rows = slice(k * per_out, (k + 1) * per_out)
            for j, source in enumerate(index[k * per_in:(k + 1) * per_in]):
                dense[rows, source] += weight[rows, j]
        normed, activated = g.fresh(bn.output[0]), g.fresh(relu.output[0])
        new_bn = make_node("BatchNormalization", [gather.input[0], *(g.add_const("bn", f) for f in full)],
                       [normed], g.fresh("bn"), epsilon=float(g.attr(bn, "epsilon", 1e-5)))
        new_relu = make_node("Relu", [normed], [activated], g.fresh("relu"))
        new_conv = make_conv(g, conv, activated, conv.output[0], dense, given_bias(conv, bias), 1)
        g.replace([gather, bn, relu, conv], [new_bn, new_relu, new_conv], conv)
        return {conv.name}

    return rewrite_grouped_convs(model, rewrite)


def bn_to_depthwise_conv(model: onnx.ModelProto, min_channels: int = 8) -> onnx.ModelProto:
    """A BatchNormalization that could not be folded (it follows a Gather or Concat) becomes a
    depthwise 1x1 Conv with bias: onnxruntime then fuses the ReLU after it and runs both in its
    blocked NCHWc layout, one pass over memory instead of two."""
    g = GraphView(model)
    for bn in list(g.nodes):
        if bn.op_type != "BatchNormalization" or any(bn.output[1:]):
            continue
        params = g.consts_of(bn.input[1:5])
        if params is None or params[0].shape[0] < min_channels:
            continue
        scale, shift, mean, var = (p.astype(np.float64) for p in params)
        a = scale / np.sqrt(var + float(g.attr(bn, "epsilon", 1e-5)))
        weight = a.reshape(-1, 1, 1, 1).astype(np.float32)
        bias = (shift - mean * a).astype(np.float32)
        conv = make_node("Conv", [bn.input[0], g.add_const("bn_w", weight), g.add_const("bn_b", bias)],
                     [bn.output[0]], bn.name or g.fresh("bn_conv"), group=int(len(a)), kernel_shape=[1, 1])
        g.replace([bn], [conv], bn)
    return eliminate_dead(g.finish())


PASSES = {"lgc_as_dense_conv": lgc_as_dense_conv, "bn_to_depthwise_conv": bn_to_depthwise_conv}
