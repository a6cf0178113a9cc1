"""Apply the ``passes`` rewrites as ``recipes`` says: ``none``, ``fast`` (fixed rules) or ``tuned``
(time each grouped conv's equivalent forms on this machine and keep the fastest). Torch-free.

The choices made are returned as a dict and stored in the model's ``metadata_props`` under
``condense_deploy.optimize`` (JSON), so a tuned file says what it was tuned for.
"""

from __future__ import annotations

import functools
import json
import operator
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ..errors import CondenseDeployError
from ..native.precision import DEFAULT_PRECISION, PRECISIONS
from ..runtime.sessions import create_session, random_feeds, run_session
from ..runtime.timing import time_models
from . import passes as P
from .metadata import OPTIMIZE_KEY, PRECISION_KEY
from .native import native_dense_blocks, with_precision
from .recipes import MODES, RECIPES, Recipe, pass_names

__all__ = ["FORMS", "LOAD_ERROR", "METADATA_KEY", "MODES", "apply_recipe", "check_precision", "optimize_file",
           "optimize_onnx"]

METADATA_KEY = OPTIMIZE_KEY
LOAD_ERROR = "onnxruntime cannot load the rewritten model: {reason}"

# tuned mode never tries depthwise beyond this many outputs per group (always far slower: the
# multiplier form runs off the fast path)
_TUNE_DEPTHWISE_MAX_OUT = 4

Select = Callable[[str], bool]
# form name -> rewrite of one conv, chosen by name
FORMS: dict[str, Callable[[onnx.ModelProto, Select], onnx.ModelProto]] = {
    "as_is": lambda m, sel: m,
    "depthwise": lambda m, sel: P.grouped_conv_to_depthwise(m, max_outputs_per_group=_TUNE_DEPTHWISE_MAX_OUT,
                                                            select=sel),
    "depthwise_dup": lambda m, sel: P.grouped_conv_to_depthwise(
        m, max_outputs_per_group=_TUNE_DEPTHWISE_MAX_OUT, select=sel, duplicate_producer=True),
    "pad_in": lambda m, sel: P.pad_group_inputs(m, select=sel),
    "pad_out": lambda m, sel: P.pad_group_outputs(m, select=sel),
    "pad_in+pad_out": lambda m, sel: P.pad_group_outputs(P.pad_group_inputs(m, select=sel), select=sel),
}


# every step a recipe may name: the portable passes and the rewrite to our native ops
STEPS: dict[str, Callable[..., onnx.ModelProto]] = {**P.PASSES, "dense_blocks_to_native": native_dense_blocks}


def apply_recipe(model: onnx.ModelProto, recipe: Recipe) -> onnx.ModelProto:
    """Apply each (pass, settings) step of ``recipe`` in order (``recipes.RECIPES``)."""
    for name, kwargs in recipe:
        model = STEPS[name](model, **kwargs)
    return model


def _grouped_convs(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type == "Conv" and any(
        a.name == "group" and a.i > 1 for a in n.attribute) and not _is_depthwise(model, n)]


def _is_depthwise(model: onnx.ModelProto, node: onnx.NodeProto) -> bool:
    weights = {i.name: i for i in model.graph.initializer}
    w = weights.get(node.input[1])
    return w is not None and w.dims[1] == 1


def _site(model: onnx.ModelProto, conv_name: str, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """A stand-alone model of one grouped conv and the per-channel chain feeding it (index/shuffle
    Gather, BN, ReLU), with the chain's input as graph input and static shapes."""
    g = P.GraphView(model)
    conv = next(n for n in g.nodes if n.name == conv_name)
    chain, gather = g.walk_up(conv.input[0], through=lambda n: n.op_type in ("Relu", "BatchNormalization"),
                              stop=lambda n: P.channel_gather(g, n) is not None)
    nodes = [*([gather] if gather is not None else []), *reversed(chain), conv]
    tensor = nodes[0].input[0]
    if tensor not in shapes or conv.output[0] not in shapes:
        raise CondenseDeployError(f"tuned: no static shape for the input of {conv_name}")
    names = {i for n in nodes for i in n.input}
    inits = [i for i in model.graph.initializer if i.name in names]
    graph = helper.make_graph(
        nodes, "site", [helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, shapes[tensor])],
        [helper.make_tensor_value_info(conv.output[0], onnx.TensorProto.FLOAT, shapes[conv.output[0]])],
        inits)
    return helper.make_model(graph, opset_imports=list(model.opset_import))


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's inferred shape, symbolic dimensions (the batch) set to 1."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in info.type.tensor_type.shape.dim]
        shapes[info.name] = dims
    return shapes


def _tune(model: onnx.ModelProto, threads: int,
          progress: Callable[[int, int], None] | None) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Time every applicable form of every grouped conv in isolation and apply the fastest."""
    choices: dict[str, dict[str, Any]] = {}
    convs = _grouped_convs(model)
    shapes = _shapes(model)
    for k, name in enumerate(convs):
        site = _site(model, name, shapes)
        forms: list[str] = []
        variants: list[onnx.ModelProto] = []
        for form, rewrite in FORMS.items():
            variant = rewrite(site, functools.partial(operator.eq, name))
            if form != "as_is" and variant.SerializeToString() == site.SerializeToString():
                continue  # not applicable to this conv
            forms.append(form)
            variants.append(variant)
        times = [0.0]
        if len(variants) > 1:
            times = time_models(variants, threads, rounds=9, inner=3, statistic="min")
        best = int(np.argmin(times))
        timed = {f: round(t, 4) for f, t in zip(forms, times, strict=True)} if len(variants) > 1 else {}
        choices[name] = {"form": forms[best], "ms": timed}
        if progress is not None:
            progress(k + 1, len(convs))
    by_form: dict[str, set[str]] = {}
    for name, choice in choices.items():
        by_form.setdefault(choice["form"], set()).add(name)
    # depthwise consumes the shuffle Gather, so it goes first; padding outputs after inputs
    for form in ("depthwise", "depthwise_dup", "pad_in", "pad_in+pad_out", "pad_out"):
        if form in by_form:
            model = FORMS[form](model, by_form[form].__contains__)
    return model, {"choices": choices}


def _keep_faster_than_fast(tuned: onnx.ModelProto, fast: onnx.ModelProto,
                           threads: int) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Time the whole tuned model against the ``fast`` one, interleaved, and keep the faster.

    Per-conv timing sees each conv alone, not the layout reorders its choice adds between
    neighbouring layers; on whole CondenseNet-74 models the per-conv choices measured slower than
    the fixed rules, so tuned only keeps them when they win as a whole.
    """
    tuned_ms, fast_ms = (round(t, 3) for t in time_models([tuned, fast], threads, rounds=11, inner=2))
    kept = "tuned" if tuned_ms < fast_ms else "fast"  # a tie keeps the simpler rules
    summary = {"tuned_ms": tuned_ms, "fast_ms": fast_ms, "kept": kept}
    return (tuned if kept == "tuned" else fast), summary


def check_precision(mode: str, precision: str) -> None:
    """``fp16`` is an opt-in of the ``native`` recipe only (other modes run onnxruntime's fp32 kernels)."""
    if precision not in PRECISIONS:
        raise CondenseDeployError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != DEFAULT_PRECISION and mode != "native":
        raise CondenseDeployError(f"precision {precision} needs optimize mode native (our DenseBlock kernels "
                                  f"compute in it), not {mode}")


def _recipe(mode: str, precision: str) -> Recipe:
    """``mode``'s recipe with the native step set to ``precision`` (a user's choice, not a constant)."""
    return tuple((name, {**kwargs, "precision": precision} if name == "dense_blocks_to_native" else kwargs)
                 for name, kwargs in RECIPES[mode])


def optimize_onnx(model: onnx.ModelProto, mode: str = "fast", threads: int = 1,
                  progress: Callable[[int, int], None] | None = None, precision: str = DEFAULT_PRECISION,
                  ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Rewrite ``model`` for onnxruntime CPU latency; returns (new model, report of what was done).

    The input is never modified. ``tuned`` times candidates with ``threads`` intra-op threads, so
    tune with the thread count you will deploy with. ``precision="fp16"`` (``native`` only) makes every
    DenseBlock compute in ARMv8.2 FP16 arithmetic; the file's metadata records the precision.
    """
    if mode not in MODES:
        raise CondenseDeployError(f"optimize mode must be one of {', '.join(MODES)}, not {mode!r}")
    check_precision(mode, precision)
    report: dict[str, Any] = {"mode": mode}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if mode != "none":
        before = _op_counts(out)
        out = apply_recipe(out, _recipe(mode, precision))
        report["passes"] = pass_names(mode)
        if mode == "tuned":
            out, tuned = _tune(out, threads, progress)
            report.update(tuned)
            out, report["whole_model"] = _keep_faster_than_fast(out, apply_recipe(model, RECIPES["fast"]),
                                                                threads)
            report["threads"] = threads
            report["machine"] = f"{platform.machine()} {platform.processor() or platform.node()}".strip()
        if mode == "native":
            blocks = sum(n.op_type == "DenseBlock" for n in out.graph.node)
            if not blocks:
                raise CondenseDeployError(
                    "native: no CondenseNet dense block found to rewrite (native needs a converted "
                    "CondenseNet as exported with --optimize none)")
            report["native_blocks"] = blocks
            report["precision"] = precision
        report["block"] = P.nchwc_block()
        report["ops_before"] = before
        report["ops_after"] = _op_counts(out)
        P.check_model(out, "optimize")
    _set_metadata(out, report)
    return out, report


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _set_metadata(model: onnx.ModelProto, report: dict[str, Any]) -> None:
    """The optimize report, and the blocks' precision for a native model (what ``inspect`` shows)."""
    for prop in list(model.metadata_props):
        if prop.key in (METADATA_KEY, PRECISION_KEY):
            model.metadata_props.remove(prop)
    entries = {METADATA_KEY: json.dumps(report, sort_keys=True)}
    if "precision" in report:
        entries[PRECISION_KEY] = report["precision"]
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _outputs(model: onnx.ModelProto, where: str, load_error: str, seed: int = 0,
             batch: int = 2) -> tuple[dict[str, Any], list[Any]]:
    """One random input for ``model`` and its outputs in onnxruntime; a model that cannot be loaded
    or run is one error naming ``where``."""
    session = create_session(model, 1, load_error=load_error)
    feeds = random_feeds(session, seed, batch)
    return feeds, run_session(session, feeds, where)


def _max_diff(a: list[Any], b: list[Any]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        raise CondenseDeployError("optimized model's outputs differ in number or shape from the input's")
    return max((float(np.max(np.abs(x.astype(np.float64) - y), initial=0.0))
                for x, y in zip(a, b, strict=True)), default=0.0)


def max_abs_diff(reference: onnx.ModelProto, candidate: onnx.ModelProto, seed: int = 0,
                 batch: int = 2) -> float:
    """Largest |difference| of every output of two models on one random input, in onnxruntime."""
    feeds, a = _outputs(reference, "the reference model", LOAD_ERROR, seed, batch)
    cand = create_session(candidate, 1, load_error=LOAD_ERROR)
    return _max_diff(a, run_session(cand, feeds, "the rewritten model"))


def optimize_file(source: str, target: str, mode: str = "fast", threads: int = 1, force: bool = False,
                  atol: float = 1e-4, progress: Callable[[int, int], None] | None = None,
                  precision: str = DEFAULT_PRECISION) -> dict[str, Any]:
    """Optimize the ONNX file ``source`` into ``target``; verify it against ``source`` in onnxruntime
    on random input and write nothing when any output differs by more than ``atol``.

    An fp16 model is verified as the same graph at fp32 (within ``atol``); its fp16 outputs are then
    compared with that where this CPU has FP16 arithmetic (``report["fp16"]``: max abs difference and
    top-1 agreement), and the report says so where it has not.
    """
    from .._fsutil import atomic_path, check_writable
    from .fp16_check import compare_fp16
    from .onnx_info import load_checked

    check_precision(mode, precision)
    model = load_checked(source)  # the input is judged before the output is blamed
    check_writable(target, force, inputs=[source])
    # the input must run before it is rewritten: a model that fails in onnxruntime (an index out of
    # range, a Conv with group 0) is the input's fault, said once, not a pass's crash
    feeds, expected = _outputs(model, source, f"{source}: onnxruntime cannot load it ({{reason}})")
    optimized, report = optimize_onnx(model, mode, threads, progress, precision)
    as_fp32 = with_precision(optimized, DEFAULT_PRECISION) if precision != DEFAULT_PRECISION else optimized
    candidate = create_session(as_fp32, 1, load_error=LOAD_ERROR)
    outputs = run_session(candidate, feeds, f"{target}: the rewritten model")
    diff = _max_diff(expected, outputs)
    report["max_abs_diff"] = diff
    if not diff <= atol:
        raise CondenseDeployError(f"{target}: optimized model differs from {source}: max abs diff "
                                  f"{diff:.3e} > atol {atol:.0e}; nothing written")
    if precision == "fp16":
        report["fp16"] = compare_fp16(optimized, feeds, outputs, f"{target}: the fp16 model")
    with atomic_path(target, overwrite=force) as tmp:
        onnx.save(optimized, str(tmp))
    return report
