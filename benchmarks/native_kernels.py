"""Benchmark of the native custom ops (csrc/) against stock onnxruntime on CondenseNet-74.

Every model comes from the project's own path: the zoo's CondenseNet-74 C=G=8 and C=G=4 (random
weights) exported through ``condense-deploy export`` (the table's cache, ``table.cached_export``).
For each of its dense blocks: DenseBlock against the stock subgraph, both cut from the ``--optimize
none`` export at the block's input and output (the tensors the native pass's DenseBlock node reads and
writes), then optimized as ``native`` (one DenseBlock node) and as ``fast`` (what a fast export runs);
checked equal first. GroupedConv against stock Conv on each block's last-layer 1x1 and 3x3 shapes
(random weights). The whole ``native`` exports against MobileNet v1's ``fast`` export (and the
``fast`` CondenseNet exports with --stock-models).

Runs on the bench-only library (DenseBlock and GroupedConv; ``scripts/build-kernels.sh --bench``, built
first unless --lib names one). Sessions come from runtime.sessions, timing from runtime.timing: one
session per variant, 1 intra-op thread unless --threads; rounds interleave the variants, each round
times --iters runs per variant; the figures are medians over rounds, ratios are per-round ratios'
medians. Writes native_kernels_<arch>.json and .md into --out (default benchmarks/results).

    python benchmarks/native_kernels.py [--rounds 15] [--iters 10] [--threads 1] [--only blocks,convs,models]
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from condense_deploy._fsutil import write_json, write_text
from condense_deploy.graph.metadata import META
from condense_deploy.graph.native import dense_blocks_to_native
from condense_deploy.graph.optimize import optimize_onnx
from condense_deploy.native import library
from condense_deploy.native.contract import DENSE_BLOCK
from condense_deploy.native.op_models import grouped_conv_model
from condense_deploy.runtime.sessions import create_session, session_options
from condense_deploy.runtime.timing import interleaved as timed_rounds
from condense_deploy.table import cached_export

ROOT = Path(__file__).resolve().parents[1]
CONDENSENET = "condensenet74_c{g}g{g}"


# ----------------------------------------------------------------------------------------------
# Models, all from the export path


@functools.cache
def dense_block_cuts(groups: int, onnx_dir: str | None) -> list[dict[str, Any]]:
    """Each dense block of CondenseNet-74 C=G=``groups``: the ``none`` export cut at the block's
    input and output, optimized as ``native`` and as ``fast``, with the DenseBlock's attributes."""
    path, _, _ = cached_export(CONDENSENET.format(g=groups), "none", onnx_dir, on_step=print)
    full = onnx.load(str(path))
    rewritten, sites = dense_blocks_to_native(full)
    nodes = [n for n in rewritten.graph.node if n.op_type == DENSE_BLOCK]
    extractor = onnx.utils.Extractor(full)
    cuts = []
    for site, node in zip(sites, nodes, strict=True):
        cut = extractor.extract_model([node.input[0]], [node.output[0]])
        native, _ = optimize_onnx(cut, "native")
        stock, _ = optimize_onnx(cut, "fast")
        assert [n.op_type for n in native.graph.node] == [DENSE_BLOCK], "the cut is not one dense block"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        cuts.append(dict(site=site, attrs=attrs, native=native, stock=stock))
    return cuts


def block_macs(attrs: dict[str, Any], hw: int) -> int:
    """Useful multiply-adds of one DenseBlock: per layer the grouped 1x1 on its kept channels and the
    grouped 3x3."""
    mid, growth = attrs["mid"], attrs["growth"]
    per_pos = sum(mid * kept // attrs["groups_1x1"] + growth * (mid // attrs["groups_3x3"]) * 9
                  for kept in attrs["kept"])
    return per_pos * hw * hw


def dense_block_useful_macs(groups: int, onnx_dir: str | None = None) -> int:
    """Useful multiply-adds of all DenseBlock ops of CondenseNet-74 C=G=``groups``: each block's
    attributes from the native rewrite of the ``none`` export, its image size from that export's
    inferred shapes."""
    path, _, _ = cached_export(CONDENSENET.format(g=groups), "none", onnx_dir, on_step=print)
    full = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    sizes = {v.name: v.type.tensor_type.shape.dim[-1].dim_value
             for v in [*full.graph.input, *full.graph.value_info] if v.type.tensor_type.shape.dim}
    rewritten, _ = dense_blocks_to_native(full)
    return sum(block_macs({a.name: helper.get_attribute_value(a) for a in node.attribute},
                          sizes[node.input[0]])
               for node in rewritten.graph.node if node.op_type == DENSE_BLOCK)


def conv_model(w: np.ndarray, group: int) -> onnx.ModelProto:
    """Stock onnxruntime's grouped Conv (same padding as GroupedConv), the convs' reference."""
    k = w.shape[2]
    node = helper.make_node("Conv", ["X", "Wt"], ["Y"], group=group, kernel_shape=[k, k], pads=[k // 2] * 4)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "Wt")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


# ----------------------------------------------------------------------------------------------
# Timing


def interleaved(variants: dict, rounds: int, iters: int, warmup: int = 3) -> dict[str, list[float]]:
    """variants: name -> (session, feed). Returns name -> seconds per run of each round (the one
    interleaved timer, runtime.timing)."""
    for sess, feed in variants.values():
        for _ in range(warmup):
            sess.run(None, feed)
    calls = [lambda s=sess, f=feed: s.run(None, f) for sess, feed in variants.values()]
    samples = timed_rounds(calls, rounds=rounds, inner=iters)
    return {name: [ms / 1e3 for ms in t] for name, t in zip(variants, samples, strict=True)}


def med(xs):
    return float(np.median(xs))


def ratio(a, b):
    return float(np.median(np.array(a) / np.array(b)))


def image_feed(session, batch: int = 1, size: int = 224) -> dict[str, np.ndarray]:
    x = np.random.default_rng(0).normal(0, 1, (batch, 3, size, size)).astype(np.float32)
    return {session.get_inputs()[0].name: x}


# ----------------------------------------------------------------------------------------------


def native_vs_stock(label, native, stock, x, macs, args):
    """``native`` and ``stock`` sessions on input ``x``: checks they agree (max abs diff < 1e-3), times
    them interleaved, prints a line; returns the row's timing fields and the difference."""
    feed_native, feed_stock = {native.get_inputs()[0].name: x}, {stock.get_inputs()[0].name: x}
    a, b = native.run(None, feed_native)[0], stock.run(None, feed_stock)[0]
    err = float(np.abs(a - b).max())
    assert err < 1e-3, f"{label}: native and stock differ by {err}"
    t = interleaved({"native": (native, feed_native), "stock": (stock, feed_stock)}, args.rounds, args.iters)
    row = dict(
        macs=macs,
        native_ms=med(t["native"]) * 1e3,
        stock_ms=med(t["stock"]) * 1e3,
        native_gmacs=macs / med(t["native"]) / 1e9,
        stock_gmacs=macs / med(t["stock"]) / 1e9,
        ratio=ratio(t["native"], t["stock"]),
    )
    print(
        f"{label}: native {row['native_ms']:.3f} ms ({row['native_gmacs']:.1f} GMAC/s), stock "
        f"{row['stock_ms']:.3f} ms ({row['stock_gmacs']:.1f}), ratio {row['ratio']:.3f}",
        flush=True,
    )
    return row, err


def bench_blocks(groups, args, rng):
    rows = []
    for cut in dense_block_cuts(groups, args.onnx_dir):
        site, attrs = cut["site"], cut["attrs"]
        c0, hw = site.in_channels, site.height
        x = rng.normal(0, 1, (1, c0, hw, site.width)).astype(np.float32)
        ours = create_session(cut["native"], args.threads)
        stock = create_session(cut["stock"], args.threads)
        timing, err = native_vs_stock(f"G={groups} block C0={c0:4d} {hw:3d}x{hw:<3d}", ours, stock, x,
                                      block_macs(attrs, hw), args)
        rows.append(dict(groups=groups, c0=c0, growth=site.growth, layers=site.layers, hw=hw, **timing,
                         max_abs_diff=err))
    return rows


def bench_convs(groups, args, rng):
    rows = []
    for cut in dense_block_cuts(groups, args.onnx_dir):
        site = cut["site"]
        hw, mid, growth = site.height, site.mid, site.growth
        last = site.in_channels + (site.layers - 1) * site.growth
        for k, cin, cout in [(1, last, mid), (3, mid, growth)]:
            w = rng.normal(0, np.sqrt(2 / (cin // groups * k * k)), (cout, cin // groups, k, k)).astype(
                np.float32
            )
            x = np.maximum(rng.normal(0, 1, (1, cin, hw, hw)), 0).astype(np.float32)
            ours = create_session(grouped_conv_model(w, None, groups, 0), args.threads)
            stock = create_session(conv_model(w, groups), args.threads)
            timing, _ = native_vs_stock(f"G={groups} conv{k}x{k} {cin:4d}->{cout:4d} {hw:3d}", ours, stock, x,
                                        cout * cin // groups * k * k * hw * hw, args)
            rows.append(dict(groups=groups, k=k, cin=cin, cout=cout, hw=hw, **timing))
    return rows


def whole_models(args) -> dict[str, tuple[Path, int]]:
    """name -> (exported file, multiply-adds): MobileNet v1 (fast) first, then each CondenseNet-74
    (native, and fast with --stock-models)."""
    wanted = [("mobilenet_v1", "mobilenet_v1", "fast")]
    for g in args.group_list:
        wanted.append((f"condensenet74_g{g}_native", CONDENSENET.format(g=g), "native"))
        if args.stock_models:
            wanted.append((f"condensenet74_g{g}_stock", CONDENSENET.format(g=g), "fast"))
    out = {}
    for label, name, mode in wanted:
        path, meta, _ = cached_export(name, mode, args.onnx_dir, on_step=print)
        out[label] = (path, int(meta[META + "flops"]))
    return out


def bench_models(models, args):
    variants, macs = {}, {}
    for name, (path, flops) in models.items():
        sess = create_session(str(path), args.threads)
        variants[name], macs[name] = (sess, image_feed(sess)), flops
    t = interleaved(variants, args.rounds, args.iters)
    out = {}
    for name, ts in t.items():
        out[name] = dict(
            ms=med(ts) * 1e3,
            gmacs=macs[name] / med(ts) / 1e9,
            ratio_to_mobilenet=ratio(ts, t["mobilenet_v1"]),
        )
        print(
            f"{name:28s} {out[name]['ms']:7.2f} ms  {out[name]['gmacs']:5.1f} GMAC/s  "
            f"ratio to MobileNet v1 {out[name]['ratio_to_mobilenet']:.3f}",
            flush=True,
        )
    return out


def profile_node_min(path, threads, runs=40) -> float:
    """Sum over the graph's nodes of each node's fastest kernel time (onnxruntime's profiler), in
    seconds: a second, preemption-proof view of a model's cost on a shared machine."""
    import collections
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads, profile_prefix=os.path.join(tmp, "prof"))
        sess = create_session(str(path), threads, options=options)
        feed = image_feed(sess)
        for _ in range(runs):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[e["name"]].append(e["dur"])
    return sum(min(v) for v in per.values()) * 1e-6


def bench_models_profiled(models, args):
    out = {name: profile_node_min(path, args.threads) * 1e3 for name, (path, _) in models.items()
           if not name.endswith("_stock")}
    for name, ms in out.items():
        print(
            f"{name:28s} {ms:7.2f} ms (sum of per-node best)  ratio {ms / out['mobilenet_v1']:.3f}",
            flush=True,
        )
    return {name: dict(ms=ms, ratio_to_mobilenet=ms / out["mobilenet_v1"]) for name, ms in out.items()}


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines, then a blank line."""

    def line(cells: list[str]) -> str:
        return "|" + "".join(f" {c} |" if c else " |" for c in cells)

    return [line(columns), "|" + "---|" * len(columns), *map(line, rows), ""]


def markdown(res) -> str:
    lines = [
        f"# Native kernels benchmark ({res['arch']}, ISA {res['isa']}, {res['threads']} thread(s), "
        f"onnxruntime {res['onnxruntime']})",
        "",
        "Medians over interleaved rounds of each round's best run; ratio = native / stock (per-round "
        "ratios' median); G MAC/s counts useful multiply-adds.",
        "",
    ]
    if "models" in res:
        lines += ["## Whole models (224x224, batch 1)", ""]
        lines += _table(["model", "ms", "G MAC/s", "ratio to MobileNet v1"],
                        [[name, f"{r['ms']:.2f}", f"{r['gmacs']:.1f}", f"{r['ratio_to_mobilenet']:.3f}"]
                         for name, r in res["models"].items()])
    if "models_profiled" in res:
        lines += [
            "Second view, immune to preemption: the sum over each graph's nodes of the node's fastest "
            "kernel time (onnxruntime profiler, 40 runs):",
            "",
        ]
        lines += _table(["model", "ms", "ratio to MobileNet v1"],
                        [[name, f"{r['ms']:.2f}", f"{r['ratio_to_mobilenet']:.3f}"]
                         for name, r in res["models_profiled"].items()])
    timing = ["native ms", "G MAC/s", "stock ms", "G MAC/s", "ratio"]

    def times(r) -> list[str]:
        return [f"{r['native_ms']:.3f}", f"{r['native_gmacs']:.1f}", f"{r['stock_ms']:.3f}",
                f"{r['stock_gmacs']:.1f}", f"{r['ratio']:.3f}"]

    if "blocks" in res:
        lines += ["## Dense blocks: DenseBlock vs stock subgraph", ""]
        table = []
        for g in sorted({r["groups"] for r in res["blocks"]}, reverse=True):
            rows = [r for r in res["blocks"] if r["groups"] == g]
            table += [[str(g), str(r["c0"]), f"{r['growth']} x {r['layers']}", str(r["hw"]), *times(r)]
                      for r in rows]
            n, s, m = (sum(r[k] for r in rows) for k in ("native_ms", "stock_ms", "macs"))
            total = dict(native_ms=n, native_gmacs=m / n / 1e6, stock_ms=s, stock_gmacs=m / s / 1e6,
                         ratio=n / s)
            table.append([str(g), "sum", "", "", *times(total)])
        lines += _table(["C=G", "C0", "growth x layers", "HxW", *timing], table)
    if "convs" in res:
        lines += ["## GroupedConv vs stock Conv (each block's last-layer shapes)", ""]
        table = [[str(r["groups"]), str(r["k"]), f"{r['cin']} -> {r['cout']}", str(r["hw"]), *times(r)]
                 for r in res["convs"]]
        lines += _table(["G", "k", "in -> out", "HxW", *timing], table)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="models,blocks,convs")
    ap.add_argument("--groups", default="8,4")
    ap.add_argument("--stock-models", action="store_true", help="also time the fast CondenseNet-74 exports")
    ap.add_argument("--lib", default=None,
                    help="bench-only library (default: built by scripts/build-kernels.sh --bench)")
    ap.add_argument("--onnx-dir", default=None,
                    help="where the exports are kept and reused (default: the table's cache)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the results")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.group_list = [int(g) for g in args.groups.split(",")]
    lib = args.lib
    if lib is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "build-kernels.sh"), "--bench"], check=True)
        lib = library.bench_library_path()
    os.environ[library.ENV_VAR] = lib  # what create_session registers for our domain
    cl = ctypes.CDLL(lib)
    cl.condense_deploy_isa.restype = ctypes.c_char_p
    arch = platform.machine()
    res = dict(
        arch=arch,
        isa=cl.condense_deploy_isa().decode(),
        threads=args.threads,
        onnxruntime=ort.__version__,
        rounds=args.rounds,
        iters=args.iters,
    )
    rng = np.random.default_rng(0)
    only = args.only.split(",")
    if "models" in only:
        models = whole_models(args)
        res["models"] = bench_models(models, args)
        res["models_profiled"] = bench_models_profiled(models, args)
    if "blocks" in only:
        res["blocks"] = [r for g in args.group_list for r in bench_blocks(g, args, rng)]
    if "convs" in only:
        res["convs"] = [r for g in args.group_list for r in bench_convs(g, args, rng)]
    md = markdown(res)
    print(md)
    if not args.no_write:
        out = Path(args.out) / f"native_kernels_{arch}"
        write_json(out.with_suffix(".json"), res)
        write_text(out.with_suffix(".md"), md + "\n")


if __name__ == "__main__":
    main()
