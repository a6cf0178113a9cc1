"""graph/view.py: the producer-chain matcher."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from condense_deploy.graph.view import GraphView


def _chain() -> GraphView:
    # x -> Conv -> Relu -> Relu -> Neg: walks start from the Neg's input y
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r1"], name="r1"),
             helper.make_node("Relu", ["r1"], ["y"], name="r2"),
             helper.make_node("Neg", ["y"], ["out"], name="neg")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])])
    return GraphView(helper.make_model(graph))


def is_(op: str):
    return lambda n: n.op_type == op


def test_walk_up_collects_through_nodes_nearest_first_and_the_stop_node() -> None:
    g = _chain()
    chain, end = g.walk_up("y", through=is_("Relu"), stop=is_("Conv"))
    assert [n.name for n in chain] == ["r2", "r1"] and end is not None and end.name == "conv"
    chain, end = g.walk_up("y", through=is_("Relu"), stop=is_("Conv"), limit=1)
    assert [n.name for n in chain] == ["r2"] and end is None  # r1 is neither through (limit) nor stop
    chain, end = g.walk_up("y", through=is_("Relu"))
    assert end is None and len(chain) == 2


def test_walk_up_stops_at_a_tensor_read_twice() -> None:
    g = _chain()
    extra = onnx.helper.make_node("Relu", ["r1"], ["z"], name="other")
    g.nodes.append(extra)
    g.reindex()
    chain, end = g.walk_up("y", through=is_("Relu"), stop=is_("Conv"))
    assert [n.name for n in chain] == ["r2"] and end is None


def test_match_up() -> None:
    g = _chain()
    assert [n.name for n in g.match_up("y", [is_("Relu"), is_("Relu"), is_("Conv")])] == ["r2", "r1", "conv"]
    assert g.match_up("y", [is_("Relu"), is_("Conv")]) is None
