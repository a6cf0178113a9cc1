"""What an ONNX file holds: opset, inputs/outputs, op-type histogram, weights, size, metadata.

Torch-free (onnx, numpy and the standard library only), so ``condense-deploy inspect FILE.onnx``
works on a board that has only the runtime install.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import CondenseDeployError
from .metadata import META

__all__ = ["describe_onnx", "format_description", "image_input_size", "load_checked"]

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def _load(text: str, load_external_data: bool = True) -> onnx.ModelProto:
    """Read an ONNX file; every way it can fail (missing, a folder, not protobuf, empty) is one line."""
    if os.path.isdir(text):
        raise CondenseDeployError(f"{text}: is a directory, expected an .onnx file")
    if not os.path.isfile(text):
        raise CondenseDeployError(f"{text}: no such file")
    try:
        model = onnx.load(text, load_external_data=load_external_data)
    except Exception as e:  # protobuf raises DecodeError, onnx its own types, OSError
        raise CondenseDeployError(f"{text}: not a readable ONNX model ({type(e).__name__})") from e
    if not model.graph.node and not model.graph.output:
        raise CondenseDeployError(f"{text}: not an ONNX model (empty file or empty graph)")
    return model


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def load_checked(path: str | os.PathLike[str], *, image_classifier: bool = False) -> onnx.ModelProto:
    """Load ``path`` and check once that its inputs and outputs are what a command can feed and read.

    Every model must have at least one input, all float32, and at least one output (``optimize``
    feeds random float32 data). ``image_classifier`` (``quantize``) also wants exactly one
    [N, 3, H, W] input and a first output [N, classes]: the error says what was expected.
    """
    text = os.fspath(path)
    model = _load(text)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    expected = "one float32 input [N, 3, H, W] and logits [N, classes]" if image_classifier \
        else "float32 inputs"
    if not inputs:
        raise CondenseDeployError(f"{text}: the model has no inputs; expected {expected}")
    if not graph.output:
        raise CondenseDeployError(f"{text}: the model has no outputs; expected {expected}")
    for value in inputs:
        elem = value.type.tensor_type.elem_type
        if elem != TensorProto.FLOAT:
            kind = TensorProto.DataType.Name(elem).lower() if elem else "not a tensor"
            raise CondenseDeployError(f"{text}: input {value.name!r} is {kind}; expected {expected}")
    if image_classifier:
        if len(inputs) != 1:
            raise CondenseDeployError(f"{text}: the model has {len(inputs)} inputs; expected {expected}")
        dims = _dims(inputs[0])
        if len(dims) != 4 or dims[1] != 3:
            raise CondenseDeployError(f"{text}: input {inputs[0].name!r} has shape {dims}; "
                                      f"expected {expected}")
        out = _dims(graph.output[0])
        if len(out) != 2 or (isinstance(out[1], int) and out[1] < 2):
            raise CondenseDeployError(f"{text}: output {graph.output[0].name!r} has shape {out}; "
                                      f"expected {expected}")
    return model


def image_input_size(model: onnx.ModelProto, default: int = 224) -> int:
    """The input's fixed width, or ``default`` when H/W are symbolic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[-1].dim_value if len(dims) == 4 and dims[-1].dim_value > 0 else default


def describe_onnx(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready description of the ONNX file at ``path`` (external weight data is not read).

    ``params`` counts floating-point weight elements (initializers and Constant nodes, so BN
    running statistics are included); integer constants (index lists, shapes) are ``int_constants``.
    """
    text = os.fspath(path)
    model = _load(text, load_external_data=False)
    graph = model.graph
    weights = [*graph.initializer, *_constant_tensors(graph)]
    float_elements = sum(_numel(t) for t in weights if t.data_type in _FLOAT_TYPES)
    int_elements = sum(_numel(t) for t in weights if t.data_type not in _FLOAT_TYPES)
    initializer_names = {t.name for t in graph.initializer}
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    histogram = Counter(node.op_type for node in graph.node)
    from .native import block_precisions

    return {
        "path": text,
        "file_size": os.path.getsize(text),
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opset": opsets.get("ai.onnx"),
        "opset_imports": opsets,
        "inputs": [_value_info(v) for v in graph.input if v.name not in initializer_names],
        "outputs": [_value_info(v) for v in graph.output],
        "nodes": len(graph.node),
        "op_types": dict(sorted(histogram.items(), key=lambda item: (-item[1], item[0]))),
        "params": float_elements,
        "int_constants": int_elements,
        "initializers": len(graph.initializer),
        "metadata": {p.key: p.value for p in model.metadata_props},
        "dense_block_precision": block_precisions(model),  # {"fp16": 5}: what the DenseBlock ops compute in
    }


def _constant_tensors(graph: onnx.GraphProto) -> list[TensorProto]:
    return [attr.t for node in graph.node if node.op_type == "Constant"
            for attr in node.attribute if attr.name == "value"]


def _numel(tensor: TensorProto) -> int:
    return int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "unknown"
    shape: list[int | str] | None = None
    if tensor.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return {"name": value.name, "dtype": dtype, "shape": shape}


def format_description(info: dict[str, Any]) -> str:
    """The human-readable form of ``describe_onnx``'s result (``inspect FILE.onnx``)."""
    size = info["file_size"]
    lines = [
        f"file:      {info['path']} ({size / 1e6:.2f} MB, {size:,} bytes)",
        f"producer:  {info['producer'] or '(not set)'}, IR {info['ir_version']}, opset {info['opset']}"
        + "".join(f", {d} {v}" for d, v in info["opset_imports"].items() if d != "ai.onnx"),
    ]
    for kind in ("inputs", "outputs"):
        for value in info[kind]:
            shape = "?" if value["shape"] is None else "[" + ", ".join(str(d) for d in value["shape"]) + "]"
            lines.append(f"{kind[:-1] + ':':10s} {value['name']} {value['dtype']} {shape}")
    lines.append(f"params:    {info['params']:,} float weights in {info['initializers']} initializers"
                 f" (+{info['int_constants']:,} integer constants)")
    histogram = ", ".join(f"{op} {n}" for op, n in info["op_types"].items())
    lines.append(f"nodes:     {info['nodes']} ({histogram})")
    precisions = info.get("dense_block_precision") or {}
    if precisions:
        from ..native.precision import FP16_NEEDS

        counts = ", ".join(f"{p} ({n} DenseBlock op{'s' if n > 1 else ''})" for p, n in precisions.items())
        needs = f"; runs only on a CPU with {FP16_NEEDS}" if "fp16" in precisions else ""
        lines.append(f"precision: {counts}{needs}")
    metadata = info["metadata"]
    if metadata:
        lines.append("metadata:")
        width = max(len(_short_key(k)) for k in metadata)
        for key, value in metadata.items():
            lines.append(f"  {_short_key(key):{width}s}  {_short_value(value)}")
    return "\n".join(lines)


def _short_key(key: str) -> str:
    return key[len(META):] if key.startswith(META) else key


def _short_value(value: str, limit: int = 160) -> str:
    """Compact JSON on one line, cut at ``limit`` characters (``--json`` prints it whole)."""
    try:
        value = json.dumps(json.loads(value), separators=(", ", ": "))
    except ValueError:
        pass
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 3] + "..."
