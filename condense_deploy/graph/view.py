"""``GraphView``: a small mutable index of an ONNX graph (producers, consumers, constants, static
shapes, fresh names) with a matcher for walking up producer chains. onnx + numpy only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["GraphView", "NodeTest"]

NodeTest = Callable[[onnx.NodeProto], bool]


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

    def consts_of(self, names: Iterable[str]) -> list[np.ndarray] | None:
        """The constant values of ``names``, or None when any of them is not a constant."""
        values = [self.consts.get(name) for name in names]
        return None if any(v is None for v in values) else [v for v in values if v is not None]

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

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
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

    def walk_up(self, tensor: str, through: NodeTest, stop: NodeTest | None = None,
                limit: int | None = None) -> tuple[list[onnx.NodeProto], onnx.NodeProto | None]:
        """Walk up the producers of ``tensor`` while each tensor on the way is read by one node only:
        collect nodes that pass ``through`` (at most ``limit``) until a node that passes ``stop``.

        Returns (the nodes passed through, nearest first; the ``stop`` node, or None when the walk
        ended anywhere else). ``through`` is tried before ``stop``.
        """
        chain: list[onnx.NodeProto] = []
        while True:
            producer = self.producer.get(tensor)
            if producer is None or self.only_consumer(tensor) is None:
                return chain, None
            if (limit is None or len(chain) < limit) and through(producer):
                chain.append(producer)
                tensor = producer.input[0]
                continue
            return chain, producer if stop is not None and stop(producer) else None

    def match_up(self, tensor: str, pattern: Sequence[NodeTest]) -> list[onnx.NodeProto] | None:
        """The producers of ``tensor``, nearest first, when they match ``pattern`` one by one, each
        read only by the next (following first inputs); None otherwise."""
        nodes: list[onnx.NodeProto] = []
        for test in pattern:
            producer = self.producer.get(tensor)
            if producer is None or self.only_consumer(tensor) is None or not test(producer):
                return None
            nodes.append(producer)
            tensor = producer.input[0]
        return nodes
