"""Tiny .onnx files for the bench, report and table tests, built with the onnx helper API.

Real models (a conv, ReLU, pooling, a Gemm head), a few KB each, so a bench of several of them at
two thread counts takes well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_net(path: Path, channels: int = 8, size: int = 16, batch: int | str = "N", classes: int = 10,
             seed: int = 0, metadata: dict[str, str] | None = None) -> Path:
    """Conv 3x3 -> ReLU -> global average pool -> flatten -> Gemm: an N,3,H,W image classifier."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((classes, channels)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return _save(helper.make_graph(nodes, "conv_net", [x], [y], inits), path, metadata)


def vector_net(path: Path) -> Path:
    """A model whose input is N,10 (not an image): the bench must refuse it."""
    w = numpy_helper.from_array(np.ones((10, 4), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "vec", [x], [y], [w])
    return _save(graph, path)


def int_image_net(path: Path) -> Path:
    """An N,3,8,8 int64 input (an image, but not float)."""
    x = helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 3, 8, 8])
    return _save(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "int", [x], [y]), path)


def table_stand_in(path: Path, name: str, flops: int, params: int, optimize: str = "fast",
                   channels: int = 8) -> Path:
    """A tiny model carrying the metadata ``export_source`` writes, so the table reuses it as ``name``."""
    return conv_net(path, channels=channels, metadata={
        "condense_deploy.architecture": name,
        "condense_deploy.flops": str(flops),
        "condense_deploy.params": str(params),
        "condense_deploy.optimize": json.dumps({"mode": optimize}),
    })


def native_block_net(path: Path, seed: int = 0) -> Path:
    """A 3x3 stem conv -> one DenseBlock of our kernel library (2 layers, C/G 2/2) -> global average
    pool -> flatten: the smallest N,3,H,W classifier that needs the native kernels wherever it runs."""
    from condense_deploy.native.contract import DOMAIN

    rng = np.random.default_rng(seed)
    c0, growth, mid, groups, kept = 8, 4, 8, 2, [8, 12]
    stem = numpy_helper.from_array(rng.normal(0, 0.3, (c0, 3, 3, 3)).astype(np.float32), "stem_w")
    consts = {
        "index": np.concatenate([rng.permutation(c0 + i * growth)[:k] for i, k in enumerate(kept)]),
        "bn_scale": rng.uniform(0.5, 1.5, sum(kept)).astype(np.float32),
        "bn_shift": rng.normal(0, 0.1, sum(kept)).astype(np.float32),
        "w1": rng.normal(0, 0.3, sum(mid * k // groups for k in kept)).astype(np.float32),
        "b1": rng.normal(0, 0.1, len(kept) * mid).astype(np.float32),
        "w3": rng.normal(0, 0.2, len(kept) * growth * (mid // groups) * 9).astype(np.float32),
    }
    block = helper.make_node("DenseBlock", ["stem", *consts], ["block"], domain=DOMAIN, growth=growth,
                             mid=mid, groups_1x1=groups, groups_3x3=groups, kept=kept)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "stem_w"], ["stem"], pads=[1, 1, 1, 1]), block,
         helper.make_node("GlobalAveragePool", ["block"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["logits"])], "native_block",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", c0 + len(kept) * growth])],
        [stem, *(numpy_helper.from_array(v, k) for k, v in consts.items())])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
