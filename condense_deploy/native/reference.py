"""The numpy meaning of each of our custom ops (float64 inside), straight from docs/native-ops.md.

Slow and simple on purpose: the tests hold the kernels and the graph pass against these, and the
benchmarks check the kernels' outputs with them before timing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dense_block_reference", "grouped_conv_reference"]


def dense_block_reference(x: np.ndarray, index: np.ndarray, bn_scale: np.ndarray, bn_shift: np.ndarray,
                          w1: np.ndarray, b1: np.ndarray, w3: np.ndarray, *, growth: int, mid: int,
                          groups_1x1: int, groups_3x3: int, kept: list[int]) -> np.ndarray:
    """The ``DenseBlock`` op's meaning in numpy (float64 inside), as docs/native-ops.md states it.

    Slow and simple on purpose: the tests hold the kernels and the graph pass against it.
    """
    x = np.asarray(x, np.float64)
    batch, _, height, width = x.shape
    d1, in3, out3 = mid // groups_1x1, mid // groups_3x3, growth // groups_3x3
    shuffle = np.arange(mid).reshape(groups_1x1, d1).T.reshape(-1)
    padded_shape = (batch, mid, height + 2, width + 2)
    offsets = np.cumsum([0, *kept])
    w1_offsets = np.cumsum([0, *[mid * k // groups_1x1 for k in kept]])
    w3_size = growth * in3 * 9
    for layer, count in enumerate(kept):
        span = slice(offsets[layer], offsets[layer + 1])
        a = np.maximum(x[:, index[span]] * bn_scale[span, None, None] + bn_shift[span, None, None], 0.0)
        weight1 = w1[w1_offsets[layer]:w1_offsets[layer + 1]].reshape(mid, count // groups_1x1)
        per_in = count // groups_1x1
        c = np.concatenate([
            np.einsum("oi,nihw->nohw", weight1[j * d1:(j + 1) * d1], a[:, j * per_in:(j + 1) * per_in])
            for j in range(groups_1x1)], axis=1)
        m = np.maximum(c[:, shuffle] + b1[layer * mid:(layer + 1) * mid, None, None], 0.0)
        padded = np.zeros(padded_shape)
        padded[:, :, 1:-1, 1:-1] = m
        weight3 = w3[layer * w3_size:(layer + 1) * w3_size].reshape(growth, in3, 3, 3)
        y = np.zeros((batch, growth, height, width))
        for j in range(groups_3x3):
            for dy in range(3):
                for dx in range(3):
                    window = padded[:, j * in3:(j + 1) * in3, dy:dy + height, dx:dx + width]
                    y[:, j * out3:(j + 1) * out3] += np.einsum(
                        "oi,nihw->nohw", weight3[j * out3:(j + 1) * out3, :, dy, dx], window)
        x = np.concatenate([x, y], axis=1)
    return x.astype(np.float32)


def grouped_conv_reference(x: np.ndarray, w: np.ndarray, groups: int, bias: np.ndarray | None = None, *,
                           relu: bool = False) -> np.ndarray:
    """The ``GroupedConv`` op's meaning: stride 1, same padding, x [N, C, H, W], w [O, C/groups, k, k]
    (k 1 or 3), then max(., 0) when relu; float64."""
    n, _, h, wd = x.shape
    o, cg, k, _ = w.shape
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    og = o // groups
    y = np.zeros((n, o, h, wd))
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for dy in range(k):
            for dx in range(k):
                y[:, g * og:(g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", xs[:, :, dy:dy + h, dx:dx + wd], ws[:, :, dy, dx])
    if bias is not None:
        y += bias[None, :, None, None]
    return np.maximum(y, 0.0) if relu else y
