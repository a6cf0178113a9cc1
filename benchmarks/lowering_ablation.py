"""Lowering ablation: each ONNX rewrite's effect on latency(CondenseNet-74)/latency(MobileNet v1).

The last rows are ``native``: every dense block on our own DenseBlock kernel (csrc/, docs/native-ops.md),
with a per-stage (per dense block) kernel-time profile beside the straight and ``fast`` graphs.
Per-kernel G MAC/s against onnxruntime's Conv on the same shapes: ``benchmarks/native_kernels.py``.

Exports CondenseNet-74 C=G=8 and C=G=4 (converted form, random weights with random BN statistics
and random valid indexes) and MobileNet v1 with ``optimize="none"``, applies the rewrites
cumulatively (and ``tuned``), then times every variant and MobileNet interleaved in one run
(onnxruntime CPU, 1 intra-op thread, batch 1, 224x224, medians), and profiles per op type.

    .venv/bin/python benchmarks/lowering_ablation.py [--rounds 25] [--inner 2] [--out benchmarks/results]
    .venv/bin/python benchmarks/lowering_ablation.py --cifar   # CondenseNet-86: converted vs masked

Writes ``lowering_ablation_<machine>.md`` and ``.json``. Only run it on a real machine: emulated
(qemu) timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from condense_deploy.graph import experimental as X
from condense_deploy.graph import passes as P
from condense_deploy.graph.optimize import optimize_onnx
from condense_deploy.graph.recipes import settings
from condense_deploy.runtime.sessions import create_session, session_options
from condense_deploy.runtime.timing import interleaved, time_models

# fast's settings, from its recipe
DEPTHWISE = settings("fast", "grouped_conv_to_depthwise")
PAD_IN, PAD_OUT = settings("fast", "pad_group_inputs"), settings("fast", "pad_group_outputs")

# cumulative steps: (label, rewrite applied on top of the previous step)
STEPS: list[tuple[str, Any]] = [
    ("none (straight export)", lambda m: m),
    ("+ shuffle_to_gather", P.shuffle_to_gather),
    ("+ fold_bn_into_conv", P.fold_bn_into_conv),
    ("+ relu_before_gather, merge_gathers", lambda m: P.merge_gathers(P.relu_before_gather(m))),
    (f"+ grouped_conv_to_depthwise (<={DEPTHWISE['max_outputs_per_group']} out/group, multiplier 1)",
     lambda m: P.grouped_conv_to_depthwise(m, max_outputs_per_group=DEPTHWISE["max_outputs_per_group"])),
    ("+ depthwise via duplicated 1x1 outputs (instead)", None),  # built from step 3, see below
    (f"+ pad_group_inputs (<={PAD_IN['max_ratio'] - 1:.0%} more)", lambda m: P.pad_group_inputs(m, **PAD_IN)),
    (f"+ pad_group_outputs (<={PAD_OUT['max_ratio']:g}x) = fast",
     lambda m: P.pad_group_outputs(m, **PAD_OUT)),
]
DUPLICATED, FAST = STEPS[5][0], STEPS[-1][0]


def _fast_with_dense_lgc(built: dict[str, onnx.ModelProto]) -> onnx.ModelProto:
    """fast with lgc_as_dense_conv inserted before the padding (padded slots carry neutral BN)."""
    dense = X.lgc_as_dense_conv(built[DUPLICATED])
    return P.pad_group_outputs(P.pad_group_inputs(dense, **PAD_IN), **PAD_OUT)


NATIVE = "native (every dense block one DenseBlock op of our kernels)"

# measured beside fast, each on its own (not cumulative)
ALTERNATIVES: list[tuple[str, Any]] = [
    ("fast + bn_to_depthwise_conv", lambda built: X.bn_to_depthwise_conv(built[FAST])),
    (f"fast + lgc_as_dense_conv (<={X.DENSE_LGC_MAX_INPUTS} inputs)", _fast_with_dense_lgc),
    (NATIVE, lambda built: optimize_onnx(built[STEPS[0][0]], "native")[0]),
]


def _randomize(model: Any, seed: int = 0) -> None:
    import torch
    from torch import nn

    from condense_deploy.architectures.layers import CondenseConv, CondenseLinear

    gen = torch.Generator().manual_seed(seed)
    cfg = getattr(model, "cfg", None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
            elif isinstance(m, CondenseConv):
                source = m.in_channels * cfg.condense_factor // cfg.group_1x1
                per = m.in_channels // m.groups
                m.index.copy_(torch.cat([torch.randperm(source, generator=gen)[:per].sort().values
                                         for _ in range(m.groups)]))
            elif isinstance(m, CondenseLinear):
                m.index.copy_(torch.randperm(cfg.num_features, generator=gen)[:m.in_features].sort().values)
        for m in model.modules():  # as conversion does: a layer's BN is its source channels' BN, gathered
            if isinstance(m, CondenseConv):
                norm = m.norm
                for tensor in (norm.weight, norm.bias, norm.running_mean, norm.running_var):
                    per_source = torch.zeros(int(m.index.max()) + 1)
                    per_source[m.index] = tensor.clone()
                    tensor.copy_(per_source[m.index])


def export_models(folder: Path) -> dict[str, onnx.ModelProto]:
    from condense_deploy.architectures.registry import create_model
    from condense_deploy.export import export_onnx

    models = {}
    for name in ("condensenet74_c8g8", "condensenet74_c4g4", "mobilenet_v1"):
        if name.startswith("condense"):
            model = create_model(name, converted=True)
            _randomize(model)  # random BN statistics and index lists, so every rewrite is really exercised
        else:
            # MobileNet is only the reference: its BNs fold away in onnxruntime whatever their values,
            # and random statistics through 27 layers grow logits until float32 alone misses 1e-4.
            model = create_model(name)
        path = folder / f"{name}.onnx"
        export_onnx(model.eval(), path, input_size=(3, 224, 224), optimize="none", force=True)
        models[name] = onnx.load(str(path))
    return models


def variants(model: onnx.ModelProto, tune: bool) -> dict[str, onnx.ModelProto]:
    out: dict[str, onnx.ModelProto] = {}
    current = model
    after_merge = None
    for label, rewrite in STEPS:
        if rewrite is None:
            out[label] = P.grouped_conv_to_depthwise(after_merge, **DEPTHWISE)
            current = out[label]
            continue
        current = rewrite(current)
        out[label] = current
        if label.startswith("+ relu_before_gather"):
            after_merge = current
    for label, build in ALTERNATIVES:
        out[label] = build(out)
    if tune:
        out["tuned"] = optimize_onnx(model, "tuned")[0]
    return out


def profile(model: onnx.ModelProto, runs: int = 10) -> tuple[dict[str, float], dict[str, float]]:
    """(ms per run by op type, ms per run by stage) from onnxruntime's profiler, kernel time only.

    A stage is a dense block (``dense_block_<k>`` native nodes, or nodes named after
    ``denseblock_<k>`` by the exporter); everything else is "stem, transitions, classifier"."""
    from condense_deploy.runtime.bench import roll_up_profile

    with tempfile.TemporaryDirectory() as tmp:
        session = create_session(model, 1, profile_prefix=str(Path(tmp) / "p"))
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        for _ in range(3 + runs):
            session.run(None, {session.get_inputs()[0].name: x})
        trace = session.end_profiling()
        rolled = roll_up_profile(trace, last_runs=runs)
        stages = _per_stage(json.loads(Path(trace).read_text()), runs)
    return {op: v["ms_per_run"] for op, v in rolled.items()}, stages


def _per_stage(events: list[dict[str, Any]], runs: int) -> dict[str, float]:
    import re

    windows = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events
                     if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
    totals: dict[str, float] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if not any(lo <= float(event.get("ts", 0)) <= hi for lo, hi in windows):
            continue
        found = re.search(r"dense_?block_(\d+)", name)
        stage = f"dense block {found.group(1)}" if found else "stem, transitions, classifier"
        totals[stage] = totals.get(stage, 0.0) + float(event.get("dur", 0)) / 1e3 / max(len(windows), 1)
    return {k: round(v, 4) for k, v in sorted(totals.items())}


def cifar_comparison(rounds: int, inner: int, out: Path) -> None:
    """CondenseNet-86 (CIFAR-10, 32x32): unconverted (masked dense 1x1 convs) vs converted, straight
    and optimized exports, at 1 and 2 threads: does the conversion itself pay off?"""
    import torch

    from condense_deploy.architectures.registry import create_model
    from condense_deploy.export import export_onnx

    torch.manual_seed(0)
    trained = create_model("condensenet86_cifar")
    trained.condense(1.0)  # final stage: masks prune 1 - 1/C of every learned group conv
    converted = create_model("condensenet86_cifar", converted=True)
    _randomize(converted)
    models: dict[str, onnx.ModelProto] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in (("unconverted (masked)", trained), ("converted", converted)):
            path = Path(tmp) / "m.onnx"
            export_onnx(model.eval(), path, input_size=(3, 32, 32), optimize="none", force=True)
            models[f"{label}, straight export"] = onnx.load(str(path))
    models["converted, fast"] = optimize_onnx(models["converted, straight export"], "fast")[0]
    models["unconverted (masked), fast"] = optimize_onnx(models["unconverted (masked), straight export"],
                                                         "fast")[0]
    models["converted, native"] = optimize_onnx(models["converted, straight export"], "native")[0]
    result: dict[str, Any] = {"command": "python benchmarks/lowering_ablation.py --cifar " + " ".join(
        a for a in sys.argv[1:] if a != "--cifar"), "machine": platform.machine(), "ms": {}}
    for threads in (1, 2):
        times = time_models(list(models.values()), threads=threads, rounds=rounds, inner=inner * 5)
        result["ms"][str(threads)] = dict(zip(models, times, strict=True))
    lines = [f"# CondenseNet-86 (CIFAR-10, 32x32): conversion pays off? ({result['machine']})", "",
             f"`{result['command'].strip()}`; batch 1, {rounds} interleaved rounds, medians (ms); "
             "random weights; the unconverted model is the training form at its final condensing "
             "stage (pruned weights masked to zero, dense 1x1 convs).", "",
             "| export | 1 thread | 2 threads |", "|---|---|---|"]
    for label in models:
        lines.append(f"| {label} | {result['ms']['1'][label]:.2f} | {result['ms']['2'][label]:.2f} |")
    from condense_deploy._fsutil import write_json, write_text

    write_json(out / f"lowering_ablation_cifar_{result['machine']}.json", result)
    write_text(out / f"lowering_ablation_cifar_{result['machine']}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--inner", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="whole interleaved runs (to see spread)")
    parser.add_argument("--no-tuned", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--cifar", action="store_true",
                        help="only the CIFAR CondenseNet-86 converted vs unconverted comparison")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the .md from a saved .json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        labels = [key.split("|", 1)[1] for key in saved["runs"][0] if key.startswith("condensenet74_c8g8|")]
        from condense_deploy._fsutil import write_text

        write_text(Path(args.render).with_suffix(".md"), render(saved, labels))
        return
    if args.cifar:
        cifar_comparison(args.rounds, args.inner, Path(args.out))
        return
    machine = platform.machine()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        base = export_models(Path(tmp))
    mobilenet = base.pop("mobilenet_v1")
    table: dict[str, dict[str, onnx.ModelProto]] = {}
    for name, model in base.items():
        print(f"building variants of {name}", file=sys.stderr)
        table[name] = variants(model, not args.no_tuned)
    labels = list(next(iter(table.values())))
    flat = [("mobilenet_v1", "-", mobilenet)] + [(n, lab, table[n][lab]) for lab in labels for n in table]
    runs = []
    for repeat in range(args.repeats):
        print(f"timing run {repeat + 1}/{args.repeats}: {len(flat)} models interleaved", file=sys.stderr)
        times = time_models([m for _, _, m in flat], threads=1, rounds=args.rounds, inner=args.inner)
        runs.append({f"{n}|{lab}": t for (n, lab, _), t in zip(flat, times, strict=True)})
    # denormals-as-zero session option on the fast models, interleaved with the defaults
    fast = FAST
    print("timing session options", file=sys.stderr)
    import onnxruntime as ort

    def timed_with(options_list: list[Any], models: list[onnx.ModelProto]) -> list[float]:
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        sessions = [create_session(m, options=o) for m, o in zip(models, options_list, strict=True)]
        feeds = [{s.get_inputs()[0].name: x} for s in sessions]
        for s, f in zip(sessions, feeds, strict=True):
            s.run(None, f)
        calls = [lambda s=s, f=f: s.run(None, f) for s, f in zip(sessions, feeds, strict=True)]
        samples = interleaved(calls, rounds=args.rounds, inner=args.inner)
        return [float(np.median(v)) for v in samples]

    c8 = table["condensenet74_c8g8"][fast]
    opts = [session_options(1), session_options(1, denormal_as_zero=True), session_options(1, spinning=False)]
    session_times = timed_with(opts + [session_options(1)], [c8, c8, c8, mobilenet])
    profiles, stages = {}, {}
    profiles["mobilenet_v1"], _ = profile(mobilenet)
    for name in table:
        for lab in ("none (straight export)", fast, "tuned", NATIVE):
            if lab in table[name]:
                profiles[f"{name}|{lab}"], stages[f"{name}|{lab}"] = profile(table[name][lab])
    tuned_choices, tuned_whole = {}, {}
    for name in base:
        if "tuned" in table[name]:
            meta = {p.key: p.value for p in table[name]["tuned"].metadata_props}
            report = json.loads(meta["condense_deploy.optimize"])
            choices = report["choices"]
            tuned_whole[name] = report.get("whole_model")
            forms: dict[str, int] = {}
            for c in choices.values():
                forms[c["form"]] = forms.get(c["form"], 0) + 1
            tuned_choices[name] = forms
    result = {
        "command": "python benchmarks/lowering_ablation.py " + " ".join(sys.argv[1:]),
        "machine": machine, "processor": platform.processor(), "onnxruntime": ort.__version__,
        "settings": {"threads": 1, "batch": 1, "size": 224, "rounds": args.rounds, "inner": args.inner,
                     "statistic": "median", "interleaved": True},
        "runs": runs, "session_options_ms": dict(zip(
            ["default", "denormal_as_zero", "spinning_off", "mobilenet_v1"], session_times, strict=True)),
        "profiles_ms": profiles, "stages_ms": stages, "tuned_forms": tuned_choices,
        "tuned_whole_model": tuned_whole,
        "seconds": round(time.time() - started, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from condense_deploy._fsutil import write_json, write_text

    write_json(out / f"lowering_ablation_{machine}.json", result)
    write_text(out / f"lowering_ablation_{machine}.md", render(result, labels))
    print(render(result, labels))


def render(result: dict[str, Any], labels: list[str]) -> str:
    lines = [f"# Lowering ablation ({result['machine']}, onnxruntime {result['onnxruntime']})", "",
             "Measured by `" + result["command"].strip() + "`: 1 intra-op thread, batch 1, 224x224, "
             f"{result['settings']['rounds']} interleaved rounds per run (all variants and MobileNet v1 "
             "in one loop), medians; random weights with random BN statistics. Ratios are "
             "latency(variant) / latency(MobileNet v1) of the same run; one column per repeated run.", ""]
    head = "| step (cumulative) | " + " | ".join(
        f"C=G=8 / MNv1 (run {i + 1}) | C=G=4 / MNv1 (run {i + 1})" for i in range(len(result["runs"]))) + " |"
    lines += [head, "|---" * (1 + 2 * len(result["runs"])) + "|"]
    for lab in labels:
        cells = []
        for run in result["runs"]:
            mn = run["mobilenet_v1|-"]
            for name in ("condensenet74_c8g8", "condensenet74_c4g4"):
                key = f"{name}|{lab}"
                cells.append(f"{run[key] / mn:.2f} ({run[key]:.1f} ms)" if key in run else "-")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines += ["", "MobileNet v1 median per run: " + ", ".join(
        f"{run['mobilenet_v1|-']:.1f} ms" for run in result["runs"]), ""]
    s = result["session_options_ms"]
    lines += ["Session options on the `fast` C=G=8 model (same run, medians): "
              f"default {s['default']:.1f} ms, denormal-as-zero {s['denormal_as_zero']:.1f} ms, "
              f"spinning off {s['spinning_off']:.1f} ms (MobileNet v1 {s['mobilenet_v1']:.1f} ms).", ""]
    if result["tuned_forms"]:
        lines += ["Tuned choices (grouped convs per form): " + "; ".join(
            f"{n}: " + ", ".join(f"{k} {v}" for k, v in sorted(f.items()))
            for n, f in result["tuned_forms"].items()), ""]
    whole = {n: w for n, w in result.get("tuned_whole_model", {}).items() if w}
    if whole:
        lines += ["Tuned keeps its per-conv choices only when the whole model beats `fast` (timed at "
                  "optimize time): " + "; ".join(
                      f"{n}: kept {w['kept']} (tuned {w['tuned_ms']:.1f} ms, fast {w['fast_ms']:.1f} ms)"
                      for n, w in whole.items()), ""]
    lines += ["## Per-op-type profile (ms per run, onnxruntime profiler, kernel time)", ""]
    names = list(result["profiles_ms"])
    ops = sorted({op for p in result["profiles_ms"].values() for op in p},
                 key=lambda op: -max(p.get(op, 0) for p in result["profiles_ms"].values()))
    lines += ["| op | " + " | ".join(n.replace("|", ": ") for n in names) + " |",
              "|---" * (1 + len(names)) + "|"]
    for op in ops:
        lines.append(f"| {op} | " + " | ".join(
            f"{result['profiles_ms'][n].get(op, 0):.2f}" for n in names) + " |")
    lines.append("| **total** | " + " | ".join(
        f"**{sum(result['profiles_ms'][n].values()):.2f}**" for n in names) + " |")
    stages = result.get("stages_ms", {})
    if stages:
        lines += ["", "## Per-stage kernel time (ms per run, onnxruntime profiler)", ""]
        names = list(stages)
        rows = sorted({k for v in stages.values() for k in v})
        lines += ["| stage | " + " | ".join(n.replace("|", ": ") for n in names) + " |",
                  "|---" * (1 + len(names)) + "|"]
        for row in rows:
            lines.append(f"| {row} | " + " | ".join(f"{stages[n].get(row, 0):.2f}" for n in names) + " |")
    lines += ["", f"Whole run took {result['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
