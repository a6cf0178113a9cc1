"""Random DenseBlock parameters and one-node models of our ops, for the op tests and the native
kernels benchmark (one copy for both). numpy at import; onnx only inside the model builders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .contract import DENSE_BLOCK, DENSE_BLOCK_INPUTS, DOMAIN, DOMAIN_VERSION, GROUPED_CONV

__all__ = ["dense_block_model", "dense_params", "grouped_conv_model"]


def dense_params(rng: np.random.Generator, c0: int, growth: int, layers: int, groups: int, condense: int,
                 mid: int | None = None, groups_3x3: int | None = None) -> dict[str, Any]:
    """Random DenseBlock parameters as a converted model has them, with the op's attributes under
    ``attrs``: kept_l = C_l * G / C; each 1x1 group picks kept_l / G distinct channels (groups may
    overlap)."""
    mid = mid or 4 * growth
    g3 = groups_3x3 or groups
    kept, index, scale, shift, w1, b1, w3 = [], [], [], [], [], [], []
    for layer in range(layers):
        cl = c0 + layer * growth
        k = cl * groups // condense
        assert k * condense == cl * groups and k % groups == 0
        kept.append(k)
        for _ in range(groups):
            index.append(rng.choice(cl, size=k // groups, replace=False))
        scale.append(rng.uniform(0.5, 1.5, k))
        shift.append(rng.normal(0.0, 0.1, k))
        fan1 = k // groups
        w1.append(rng.normal(0.0, np.sqrt(2.0 / fan1), (mid, fan1)).ravel())
        b1.append(rng.normal(0.0, 0.1, mid))
        fan3 = mid // g3 * 9
        w3.append(rng.normal(0.0, np.sqrt(2.0 / fan3), (growth, mid // g3, 3, 3)).ravel())
    cat = np.concatenate
    return dict(
        index=cat(index).astype(np.int64),
        bn_scale=cat(scale).astype(np.float32),
        bn_shift=cat(shift).astype(np.float32),
        w1=cat(w1).astype(np.float32),
        b1=cat(b1).astype(np.float32),
        w3=cat(w3).astype(np.float32),
        attrs=dict(growth=growth, mid=mid, groups_1x1=groups, groups_3x3=g3, kept=kept),
    )


def dense_block_model(p: dict[str, Any], c0: int, x_type: int | None = None, x_shape: list[Any] | None = None,
                      as_inputs: Sequence[str] = ()) -> Any:
    """A one-node DenseBlock model (X [N, c0, H, W] float32 unless x_type/x_shape say otherwise); params
    are initializers except those named in as_inputs (graph inputs)."""
    from onnx import TensorProto, helper, numpy_helper

    names = list(DENSE_BLOCK_INPUTS[1:])
    x_type = TensorProto.FLOAT if x_type is None else x_type
    x_shape = x_shape if x_shape is not None else ["N", c0, "H", "W"]
    inputs = [helper.make_tensor_value_info("X", x_type, x_shape)]
    inits = []
    for name in names:
        arr = p[name]
        if name in as_inputs:
            t = TensorProto.INT64 if arr.dtype == np.int64 else TensorProto.FLOAT
            inputs.append(helper.make_tensor_value_info(name, t, [f"{name}_len"]))
        else:
            inits.append(numpy_helper.from_array(arr, name))
    node = helper.make_node(DENSE_BLOCK, ["X", *names], ["Y"], domain=DOMAIN, **p["attrs"])
    graph = helper.make_graph(
        [node], "dense_block", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        ir_version=8)


def grouped_conv_model(w: np.ndarray, b: np.ndarray | None, group: int, relu: int,
                       w_as_input: bool = False) -> Any:
    """A one-node GroupedConv model (bench-only op); W (and B) initializers unless w_as_input."""
    from onnx import TensorProto, helper, numpy_helper

    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", "C", "H", "W"])]
    inits = []
    if w_as_input:
        inputs.append(helper.make_tensor_value_info("Wt", TensorProto.FLOAT, list(w.shape)))
    else:
        inits.append(numpy_helper.from_array(w, "Wt"))
    ins = ["X", "Wt"]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "B"))
        ins.append("B")
    node = helper.make_node(GROUPED_CONV, ins, ["Y"], domain=DOMAIN, group=group, relu=relu)
    graph = helper.make_graph(
        [node], "gconv", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        ir_version=8)
