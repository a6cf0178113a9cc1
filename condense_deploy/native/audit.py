"""Audit of our ops' nodes in a model against the contract (docs/native-ops.md), before a session.

The library checks every attribute it reads for its type and value, and every input; what it cannot
see through onnxruntime's C API is an attribute it does not read (onnxruntime has no call that lists
a node's attributes), so an unknown attribute such as ``stride=2`` on a DenseBlock would be ignored
and the model would run as something else than it says. This audit refuses such nodes: every node
of our domain must be an op of the contract, with only the contract's attributes, each of the
contract's type (and a string attribute one of its values), and the contract's number of inputs.
onnx is imported only here.
"""

from __future__ import annotations

from .contract import (
    DENSE_BLOCK,
    DENSE_BLOCK_ATTRIBUTES,
    DENSE_BLOCK_INPUTS,
    DENSE_BLOCK_OPTIONAL_ATTRIBUTES,
    DENSE_BLOCK_PRECISIONS,
    DOMAIN,
    GROUPED_CONV,
    GROUPED_CONV_ATTRIBUTES,
    GROUPED_CONV_INPUTS,
)

__all__ = ["contract_problem"]

# op -> (attribute -> onnx AttributeProto type name, fewest inputs, most inputs)
_OPS = {
    DENSE_BLOCK: ({**{name: "INTS" if name == "kept" else "INT" for name in DENSE_BLOCK_ATTRIBUTES},
                   **dict.fromkeys(DENSE_BLOCK_OPTIONAL_ATTRIBUTES, "STRING")},
                  len(DENSE_BLOCK_INPUTS), len(DENSE_BLOCK_INPUTS)),
    GROUPED_CONV: (dict.fromkeys(GROUPED_CONV_ATTRIBUTES, "INT"), 2, len(GROUPED_CONV_INPUTS)),
}
# (op, string attribute) -> the values the contract allows
_VALUES = {(DENSE_BLOCK, "precision"): DENSE_BLOCK_PRECISIONS}


def contract_problem(data: bytes) -> str | None:
    """What the first node of our domain in the serialized model ``data`` has that the contract does
    not define (None when every node keeps to it, or the bytes are not a model: onnxruntime says so)."""
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError; onnxruntime reports the file itself
        return None
    graphs = [model.graph, *(f for f in model.functions)]
    for graph in graphs:
        for node in graph.node:
            if node.domain != DOMAIN:
                continue
            name = node.name or (node.output[0] if node.output else "?")
            where = f"node {name!r} ({node.op_type})"
            if node.op_type not in _OPS:
                return f"{where}: {DOMAIN} has no op {node.op_type!r} (it has {', '.join(_OPS)})"
            attributes, fewest, most = _OPS[node.op_type]
            for attribute in node.attribute:
                want = attributes.get(attribute.name)
                if want is None:
                    return (f"{where}: attribute {attribute.name!r} is not in the op contract "
                            f"({', '.join(attributes)})")
                got = onnx.AttributeProto.AttributeType.Name(attribute.type)
                if got != want:
                    return f"{where}: mismatched attribute type: {attribute.name!r} must be {want}, got {got}"
                allowed = _VALUES.get((node.op_type, attribute.name))
                value = attribute.s.decode("utf-8", "replace")
                if allowed is not None and value not in allowed:
                    return (f"{where}: attribute {attribute.name!r} must be one of "
                            f"{', '.join(map(repr, allowed))}, got {value!r}")
            if not fewest <= len(node.input) <= most:
                span = str(fewest) if fewest == most else f"{fewest} to {most}"
                return f"{where}: has {len(node.input)} inputs; the op contract has {span}"
    return None
