"""Fuzz driver for our custom ops: malformed and random valid DenseBlock / GroupedConv models.

Run as a script (``python tests/_native_fuzz.py --library L [--bench-library B] --seed S --cases N
--seconds T``): DenseBlock against the shipped library L, GroupedConv against the bench-only one B,
normally by tests/test_native_fuzz.py in a child process that preloads AddressSanitizer
into a sanitizer build of the library. Each case is announced on stdout before it runs (``case 17
dense/attr-float/relu``), so a crash names it. A malformed model must be refused by onnxruntime (at
session creation or at run time) with an exception; a valid one must run and match the numpy
reference of the op. Anything else prints ``FAIL ...``; the run ends with ``done N cases``.

The malformed classes: every attribute missing, zero, negative, huge or of another type (and an
unknown one); every parameter too short, too long, of another rank or dtype, empty or missing;
index values out of range; X of another dtype or rank, zero, odd and large shapes; extra inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from condense_deploy.native.audit import contract_problem
from condense_deploy.native.contract import DOMAIN, DOMAIN_VERSION
from condense_deploy.native.reference import dense_block_reference, grouped_conv_reference

DENSE_INPUTS = ("index", "bn_scale", "bn_shift", "w1", "b1", "w3")
DENSE_ATTRS = ("growth", "mid", "groups_1x1", "groups_3x3", "kept")
HUGE = 2**40


@dataclass
class Case:
    """One model, its input, and what must happen."""

    name: str
    op: str
    attrs: dict[str, Any]  # name -> value (onnx.AttributeProto for raw, hand-made ones)
    params: dict[str, np.ndarray | None]  # None: the input is left empty ("")
    x: np.ndarray
    valid: bool
    as_inputs: set[str] = field(default_factory=set)
    extra_inputs: int = 0
    reference: Callable[[], np.ndarray] | None = None
    # what onnxruntime's C API does not show the library (an attribute it does not read, an input
    # beyond the op's declared ones): the raw run must only not crash; the package's contract audit
    # (the session factory runs it) must refuse the model
    audited: bool = False


# --------------------------------------------------------------------------------------- DenseBlock
def dense_config(rng: np.random.Generator) -> dict[str, Any]:
    """A random valid DenseBlock: sizes as the contract allows them (kept_l a multiple of G1, index
    values in range, repeats allowed), small enough to check against the reference quickly."""
    g1, g3 = (int(rng.choice([1, 2, 4])) for _ in range(2))
    growth = g3 * int(rng.integers(1, 4))
    mid = int(np.lcm(g1, g3)) * int(rng.integers(1, 4))
    layers = int(rng.integers(1, 4))
    c0 = int(rng.integers(1, 13))
    kept = [g1 * int(rng.integers(1, 4)) for _ in range(layers)]
    index = np.concatenate([rng.integers(0, c0 + i * growth, k) for i, k in enumerate(kept)]).astype(np.int64)
    total = sum(kept)
    params = {
        "index": index,
        "bn_scale": rng.uniform(0.5, 1.5, total).astype(np.float32),
        "bn_shift": rng.normal(0, 0.1, total).astype(np.float32),
        "w1": rng.normal(0, 0.5, sum(mid * k // g1 for k in kept)).astype(np.float32),
        "b1": rng.normal(0, 0.1, layers * mid).astype(np.float32),
        "w3": rng.normal(0, 0.3, layers * growth * (mid // g3) * 9).astype(np.float32),
    }
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 10)), int(rng.integers(1, 10))
    x = rng.standard_normal((n, c0, h, w)).astype(np.float32)
    attrs = {"growth": growth, "mid": mid, "groups_1x1": g1, "groups_3x3": g3, "kept": kept}
    return {"attrs": attrs, "params": params, "x": x}


def _dense_reference(attrs: dict[str, Any], params: dict[str, Any],
                     x: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: dense_block_reference(x, params["index"], params["bn_scale"], params["bn_shift"],
                                         params["w1"], params["b1"], params["w3"], **attrs)


def _wrong_typed(name: str, value: Any, kind: str) -> onnx.AttributeProto:
    """``name`` as an attribute of another type than the contract's."""
    ints = isinstance(value, list)
    make = {
        "float": lambda: helper.make_attribute(name, float(value[0] if ints else value)),
        "floats": lambda: helper.make_attribute(name, [float(v) for v in (value if ints else [value])]),
        "string": lambda: helper.make_attribute(name, "4"),
        "other-arity": lambda: helper.make_attribute(name, int(value[0]) if ints else [int(value)]),
        "tensor": lambda: helper.make_attribute(name, numpy_helper.from_array(np.array(value, np.int64))),
    }
    return make[kind]()


def dense_malformed(rng: np.random.Generator) -> Case:
    base = dense_config(rng)
    attrs, params, x = dict(base["attrs"]), dict(base["params"]), base["x"]
    kind = str(rng.choice(["attr", "attr", "attr-type", "param", "param", "index", "x", "inputs"]))
    if kind == "attr":
        name = str(rng.choice(DENSE_ATTRS))
        how = str(rng.choice(["missing", "zero", "negative", "huge", "plus-one"]))
        if how == "missing":
            del attrs[name]
        elif name == "kept":
            k = list(attrs["kept"])
            at = int(rng.integers(len(k)))
            how = str(rng.choice(["empty", "zero", "negative", "huge", "longer", "shorter", "odd"]))
            if how == "empty":
                k = []
            elif how == "longer":
                k.append(k[-1])
            elif how == "shorter" and len(k) > 1:
                k.pop()
            elif how == "odd" and attrs["groups_1x1"] > 1:
                k[at] += 1
            else:
                k[at] = {"zero": 0, "negative": -attrs["groups_1x1"], "huge": HUGE * attrs["groups_1x1"]}.get(
                    how, k[at] + attrs["groups_1x1"])
            attrs["kept"] = k
        else:
            attrs[name] = {"zero": 0, "negative": -int(attrs[name]), "huge": HUGE,
                           "plus-one": int(attrs[name]) + 1}[how]
        return Case(f"dense/attr/{name}/{how}", "DenseBlock", attrs, params, x, valid=False)
    if kind == "attr-type":
        name = str(rng.choice([*DENSE_ATTRS, "unknown"]))
        how = str(rng.choice(["float", "floats", "string", "other-arity", "tensor"]))
        if name == "unknown":
            attrs["stride"] = _wrong_typed("stride", 2, how) if how != "other-arity" else 2
        else:
            attrs[name] = _wrong_typed(name, attrs[name], how)
        return Case(f"dense/attr-type/{name}/{how}", "DenseBlock", attrs, params, x, valid=False,
                    audited=name == "unknown")
    if kind == "param":
        name = str(rng.choice(DENSE_INPUTS))
        how = str(rng.choice(["short", "long", "rank", "dtype", "empty", "missing"]))
        a = params[name]
        assert a is not None
        if how == "short":
            params[name] = a[:-1]
        elif how == "long":
            params[name] = np.concatenate([a, a[:1]])
        elif how == "rank":
            params[name] = a.reshape(1, -1)
        elif how == "dtype":
            params[name] = a.astype(rng.choice([np.float64, np.int32, np.float16, np.float32, np.int64]))
            if params[name].dtype == a.dtype:
                params[name] = a.astype(np.float64)
        elif how == "empty":
            params[name] = a[:0]
        else:
            params[name] = None
        as_inputs = {name} if rng.random() < 0.3 else set()
        return Case(f"dense/param/{name}/{how}", "DenseBlock", attrs, params, x, valid=False,
                    as_inputs=as_inputs)
    if kind == "index":
        idx = params["index"].copy()
        at = int(rng.integers(len(idx)))
        layer_end = np.cumsum(attrs["kept"])
        layer = int(np.searchsorted(layer_end, at, side="right"))
        limit = x.shape[1] + layer * attrs["growth"]
        how = str(rng.choice(["at-limit", "negative", "huge"]))
        idx[at] = {"at-limit": limit, "negative": -1, "huge": HUGE}[how]
        params["index"] = idx
        as_inputs = {"index"} if rng.random() < 0.3 else set()
        return Case(f"dense/index/{how}", "DenseBlock", attrs, params, x, valid=False, as_inputs=as_inputs)
    if kind == "x":
        how = str(rng.choice(["dtype", "rank3", "rank5", "zero-h", "zero-c", "fewer-channels"]))
        if how == "dtype":
            x = x.astype(np.float64)
        elif how == "rank3":
            x = x[0]
        elif how == "rank5":
            x = x[None]
        elif how == "zero-h":
            x = x[:, :, :0]
        elif how == "zero-c":
            x = x[:, :0]
        else:  # fewer channels than the index reads: out of range at run time
            top = int(params["index"][: attrs["kept"][0]].max())
            if top == 0:
                params["index"] = params["index"].copy()
                params["index"][0] = 1
                x = x[:, :1]
            else:
                x = x[:, :top]
        return Case(f"dense/x/{how}", "DenseBlock", attrs, params, x, valid=False)
    return Case("dense/inputs/extra", "DenseBlock", attrs, params, x, valid=False, extra_inputs=1)


def dense_valid(rng: np.random.Generator) -> Case:
    base = dense_config(rng)
    as_inputs = {str(rng.choice(DENSE_INPUTS))} if rng.random() < 0.25 else set()
    return Case("dense/valid", "DenseBlock", base["attrs"], base["params"], base["x"], valid=True,
                as_inputs=as_inputs, reference=_dense_reference(base["attrs"], base["params"], base["x"]))


# -------------------------------------------------------------------------------------- GroupedConv
def conv_config(rng: np.random.Generator) -> dict[str, Any]:
    g = int(rng.choice([1, 2, 3, 4, 8]))
    c, o = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
    k = int(rng.choice([1, 3]))
    w = rng.normal(0, 0.5, (o, c // g, k, k)).astype(np.float32)
    b = rng.normal(0, 0.1, o).astype(np.float32) if rng.random() < 0.7 else None
    x = rng.standard_normal((int(rng.integers(1, 3)), c, int(rng.integers(1, 10)),
                             int(rng.integers(1, 10)))).astype(np.float32)
    return {"attrs": {"group": g, "relu": int(rng.integers(0, 2))}, "params": {"W": w, "B": b}, "x": x}


def conv_valid(rng: np.random.Generator) -> Case:
    base = conv_config(rng)
    attrs, params, x = base["attrs"], base["params"], base["x"]
    ref = lambda: grouped_conv_reference(x, params["W"], attrs["group"], params["B"],  # noqa: E731
                                         relu=bool(attrs["relu"]))
    return Case("conv/valid", "GroupedConv", attrs, params, x, valid=True, reference=ref)


def conv_malformed(rng: np.random.Generator) -> Case:
    base = conv_config(rng)
    attrs, params, x = dict(base["attrs"]), dict(base["params"]), base["x"]
    kind = str(rng.choice(["group", "relu", "type", "w", "b", "x", "extra"]))
    if kind == "group":
        how = str(rng.choice(["zero", "negative", "huge", "not-dividing"]))
        attrs["group"] = {"zero": 0, "negative": -attrs["group"], "huge": HUGE,
                          "not-dividing": params["W"].shape[0] + 1}[how]
        return Case(f"conv/group/{how}", "GroupedConv", attrs, params, x, valid=False)
    if kind == "relu":
        how = str(rng.choice(["two", "negative"]))
        attrs["relu"] = {"two": 2, "negative": -1}[how]
        return Case(f"conv/relu/{how}", "GroupedConv", attrs, params, x, valid=False)
    if kind == "type":
        name = str(rng.choice(["group", "relu", "unknown"]))
        how = str(rng.choice(["float", "floats", "string", "other-arity", "tensor"]))
        if name == "unknown":
            attrs["pads"] = [1, 1, 1, 1]
        else:
            attrs[name] = _wrong_typed(name, attrs[name], how)
        return Case(f"conv/type/{name}/{how}", "GroupedConv", attrs, params, x, valid=False,
                    audited=name == "unknown")
    if kind == "w":
        w = params["W"]
        how = str(rng.choice(["rank", "dtype", "kernel2", "kernel5", "empty", "channels"]))
        params["W"] = {"rank": lambda: w.reshape(w.shape[0], -1), "dtype": lambda: w.astype(np.float64),
                       "kernel2": lambda: np.ones((w.shape[0], w.shape[1], 2, 2), np.float32),
                       "kernel5": lambda: np.ones((w.shape[0], w.shape[1], 5, 5), np.float32),
                       "empty": lambda: w[:0],
                       "channels": lambda: np.ones((w.shape[0], w.shape[1] + 1, *w.shape[2:]), np.float32),
                       }[how]()
        return Case(f"conv/w/{how}", "GroupedConv", attrs, params, x, valid=False,
                    as_inputs={"W"} if rng.random() < 0.3 else set())
    if kind == "b":
        o = params["W"].shape[0]
        how = str(rng.choice(["empty", "short", "long", "rank", "dtype"]))
        params["B"] = {"empty": np.zeros(0, np.float32), "short": np.zeros(o - 1, np.float32),
                       "long": np.zeros(o + 1, np.float32), "rank": np.zeros((1, o), np.float32),
                       "dtype": np.zeros(o, np.float64)}[how]
        return Case(f"conv/b/{how}", "GroupedConv", attrs, params, x, valid=False)
    if kind == "x":
        how = str(rng.choice(["dtype", "rank3", "zero-h", "channels"]))
        x = {"dtype": lambda: x.astype(np.float64), "rank3": lambda: x[0], "zero-h": lambda: x[:, :, :0],
             "channels": lambda: np.concatenate([x, x[:, :1]], axis=1)}[how]()
        return Case(f"conv/x/{how}", "GroupedConv", attrs, params, x, valid=False)
    if params["B"] is None:  # a fourth input, beyond X, W and B
        params["B"] = np.zeros(params["W"].shape[0], np.float32)
    return Case("conv/inputs/extra", "GroupedConv", attrs, params, x, valid=False, extra_inputs=1,
                audited=True)


# ---------------------------------------------------------------------------------------- running
_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(np.int32): TensorProto.INT32,
          np.dtype(np.int64): TensorProto.INT64}


def build(case: Case) -> tuple[bytes, dict[str, np.ndarray]]:
    """The one-node model of ``case`` and its feeds."""
    names = list(DENSE_INPUTS) if case.op == "DenseBlock" else ["W", "B"]
    node_inputs, inits, graph_inputs = ["X"], [], []
    feeds: dict[str, np.ndarray] = {"X": case.x}
    dims = ["N", "C", "H", "W"][: case.x.ndim] + [f"d{i}" for i in range(4, case.x.ndim)]
    graph_inputs.append(helper.make_tensor_value_info("X", _TYPES[case.x.dtype], dims))
    for name in names:
        value = case.params.get(name)
        if value is None:
            if case.op == "GroupedConv" and name == "B":
                continue  # no bias: the optional input is absent
            node_inputs.append("")
            continue
        node_inputs.append(name)
        if name in case.as_inputs:
            graph_inputs.append(helper.make_tensor_value_info(name, _TYPES[value.dtype], list(value.shape)))
            feeds[name] = value
        else:
            inits.append(numpy_helper.from_array(value, name))
    for k in range(case.extra_inputs):
        extra = f"extra{k}"
        inits.append(numpy_helper.from_array(np.zeros(1, np.float32), extra))
        node_inputs.append(extra)
    node = helper.make_node(case.op, node_inputs, ["Y"], domain=DOMAIN)
    for key, value in case.attrs.items():
        if isinstance(value, onnx.AttributeProto):
            node.attribute.append(value)
        elif isinstance(value, list):  # also an empty list, whose type onnx cannot infer
            node.attribute.append(helper.make_attribute(key, value, attr_type=onnx.AttributeProto.INTS))
        else:
            node.attribute.append(helper.make_attribute(key, value))
    graph = helper.make_graph([node], "fuzz", graph_inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    return model.SerializeToString(), feeds


def run_case(case: Case, library: str, threads: int) -> str | None:
    """None when the library did what the contract says, else what went wrong."""
    data, feeds = build(case)
    if case.audited and contract_problem(data) is None:
        return "the contract audit let it through"
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = threads
    options.register_custom_ops_library(library)
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        y = session.run(None, feeds)[0]
    except Exception as e:  # onnxruntime's pybind exceptions: the refusal a malformed model must get
        if case.valid and not case.audited:
            return f"a valid model was refused: {str(e).splitlines()[0][:200]}"
        return None
    if case.audited:
        return None
    if not case.valid:
        return f"a malformed model ran (output shape {list(y.shape)})"
    assert case.reference is not None
    want = case.reference()
    if y.shape != want.shape:
        return f"output shape {list(y.shape)} != reference {list(want.shape)}"
    diff = float(np.max(np.abs(y.astype(np.float64) - want), initial=0.0))
    if not diff <= 1e-4 * max(1.0, float(np.max(np.abs(want), initial=0.0))):
        return f"max abs diff {diff:.3e} from the reference"
    return None


GENERATORS = {
    "DenseBlock": [(dense_malformed, 3), (dense_valid, 1)],
    "GroupedConv": [(conv_malformed, 3), (conv_valid, 1)],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="the shipped library (DenseBlock)")
    parser.add_argument("--bench-library", help="the bench-only library (also GroupedConv)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    ops = [("DenseBlock", args.library)]
    if args.bench_library:
        ops.append(("GroupedConv", args.bench_library))
    deadline = time.monotonic() + args.seconds
    failures = done = 0
    for i in range(args.cases):
        if time.monotonic() > deadline:
            break
        op, library = ops[i % len(ops)]
        makers = [m for m, weight in GENERATORS[op] for _ in range(weight)]
        case = makers[int(rng.integers(len(makers)))](rng)
        threads = int(rng.integers(1, 3))
        print(f"case {i} {case.name} threads={threads}", flush=True)
        problem = run_case(case, library, threads)
        done += 1
        if problem:
            failures += 1
            print(f"FAIL case {i} {case.name}: {problem}", flush=True)
    print(f"done {done} cases, {failures} failures", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
