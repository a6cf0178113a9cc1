"""Benchmark of the native custom ops (csrc/) against stock onnxruntime on CondenseNet-74 shapes.

For each ImageNet dense block of CondenseNet-74 (C=G=8 and C=G=4): DenseBlock against the stock
subgraph (per layer Gather, BatchNormalization, Relu, grouped 1x1 Conv, shuffle Gather, bias, Relu,
grouped 3x3 Conv, Concat), same random weights, checked equal first; GroupedConv against stock Conv on each
block's last-layer 1x1 and 3x3 shapes; and whole random ImageNet-shaped CondenseNet-74 C=G=8 and
C=G=4 models built from DenseBlock (stock stem, transitions and head) against a MobileNet v1.

Runs on the bench-only library (DenseBlock and GroupedConv; ``scripts/build-kernels.sh --bench``, built
first unless --lib names one). Sessions come from runtime.sessions, timing from runtime.timing: one
session per variant, 1 intra-op thread unless --threads; rounds interleave the variants, each round
times --iters runs per variant; the figures are medians over rounds, ratios are per-round ratios'
medians. Writes benchmarks/results/native_kernels_<arch>.json and .md.

    python benchmarks/native_kernels.py [--rounds 15] [--iters 10] [--threads 1] [--only blocks,convs,models]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from condense_deploy.native import library
from condense_deploy.native.contract import (
    DENSE_BLOCK,
    DENSE_BLOCK_INPUTS,
    DOMAIN,
    DOMAIN_VERSION,
    GROUPED_CONV,
)
from condense_deploy.native.op_models import dense_block_model, dense_params
from condense_deploy.runtime.sessions import create_session, session_options
from condense_deploy.runtime.timing import interleaved as timed_rounds

ROOT = Path(__file__).resolve().parents[1]
OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
# CondenseNet-74 ImageNet: (layers, growth, H=W) per block; stem gives 16 channels at 112x112.
BLOCKS = [(4, 8, 112), (6, 16, 56), (8, 32, 28), (10, 64, 14), (8, 128, 7)]


def block_c0s() -> list[int]:
    c, out = 16, []
    for layers, growth, _ in BLOCKS:
        out.append(c)
        c += layers * growth
    return out


def block_macs(c0, growth, layers, groups, hw, mid=None) -> int:
    mid = mid or 4 * growth
    per_pos = 0
    for layer in range(layers):
        kept = c0 + layer * growth  # C = G: kept_l = C_l
        per_pos += mid * kept // groups + growth * (mid // groups) * 9
    return per_pos * hw * hw


# ----------------------------------------------------------------------------------------------
# Models


def _model(nodes, inputs, outputs, inits, domain=False):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=OPSETS if domain else OPSETS[:1], ir_version=8)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


class Names:
    def __init__(self, prefix):
        self.prefix, self.n = prefix, 0

    def __call__(self, what):
        self.n += 1
        return f"{self.prefix}{what}{self.n}"


def stock_block_nodes(p, x, nm, inits):
    """The stock onnxruntime subgraph of one DenseBlock (same parameters); returns (nodes, output)."""
    a = p["attrs"]
    growth, mid, g1, g3 = a["growth"], a["mid"], a["groups_1x1"], a["groups_3x3"]
    nodes, o_k, o_w1 = [], 0, 0
    n3 = growth * (mid // g3) * 9
    for layer, k in enumerate(a["kept"]):

        def init(arr, what):
            name = nm(what)
            inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
            return name

        idx = init(p["index"][o_k : o_k + k], "idx")
        sc = init(p["bn_scale"][o_k : o_k + k], "sc")
        sh = init(p["bn_shift"][o_k : o_k + k], "sh")
        mean = init(np.zeros(k, np.float32), "mean")
        var = init(np.full(k, 1.0 - 1e-5, np.float32), "var")
        w1 = init(p["w1"][o_w1 : o_w1 + mid * (k // g1)].reshape(mid, k // g1, 1, 1), "w1")
        b1 = init(p["b1"][layer * mid : (layer + 1) * mid].reshape(mid, 1, 1), "b1")
        # the channel shuffle the op applies (c[j*d + r] -> s[r*G1 + j]), as the export has it
        shuffle = init(np.arange(mid).reshape(g1, mid // g1).T.reshape(-1).astype(np.int64), "shuffle")
        w3 = init(p["w3"][layer * n3 : (layer + 1) * n3].reshape(growth, mid // g3, 3, 3), "w3")
        names = ("z", "bn", "r", "c", "s", "a", "r", "c", "cat")
        z, bn, r1, c1, sh1, a1, r2, c3, cat = (nm(s) for s in names)
        nodes += [
            helper.make_node("Gather", [x, idx], [z], axis=1),
            helper.make_node("BatchNormalization", [z, sc, sh, mean, var], [bn], epsilon=1e-5),
            helper.make_node("Relu", [bn], [r1]),
            helper.make_node("Conv", [r1, w1], [c1], group=g1, kernel_shape=[1, 1]),
            helper.make_node("Gather", [c1, shuffle], [sh1], axis=1),
            helper.make_node("Add", [sh1, b1], [a1]),
            helper.make_node("Relu", [a1], [r2]),
            helper.make_node("Conv", [r2, w3], [c3], group=g3, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Concat", [x, c3], [cat], axis=1),
        ]
        x = cat
        o_k += k
        o_w1 += mid * (k // g1)
    return nodes, x


def native_block_nodes(p, x, nm, inits):
    names = []
    for key in DENSE_BLOCK_INPUTS[1:]:
        names.append(nm(key))
        inits.append(numpy_helper.from_array(p[key], names[-1]))
    y = nm("dense")
    return [helper.make_node(DENSE_BLOCK, [x, *names], [y], domain=DOMAIN, **p["attrs"])], y


def stock_block_model(p, c0, hw):
    inits = []
    nodes, y = stock_block_nodes(p, "X", Names("s"), inits)
    return _model(nodes, [_vi("X", [1, c0, hw, hw])], [_vi(y, None)], inits)


def conv_model(w, group, custom, relu=False):
    inits = [numpy_helper.from_array(w, "W")]
    k = w.shape[2]
    if custom:
        node = helper.make_node(GROUPED_CONV, ["X", "W"], ["Y"], domain=DOMAIN, group=group, relu=int(relu))
    else:
        node = helper.make_node(
            "Conv", ["X", "W"], ["Y"], group=group, kernel_shape=[k, k], pads=[k // 2] * 4
        )
    return _model([node], [_vi("X", None)], [_vi("Y", None)], inits, domain=custom)


def condensenet_model(groups, rng, native=True):
    """A random ImageNet-shaped CondenseNet-74 (C = G = groups)."""
    inits, nodes = [], []
    nm = Names("m")

    def init(arr):
        name = nm("p")
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=arr.dtype), name))
        return name

    stem = init(rng.normal(0, np.sqrt(2 / 27), (16, 3, 3, 3)).astype(np.float32))
    nodes.append(
        helper.make_node("Conv", ["X", stem], ["stem"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    )
    x, c = "stem", 16
    for b, (layers, growth, _) in enumerate(BLOCKS):
        p = dense_params(rng, c, growth, layers, groups, groups)
        new, x = (native_block_nodes if native else stock_block_nodes)(p, x, nm, inits)
        nodes += new
        c += layers * growth
        if b < len(BLOCKS) - 1:
            y = nm("pool")
            nodes.append(helper.make_node("AveragePool", [x], [y], kernel_shape=[2, 2], strides=[2, 2]))
            x = y
    sc = init(rng.uniform(0.5, 1.5, c).astype(np.float32))
    sh = init(rng.normal(0, 0.1, c).astype(np.float32))
    mean, var = init(np.zeros(c, np.float32)), init(np.ones(c, np.float32))
    keep = init(np.sort(rng.choice(c, c // 2, replace=False)).astype(np.int64))
    fc_w = init(rng.normal(0, 0.01, (1000, c // 2)).astype(np.float32))
    fc_b = init(np.zeros(1000, np.float32))
    shape = init(np.array([1, -1], np.int64))
    nodes += [
        helper.make_node("BatchNormalization", [x, sc, sh, mean, var], ["hbn"]),
        helper.make_node("Relu", ["hbn"], ["hr"]),
        helper.make_node("AveragePool", ["hr"], ["hp"], kernel_shape=[7, 7]),
        helper.make_node("Gather", ["hp", keep], ["hg"], axis=1),
        helper.make_node("Reshape", ["hg", shape], ["hf"]),
        helper.make_node("Gemm", ["hf", fc_w, fc_b], ["logits"], transB=1),
    ]
    return _model(nodes, [_vi("X", [1, 3, 224, 224])], [_vi("logits", None)], inits, domain=native)


def mobilenet_v1_model(rng):
    """MobileNet v1 1.0 / 224 with BN folded into conv biases."""
    inits, nodes = [], []
    nm = Names("mb")

    def conv(x, cin, cout, k, stride, group):
        w = nm("w")
        b = nm("b")
        inits.append(
            numpy_helper.from_array(
                rng.normal(0, np.sqrt(2 / (cin // group * k * k)), (cout, cin // group, k, k)).astype(
                    np.float32
                ),
                w,
            )
        )
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), b))
        y, r = nm("c"), nm("r")
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [y],
                kernel_shape=[k, k],
                strides=[stride] * 2,
                pads=[k // 2] * 4,
                group=group,
            )
        )
        nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    x = conv("X", 3, 32, 3, 2, 1)
    cfg = (
        [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    )
    c = 32
    for cout, s in cfg:
        x = conv(x, c, c, 3, s, c)
        x = conv(x, c, cout, 1, 1, 1)
        c = cout
    fc_w = numpy_helper.from_array(rng.normal(0, 0.01, (1000, 1024)).astype(np.float32), "fcw")
    fc_b = numpy_helper.from_array(np.zeros(1000, np.float32), "fcb")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shp")
    inits += [fc_w, fc_b, shape]
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gp"]),
        helper.make_node("Reshape", ["gp", "shp"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fcw", "fcb"], ["logits"], transB=1),
    ]
    return _model(nodes, [_vi("X", [1, 3, 224, 224])], [_vi("logits", None)], inits)


MOBILENET_MACS = 569_000_000


# ----------------------------------------------------------------------------------------------
# Timing


def make_session(model, lib, threads):
    """The one session factory; it registers the library CONDENSE_DEPLOY_KERNELS names (main sets it
    to the bench-only library) for models of our domain."""
    return create_session(model, threads)


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


# ----------------------------------------------------------------------------------------------


def bench_blocks(lib, groups, args, rng):
    rows = []
    for (layers, growth, hw), c0 in zip(BLOCKS, block_c0s(), strict=True):
        p = dense_params(rng, c0, growth, layers, groups, groups)
        x = rng.normal(0, 1, (1, c0, hw, hw)).astype(np.float32)
        ours = make_session(dense_block_model(p, c0), lib, args.threads)
        stock = make_session(stock_block_model(p, c0, hw), lib, args.threads)
        a, b = ours.run(None, {"X": x})[0], stock.run(None, {"X": x})[0]
        err = float(np.abs(a - b).max())
        assert err < 1e-3, f"block C0={c0}: native and stock differ by {err}"
        t = interleaved({"native": (ours, {"X": x}), "stock": (stock, {"X": x})}, args.rounds, args.iters)
        macs = block_macs(c0, growth, layers, groups, hw)
        rows.append(
            dict(
                groups=groups,
                c0=c0,
                growth=growth,
                layers=layers,
                hw=hw,
                macs=macs,
                native_ms=med(t["native"]) * 1e3,
                stock_ms=med(t["stock"]) * 1e3,
                native_gmacs=macs / med(t["native"]) / 1e9,
                stock_gmacs=macs / med(t["stock"]) / 1e9,
                ratio=ratio(t["native"], t["stock"]),
                max_abs_diff=err,
            )
        )
        print(
            f"G={groups} block C0={c0:4d} {hw:3d}x{hw:<3d}: native {rows[-1]['native_ms']:.3f} ms "
            f"({rows[-1]['native_gmacs']:.1f} GMAC/s), stock {rows[-1]['stock_ms']:.3f} ms "
            f"({rows[-1]['stock_gmacs']:.1f}), ratio {rows[-1]['ratio']:.3f}",
            flush=True,
        )
    return rows


def bench_convs(lib, groups, args, rng):
    rows = []
    for (layers, growth, hw), c0 in zip(BLOCKS, block_c0s(), strict=True):
        mid = 4 * growth
        last = c0 + (layers - 1) * growth
        for k, cin, cout in [(1, last, mid), (3, mid, growth)]:
            w = rng.normal(0, np.sqrt(2 / (cin // groups * k * k)), (cout, cin // groups, k, k)).astype(
                np.float32
            )
            x = np.maximum(rng.normal(0, 1, (1, cin, hw, hw)), 0).astype(np.float32)
            ours = make_session(conv_model(w, groups, True), lib, args.threads)
            stock = make_session(conv_model(w, groups, False), lib, args.threads)
            a, b = ours.run(None, {"X": x})[0], stock.run(None, {"X": x})[0]
            err = float(np.abs(a - b).max())
            assert err < 1e-3, f"conv {cin}->{cout} k{k}: differ by {err}"
            t = interleaved({"native": (ours, {"X": x}), "stock": (stock, {"X": x})}, args.rounds, args.iters)
            macs = cout * cin // groups * k * k * hw * hw
            rows.append(
                dict(
                    groups=groups,
                    k=k,
                    cin=cin,
                    cout=cout,
                    hw=hw,
                    macs=macs,
                    native_ms=med(t["native"]) * 1e3,
                    stock_ms=med(t["stock"]) * 1e3,
                    native_gmacs=macs / med(t["native"]) / 1e9,
                    stock_gmacs=macs / med(t["stock"]) / 1e9,
                    ratio=ratio(t["native"], t["stock"]),
                )
            )
            print(
                f"G={groups} conv{k}x{k} {cin:4d}->{cout:4d} {hw:3d}: native {rows[-1]['native_ms']:.3f} ms "
                f"({rows[-1]['native_gmacs']:.1f}), stock {rows[-1]['stock_ms']:.3f} ms "
                f"({rows[-1]['stock_gmacs']:.1f}), ratio {rows[-1]['ratio']:.3f}",
                flush=True,
            )
    return rows


def bench_models(lib, args, rng):
    x = rng.normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    feed = {"X": x}
    variants = {"mobilenet_v1": (make_session(mobilenet_v1_model(rng), lib, args.threads), feed)}
    macs = {"mobilenet_v1": MOBILENET_MACS}
    for g in (8, 4):
        seed = 100 + g
        native = condensenet_model(g, np.random.default_rng(seed), native=True)
        stock = condensenet_model(g, np.random.default_rng(seed), native=False)
        sn, ss = make_session(native, lib, args.threads), make_session(stock, lib, args.threads)
        err = float(np.abs(sn.run(None, feed)[0] - ss.run(None, feed)[0]).max())
        assert err < 1e-3, f"CondenseNet-74 C=G={g}: native and stock differ by {err}"
        variants[f"condensenet74_g{g}_native"] = (sn, feed)
        if args.stock_models:
            variants[f"condensenet74_g{g}_stock"] = (ss, feed)
        macs[f"condensenet74_g{g}_native"] = macs[f"condensenet74_g{g}_stock"] = (
            sum(block_macs(c0, gr, la, g, hw) for (la, gr, hw), c0 in zip(BLOCKS, block_c0s(), strict=True))
            + 16 * 27 * 112 * 112
            + 1000 * 1032
        )
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


def profile_node_min(model, lib, threads, runs=40) -> float:
    """Sum over the graph's nodes of each node's fastest kernel time (onnxruntime's profiler), in
    seconds: a second, preemption-proof view of a model's cost on a shared machine."""
    import collections
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads, profile_prefix=os.path.join(tmp, "prof"))
        sess = create_session(model, threads, options=options)
        feed = {"X": np.random.default_rng(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)}
        for _ in range(runs):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[e["name"]].append(e["dur"])
    return sum(min(v) for v in per.values()) * 1e-6


def bench_models_profiled(lib, args):
    models = {"mobilenet_v1": mobilenet_v1_model(np.random.default_rng(1))}
    for g in (8, 4):
        models[f"condensenet74_g{g}_native"] = condensenet_model(
            g, np.random.default_rng(100 + g), native=True
        )
    out = {name: profile_node_min(m, lib, args.threads) * 1e3 for name, m in models.items()}
    for name, ms in out.items():
        print(
            f"{name:28s} {ms:7.2f} ms (sum of per-node best)  ratio {ms / out['mobilenet_v1']:.3f}",
            flush=True,
        )
    return {name: dict(ms=ms, ratio_to_mobilenet=ms / out["mobilenet_v1"]) for name, ms in out.items()}


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
        lines += [
            "## Whole models (224x224, batch 1)",
            "",
            "| model | ms | G MAC/s | ratio to MobileNet v1 |",
            "|---|---|---|---|",
        ]
        for name, r in res["models"].items():
            lines.append(f"| {name} | {r['ms']:.2f} | {r['gmacs']:.1f} | {r['ratio_to_mobilenet']:.3f} |")
        lines.append("")
    if "models_profiled" in res:
        lines += [
            "Second view, immune to preemption: the sum over each graph's nodes of the node's fastest "
            "kernel time (onnxruntime profiler, 40 runs):",
            "",
            "| model | ms | ratio to MobileNet v1 |",
            "|---|---|---|",
        ]
        for name, r in res["models_profiled"].items():
            lines.append(f"| {name} | {r['ms']:.2f} | {r['ratio_to_mobilenet']:.3f} |")
        lines.append("")
    if "blocks" in res:
        lines += [
            "## Dense blocks: DenseBlock vs stock subgraph",
            "",
            "| C=G | C0 | growth x layers | HxW | native ms | G MAC/s | stock ms | G MAC/s | ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for g in sorted({r["groups"] for r in res["blocks"]}, reverse=True):
            rows = [r for r in res["blocks"] if r["groups"] == g]
            for r in rows:
                lines.append(
                    f"| {g} | {r['c0']} | {r['growth']} x {r['layers']} | {r['hw']} | {r['native_ms']:.3f} | "
                    f"{r['native_gmacs']:.1f} | {r['stock_ms']:.3f} | {r['stock_gmacs']:.1f} | "
                    f"{r['ratio']:.3f} |"
                )
            n, s, m = (sum(r[k] for r in rows) for k in ("native_ms", "stock_ms", "macs"))
            lines.append(
                f"| {g} | sum | | | {n:.3f} | {m / n / 1e6:.1f} | {s:.3f} | {m / s / 1e6:.1f} | {n / s:.3f} |"
            )
        lines.append("")
    if "convs" in res:
        lines += [
            "## GroupedConv vs stock Conv (each block's last-layer shapes)",
            "",
            "| G | k | in -> out | HxW | native ms | G MAC/s | stock ms | G MAC/s | ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["convs"]:
            lines.append(
                f"| {r['groups']} | {r['k']} | {r['cin']} -> {r['cout']} | {r['hw']} | "
                f"{r['native_ms']:.3f} | {r['native_gmacs']:.1f} | {r['stock_ms']:.3f} | "
                f"{r['stock_gmacs']:.1f} | {r['ratio']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="models,blocks,convs")
    ap.add_argument("--groups", default="8,4")
    ap.add_argument("--stock-models", action="store_true", help="also time the stock CondenseNet-74 graphs")
    ap.add_argument("--lib", default=None,
                    help="bench-only library (default: built by scripts/build-kernels.sh --bench)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
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
    groups = [int(g) for g in args.groups.split(",")]
    if "models" in only:
        res["models"] = bench_models(lib, args, rng)
        res["models_profiled"] = bench_models_profiled(lib, args)
    if "blocks" in only:
        res["blocks"] = [r for g in groups for r in bench_blocks(lib, g, args, rng)]
    if "convs" in only:
        res["convs"] = [r for g in groups for r in bench_convs(lib, g, args, rng)]
    md = markdown(res)
    print(md)
    if not args.no_write:
        out = ROOT / "benchmarks" / "results" / f"native_kernels_{arch}"
        out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
        out.with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    main()
