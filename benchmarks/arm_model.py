"""An ARM cost model without a board: modeled cycles per inference of CondenseNet-74 (native exports)
and MobileNet v1 on a Cortex-A72 (Pi 4) or a Neoverse-N1 (the Cortex-A76 / Pi 5 stand-in).

    .venv/bin/python benchmarks/arm_model.py --core cortex-a72|neoverse-n1 [--models a,b] [--runs 2]
        [--warmup 1] [--out benchmarks/results] [--force] [--quick]
    .venv/bin/python benchmarks/arm_model.py --calibrate-x86 [--force]

How: each model runs whole inferences (batch 1, 224x224, 1 intra-op thread, the session
``condense-deploy bench`` makes) under Debian's dynamic ``qemu-aarch64`` in the emulated aarch64
userland of scripts/aarch64-env.sh (aarch64 onnxruntime wheel, the native kernels cross-compiled),
with the TCG plugin csrc/tools/tb_profile.c loaded. The guest makes the session and runs the
warm-up inferences, then sends a start marker, runs ``--runs`` inferences and sends a stop marker;
the plugin writes every translation block executed in between with its execution count. Session
creation and warm-up are therefore not counted. benchmarks/mca_model.py turns the blocks into
cycles with llvm-mca (LLVM 19) for the named core. Figures are per inference.

Modeled, not measured: llvm-mca models the core's pipeline on each block run back to back, with
every load hitting L1. Caches, memory bandwidth, TLBs, branch mispredictions, frequency and the
interaction between consecutive blocks are ignored. Exports use random weights (speed does not
depend on them). ``--calibrate-x86`` runs the same method on x86 (qemu-x86_64 -cpu Haswell, the AVX2
kernels, llvm-mca for this machine's core) next to the time measured natively here (the AVX2
kernels forced with CONDENSE_DEPLOY_ISA=avx2), to show how far modeled ratios sit from measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from mca_model import ModelError, analyse, read_maps, read_window, summarize, tool

PROJECT = Path(__file__).resolve().parents[1]
AARCH64_ENV = PROJECT / "scripts" / "aarch64-env.sh"
PLUGIN = PROJECT / "build" / "tools" / "libtb_profile.so"
RESULTS = Path(__file__).resolve().parent / "results"

# --core -> (QEMU_CPU, llvm-mca -mcpu, fp32 MACs per cycle of the core as llvm-mca models it)
CORES = {
    "cortex-a72": ("cortex-a72", "cortex-a72", 4),   # A57 model: one 128-bit FMLA fills both FP pipes
    "neoverse-n1": ("neoverse-n1", "neoverse-n1", 8),  # two 128-bit FMLA per cycle
}
# --core -> fp16 MACs per cycle (two 128-bit FMLA .8h per cycle), or why the core runs no fp16 rows
FP16_PEAK: dict[str, int | str] = {
    "cortex-a72": "the Cortex-A72 (ARMv8.0) has no FP16 arithmetic: the fp16 exports are refused there",
    "neoverse-n1": 16,
}
X86_QEMU_CPU = "Haswell"  # AVX2 + FMA, which qemu 7.2's TCG runs; no AVX-512
REFERENCE = "mobilenet_v1"
# model key -> (zoo name, export optimize mode, DenseBlock precision)
MODELS = {
    "mobilenet_v1": ("mobilenet_v1", "fast", "fp32"),
    "condensenet74_c8g8": ("condensenet74_c8g8", "native", "fp32"),
    "condensenet74_c4g4": ("condensenet74_c4g4", "native", "fp32"),
    "condensenet74_c8g8_fp16": ("condensenet74_c8g8", "native", "fp16"),
    "condensenet74_c4g4_fp16": ("condensenet74_c4g4", "native", "fp16"),
}
# the fp16 target: C=G=8 fp16 on neoverse-n1 <= 0.40 x MobileNet v1 fp32 (modeled)
FP16_TARGET = ("condensenet74_c8g8_fp16", 0.40)
MARK_SYSCALL = 0x4D43  # csrc/tools/tb_profile.c's marker
OPS_LIBRARY = "libcondense_deploy"  # the native kernels' shared library (file name prefix)

# Runs in the guest (aarch64 or x86 under qemu): the session bench measures, warm-up, then the
# counted window between the plugin's markers, then the guest's own view of its mappings.
_DRIVER = textwrap.dedent(f"""
    import ctypes, json, sys
    from pathlib import Path
    import numpy as np
    from condense_deploy.runtime.bench import BenchSettings, _open_session, _session_options
    model, warmup, runs, maps_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    session = _open_session(Path(model), _session_options(BenchSettings(), 1))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    feed = {{session.get_inputs()[0].name: x}}
    for _ in range(warmup):
        session.run(None, feed)
    libc = ctypes.CDLL(None)
    libc.syscall({MARK_SYSCALL}, 1)
    for _ in range(runs):
        session.run(None, feed)
    libc.syscall({MARK_SYSCALL}, 2)
    Path(maps_out).write_text(Path("/proc/self/maps").read_text())
    print(json.dumps({{"done": runs}}))
""")


def fail(message: str, code: int = 1) -> None:
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)


def build_plugin() -> None:
    """The plugin comes from the project's build: `make tools` (CMake, csrc/tools)."""
    done = subprocess.run(["make", "-s", "-C", str(PROJECT), "tools"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not PLUGIN.exists():
        raise ModelError(f"building the qemu plugin failed: {(done.stderr or done.stdout).strip()[-400:]}")


def export_models(names: list[str]) -> dict[str, Path]:
    """The zoo exports (random weights), cached where the inference table keeps them."""
    from condense_deploy.graph.metadata import PRECISION_KEY
    from condense_deploy.pipeline import export_source
    from condense_deploy.table import _reusable, default_onnx_dir

    folder = default_onnx_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in names:
        zoo, mode, precision = MODELS[key]
        path = folder / (f"{zoo}.{mode}.onnx" if precision == "fp32" else f"{zoo}.{mode}-{precision}.onnx")
        meta = _reusable(path, zoo, mode)
        if meta is None or meta.get(PRECISION_KEY, "fp32") != precision:
            print(f"arm_model: exporting {zoo} ({mode}, {precision})", file=sys.stderr)
            export_source(zoo, path, optimize=mode, force=True, precision=precision)
        paths[key] = path
    return paths


def aarch64_root() -> Path:
    done = subprocess.run(["bash", str(AARCH64_ENV), "setup"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise ModelError(f"scripts/aarch64-env.sh setup failed: {tail[0]}")
    return Path(done.stdout.strip().splitlines()[-1])


def profile(model: Path, work: Path, *, arch: str, qemu_cpu: str, warmup: int,
            runs: int) -> tuple[Path, Path]:
    """One guest process: the window's blocks and the guest's maps."""
    driver = work / "driver.py"
    driver.write_text(_DRIVER)
    blocks, maps = work / f"{model.stem}.blocks", work / f"{model.stem}.maps"
    plugin = f"{PLUGIN},out={blocks}"
    args = [str(driver), str(model), str(warmup), str(runs), str(maps)]
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    if arch == "aarch64":
        env.update(AARCH64_QEMU="qemu-aarch64", QEMU_CPU=qemu_cpu, QEMU_PLUGIN=plugin)
        command = ["bash", str(AARCH64_ENV), "run", *args]
    else:
        env.update(CONDENSE_DEPLOY_ISA="avx2")
        command = [shutil.which("qemu-x86_64") or "qemu-x86_64", "-cpu", qemu_cpu, "-plugin", plugin,
                   sys.executable, *args]
    # no address randomization (inherited by qemu): the same guest addresses run to run, so allocator
    # and hashing paths repeat too
    if shutil.which("setarch"):
        command = ["setarch", platform.machine(), "-R", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not blocks.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ModelError(f"the emulated run of {model.name} failed (exit {done.returncode}): {tail}")
    return blocks, maps


def model_one(key: str, model: Path, *, arch: str, qemu_cpu: str, mcpu: str, warmup: int, runs: int,
              coverage: float, roots: list[Path]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="arm_model_") as tmp:
        started = time.time()
        blocks, maps = profile(model, Path(tmp), arch=arch, qemu_cpu=qemu_cpu, warmup=warmup, runs=runs)
        emulated = time.time() - started
        analysis = analyse(read_window(blocks), read_maps(maps), roots, arch, mcpu, coverage=coverage)
    row = summarize(analysis, runs)
    row["mcpu"] = analysis.mcpu
    row["seconds"] = {"emulation": round(emulated, 1), "analysis": round(time.time() - started - emulated, 1)}
    print(f"arm_model: {key}: {row['instructions'] / 1e6:.1f} M instructions, {row['cycles'] / 1e6:.1f} M "
          f"cycles per inference ({row['seconds']['emulation']} s emulated)", file=sys.stderr)
    return row


def dense_block_peak(row: dict[str, Any], key: str, path: Path, macs_per_cycle: int) -> dict[str, Any] | None:
    """Useful MACs of the DenseBlock ops over the cycles spent in the native kernels' library (for
    MobileNet v1, the reference: its MACs, from the export's metadata, over the whole model's cycles)."""
    if key == REFERENCE:
        import onnx

        from condense_deploy.graph.metadata import META

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        macs = int(meta[META + "flops"])
        return {"useful_macs": macs, "cycles": row["cycles"], "instructions": row["instructions"],
                "instructions_per_mac": round(row["instructions"] / macs, 3),
                "percent_of_peak": round(100 * macs / (row["cycles"] * macs_per_cycle), 1)}
    if not key.startswith("condensenet74_c"):
        return None
    from native_kernels import dense_block_useful_macs

    macs = dense_block_useful_macs(int(key.split("_c")[1].split("g")[0]))
    lib = next((v for k, v in row["by_file"].items() if k.startswith(OPS_LIBRARY)), None)
    if lib is None:
        return None
    return {"useful_macs": macs, "cycles": lib["cycles"], "instructions": lib["instructions"],
            "instructions_per_mac": round(lib["instructions"] / macs, 3),
            "percent_of_peak": round(100 * macs / (lib["cycles"] * macs_per_cycle), 1)}


def run_models(keys: list[str], *, arch: str, qemu_cpu: str, mcpu: str, macs_per_cycle: int, warmup: int,
               runs: int, coverage: float, roots: list[Path], fp16_macs_per_cycle: int = 0) -> dict[str, Any]:
    """Every model of ``keys``; an fp16 row's blocks are held against ``fp16_macs_per_cycle``."""
    paths = export_models(keys)
    rows: dict[str, Any] = {}
    for key in keys:
        rows[key] = model_one(key, paths[key], arch=arch, qemu_cpu=qemu_cpu, mcpu=mcpu, warmup=warmup,
                              runs=runs, coverage=coverage, roots=roots)
        fp16 = MODELS[key][2] == "fp16"
        peak = dense_block_peak(rows[key], key, paths[key], fp16_macs_per_cycle if fp16 else macs_per_cycle)
        if peak:
            peak["precision"] = MODELS[key][2]
            peak["peak_macs_per_cycle"] = fp16_macs_per_cycle if fp16 else macs_per_cycle
        if peak:
            rows[key]["whole_model" if key == REFERENCE else "dense_blocks"] = peak
    ref = rows.get(REFERENCE)
    for row in rows.values():
        row["ratio"] = round(row["cycles"] / ref["cycles"], 3) if ref else None
    # the three keys every consumer reads first
    return {k: {"instructions": r["instructions"], "cycles": r["cycles"], "ratio": r["ratio"],
                **{x: y for x, y in r.items() if x not in ("instructions", "cycles", "ratio")}}
            for k, r in rows.items()}


def measured_x86(keys: list[str], runs: int) -> dict[str, Any]:
    """Native time here, the AVX2 kernels forced, interleaved with medians (the project's bench)."""
    from condense_deploy.runtime.bench import BenchSettings, run_bench

    paths = export_models(keys)
    os.environ["CONDENSE_DEPLOY_ISA"] = "avx2"
    settings = BenchSettings(threads=[1], batch=1, warmup=3, runs=runs)
    report = run_bench([paths[k] for k in keys], settings).to_dict()
    by_path = {str(paths[k]): k for k in keys}
    return {by_path[r["path"]]: {"p50_ms": r["latency_p50_ms"], "ratio": r["paired_ratio_to_first"]}
            for r in report["results"]}


def versions(qemu: str = "qemu-aarch64") -> dict[str, str]:
    def first(cmd: list[str]) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = (done.stdout or done.stderr).strip().splitlines()
        return next((ln.strip() for ln in lines if "version" in ln.lower()), lines[0] if lines else "?")

    return {"qemu": first([qemu, "--version"]), "llvm_mca": first([tool("llvm-mca"), "--version"])}


IGNORED = [
    "caches and memory: every load and store is modeled as an L1 hit (no misses, no bandwidth limit, no TLB)",
    "branch prediction: no mispredictions",
    "frequency: cycles, not time (a Pi 4 runs at 1.5-1.8 GHz, a Pi 5 at 2.4 GHz)",
    "block boundaries: each executed translation block is modeled as if run back to back with itself; "
    "overlap between different consecutive blocks is ignored, except where qemu split straight-line code "
    "at a 4 KB page boundary (a block without a final branch ending where the next page's block begins, "
    "both run equally often): those are joined into one block first, so the figure does not move with "
    "code layout",
    "the A76 is modeled by LLVM 19's Neoverse-N1 model (its cortex-a76 entry reuses the A57 model)",
]


def write_report(result: dict[str, Any], out: Path, slug: str, force: bool) -> None:
    from condense_deploy._fsutil import write_json, write_text

    json_path, md_path = out / f"{slug}.json", out / f"{slug}.md"
    for p in (json_path, md_path):
        if p.exists() and not force:
            fail(f"{p} exists (use --force to overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    write_json(json_path, result)
    write_text(md_path, render(result))
    print(render(result))


def render(result: dict[str, Any]) -> str:
    models = result["models"]
    lines = [f"# {result['title']}", "",
             "**Modeled, not measured.** " + result["method"], "",
             f"`{result['command']}` ({result['tools']['qemu']}; {result['tools']['llvm_mca']}, "
             f"-mcpu={result['mcpu']}; {result['runs']} inference(s) counted after {result['warmup']} "
             "warm-up).", "",
             "| model | instructions / inference | modeled cycles / inference | IPC "
             "| ratio to MobileNet v1 |",
             "|---|---|---|---|---|"]
    for key, row in models.items():
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
        lines.append(f"| {key} | {row['instructions'] / 1e6:.1f} M | {row['cycles'] / 1e6:.1f} M | "
                     f"{row['ipc']:.2f} | {ratio} |")
    blocks = {f"{k}, DenseBlock kernels": r["dense_blocks"] for k, r in models.items() if "dense_blocks" in r}
    blocks.update({f"{k}, whole model (reference)": r["whole_model"] for k, r in models.items()
                   if "whole_model" in r})
    if blocks:
        fp16_peak = result.get("fp16_macs_per_cycle")
        fp16_text = f", {fp16_peak} fp16 MACs per cycle for the fp16 rows" if fp16_peak else ""
        lines += ["", f"Useful MACs / (cycles x {result['macs_per_cycle']} fp32 MAC per cycle{fp16_text}, "
                  "the modeled peak); the DenseBlock kernels are all of libcondense_deploy_ops.so:", "",
                  "| what | useful MACs | cycles | instructions per MAC | peak MACs / cycle "
                  "| % of modeled peak |",
                  "|---|---|---|---|---|---|"]
        for key, b in blocks.items():
            peak = b.get("peak_macs_per_cycle", result["macs_per_cycle"])
            lines.append(f"| {key} | {b['useful_macs'] / 1e6:.0f} M | {b['cycles'] / 1e6:.1f} M | "
                         f"{b['instructions_per_mac']:.3f} | {peak} | {b['percent_of_peak']:.0f} |")
    if result.get("fp16_skipped"):
        lines += ["", f"fp16 rows skipped: {result['fp16_skipped']}."]
    target_key, target = FP16_TARGET
    if target_key in models and models[target_key]["ratio"] is not None:
        ratio = models[target_key]["ratio"]
        lines += ["", f"fp16 target (C=G=8 fp16 on neoverse-n1 <= {target:.2f} x MobileNet v1 fp32, "
                  f"modeled): {ratio:.3f}, {'met' if ratio <= target else 'not met'}."]
    fmla_rate = fmla_per_cycle(result["macs_per_cycle"])
    for key, row in models.items():
        lines += _kernel_tables(key, row, fmla_rate)
    lines += ["", "What llvm-mca could not take (share of executed instructions):", "",
              "| model | outside the modeled blocks | not decoded | rejected by llvm-mca |",
              "|---|---|---|---|"]
    for key, row in models.items():
        lines.append(f"| {key} | {100 * (1 - row['modeled_share_of_instructions']):.2f} % | "
                     f"{100 * row['undecoded_share_of_instructions']:.3f} % | "
                     f"{100 * row['rejected_by_mca_share_of_instructions']:.3f} % |")
    lines += ["", "Blocks outside the modeled set are charged the modeled blocks' cycles per instruction; "
              "undecoded and rejected instructions 1 cycle each.", "",
              "Where the cycles go (share of each model's cycles, by file):", ""]
    for key, row in models.items():
        parts = [f"{name} {100 * v['share_of_cycles']:.1f} %" for name, v in list(row["by_file"].items())[:5]]
        lines.append(f"- {key}: " + ", ".join(parts))
    if "calibration" in result:
        cal = result["calibration"]
        lines += ["", "Calibration of the method on x86 (" + cal["summary"] + "):", "",
                  "| model | modeled ratio | measured ratio |", "|---|---|---|"]
        for key, c in cal["models"].items():
            lines.append(f"| {key} | {c['modeled_ratio']:.3f} | {c['measured_ratio']:.3f} |")
        if "c4g4_over_c8g8" in cal:
            rel = cal["c4g4_over_c8g8"]
            lines.append(f"| C=G=4 / C=G=8 (our kernels on both sides) | {rel['modeled']:.3f} | "
                         f"{rel['measured']:.3f} |")
    lines += ["", "The model ignores:", ""] + [f"- {x}" for x in IGNORED]
    lines += ["", f"Whole run took {result['seconds']} s.", ""]
    return "\n".join(lines)


def fmla_per_cycle(macs_per_cycle: int) -> int:
    """128-bit FMLA per cycle of the modeled core (4 fp32 or 8 fp16 MACs each): 1 on the A72 model,
    2 on Neoverse-N1."""
    return max(1, macs_per_cycle // 4)


def _bound_cells(v: dict[str, Any], fmla_rate: int) -> str:
    bound = v.get("fmla", 0) / fmla_rate
    over = v["cycles"] - bound
    return f"{bound / 1e6:.1f} M | {over / 1e6:.1f} M ({100 * over / v['cycles']:.0f} %)"


def _kernel_tables(key: str, row: dict[str, Any], fmla_rate: int, top: int = 8) -> list[str]:
    """The hottest kernel functions, then the largest losses over their FMLA bound (executed vector
    FMLA / FMLA per cycle), for one model; nothing when the kernels' library did not run."""
    ours = [(name.split(": ", 1)[1], v) for name, v in row["by_symbol"].items()
            if name.startswith(OPS_LIBRARY)]
    if not ours:
        return []
    counted = any(v.get("fmla") for _, v in ours)  # FMLA are counted on aarch64 only
    if not counted:
        lines = ["", f"{key}: the hottest kernel functions (share of the model's cycles, IPC):", "",
                 "| function | cycles / inference | share | IPC |", "|---|---|---|---|"]
        for name, v in ours[:top]:
            lines.append(f"| `{name}` | {v['cycles'] / 1e6:.1f} M | {100 * v['share_of_cycles']:.1f} % | "
                         f"{v['instructions'] / v['cycles']:.2f} |")
        return lines
    lines = ["", f"{key}: the hottest kernel functions (share of the model's cycles, IPC; FMLA bound: "
             f"executed vector FMLA / {fmla_rate} per cycle, and the cycles over it):", "",
             "| function | cycles / inference | share | IPC | FMLA-bound cycles | cycles over FMLA bound |",
             "|---|---|---|---|---|---|"]
    for name, v in ours[:top]:
        lines.append(f"| `{name}` | {v['cycles'] / 1e6:.1f} M | {100 * v['share_of_cycles']:.1f} % | "
                     f"{v['instructions'] / v['cycles']:.2f} | {_bound_cells(v, fmla_rate)} |")
    lib = next(v for k, v in row["by_file"].items() if k.startswith(OPS_LIBRARY))
    losses = sorted(ours, key=lambda nv: -(nv[1]["cycles"] - nv[1].get("fmla", 0) / fmla_rate))[:top]
    lines += ["", f"{key}: the largest losses over the FMLA bound (all kernels: {lib['cycles'] / 1e6:.1f} M "
              f"cycles, FMLA bound {lib['fmla'] / fmla_rate / 1e6:.1f} M; the FMLA count includes the "
              "waste in padding lanes and the BN FMLA of the separate gather, so the FMLA bound sits above "
              "the useful-MAC bound by that waste, which the last column does not show):", "",
              "| function | cycles / inference | FMLA-bound cycles | cycles over FMLA bound |",
              "|---|---|---|---|"]
    for name, v in losses:
        lines.append(f"| `{name}` | {v['cycles'] / 1e6:.1f} M | {_bound_cells(v, fmla_rate)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--core", choices=sorted(CORES), help="the ARM core to model")
    which.add_argument("--calibrate-x86", action="store_true",
                       help="run the method on x86 beside native timing "
                       "(writes arm_model_calibration_x86_64.*)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)} (default: all)")
    parser.add_argument("--runs", type=int, default=2, help="inferences counted per model (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="inferences before counting (default 1)")
    parser.add_argument("--coverage", type=float, default=0.999,
                        help="share of executed instructions whose blocks llvm-mca models (default 0.999)")
    parser.add_argument("--timed-runs", type=int, default=40, help="--calibrate-x86: native timed rounds")
    parser.add_argument("--quick", action="store_true",
                        help="the reduced form the tests run: one inference, no warm-up, 99%% coverage")
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder for the .json and .md (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite existing result files")
    args = parser.parse_args()
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown or not keys:
        fail(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}", 2)
    if args.quick:
        args.runs, args.warmup, args.coverage = 1, 0, 0.99
    if args.runs < 1 or args.warmup < 0 or not 0 < args.coverage <= 1:
        fail("--runs must be >= 1, --warmup >= 0 and --coverage in (0, 1]", 2)
    out = Path(args.out)
    slug = "arm_model_calibration_x86_64" if args.calibrate_x86 else f"arm_model_{args.core}"
    if not args.force:
        for p in (out / f"{slug}.json", out / f"{slug}.md"):
            if p.exists():
                fail(f"{p} exists (use --force to overwrite)")
    if REFERENCE not in keys:
        print("arm_model: MobileNet v1 not among --models: no ratios", file=sys.stderr)
    started = time.time()
    try:
        build_plugin()
        if args.calibrate_x86:
            fp32_keys = [k for k in keys if MODELS[k][2] == "fp32"]
            if fp32_keys != keys:
                print("arm_model: the fp16 rows are left out of the x86 calibration: no x86 CPU has ARMv8.2 "
                      "FP16 arithmetic", file=sys.stderr)
            result = calibrate(fp32_keys, args)
        else:
            qemu_cpu, mcpu, macs_per_cycle = CORES[args.core]
            fp16_peak = FP16_PEAK[args.core]
            fp16_keys = [k for k in keys if MODELS[k][2] == "fp16"]
            skipped = None
            if isinstance(fp16_peak, str) and fp16_keys:
                skipped = f"{', '.join(fp16_keys)}: {fp16_peak}"
                print(f"arm_model: skipping {skipped}", file=sys.stderr)
                keys = [k for k in keys if k not in fp16_keys]
                if not keys:
                    fail(f"nothing left to model on {args.core}: {skipped}", 2)
            roots = [aarch64_root() / "root"]
            models = run_models(keys, arch="aarch64", qemu_cpu=qemu_cpu, mcpu=mcpu,
                                macs_per_cycle=macs_per_cycle, warmup=args.warmup, runs=args.runs,
                                coverage=args.coverage, roots=roots,
                                fp16_macs_per_cycle=fp16_peak if isinstance(fp16_peak, int) else 0)
            result = header(args, f"ARM cost model: {args.core} (modeled)", mcpu, macs_per_cycle)
            if isinstance(fp16_peak, int):
                result["fp16_macs_per_cycle"] = fp16_peak
            if skipped:
                result["fp16_skipped"] = skipped
            result["qemu_cpu"] = qemu_cpu
            result["models"] = models
            cal = out / "arm_model_calibration_x86_64.json"
            if cal.exists():
                result["calibration"] = json.loads(cal.read_text())["calibration"]
    except ModelError as e:
        fail(str(e))
    result["seconds"] = round(time.time() - started, 1)
    write_report(result, out, slug, args.force)


def header(args: argparse.Namespace, title: str, mcpu: str, macs_per_cycle: int,
           qemu: str = "qemu-aarch64") -> dict[str, Any]:
    return {
        "title": title,
        "command": "python benchmarks/arm_model.py " + " ".join(sys.argv[1:]),
        "modeled": True,
        "method": ("Guest instructions executed per inference under qemu (a TCG plugin counts every "
                   "translation block between markers after session creation and warm-up), each hot "
                   "block's steady-state cycles from llvm-mca weighted by its executions. Batch 1, 224x224, "
                   "1 thread, random weights."),
        "ignores": IGNORED, "tools": versions(qemu), "mcpu": mcpu, "macs_per_cycle": macs_per_cycle,
        "runs": args.runs, "warmup": args.warmup, "coverage": args.coverage, "host": platform.machine(),
    }


def calibrate(keys: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The same method on x86 (AVX2 kernels under qemu-x86_64) against native time here."""
    probe = subprocess.run([tool("llvm-mca"), "-mcpu=native", "-json"], input="nop\n", capture_output=True,
                           text=True, check=False)
    mcpu = json.loads(probe.stdout)["TargetInfo"]["CPUName"] if probe.returncode == 0 else "x86-64-v3"
    models = run_models(keys, arch="x86_64", qemu_cpu=X86_QEMU_CPU, mcpu=mcpu, macs_per_cycle=16,
                        warmup=args.warmup, runs=args.runs, coverage=args.coverage, roots=[Path("/")])
    measured = measured_x86(keys, args.timed_runs)
    from condense_deploy.runtime.machine import describe_machine

    result = header(args, f"ARM cost model method, calibrated on x86 ({mcpu})", mcpu, 16, "qemu-x86_64")
    result["qemu_cpu"] = X86_QEMU_CPU
    result["machine"] = describe_machine()
    result["models"] = models
    result["calibration"] = calibration_summary(models, measured, mcpu, args.timed_runs)
    return result


def calibration_summary(models: dict[str, Any], measured: dict[str, Any], mcpu: str,
                        timed_runs: int) -> dict[str, Any]:
    """Modeled against measured ratios, and C=G=4 over C=G=8 (both our AVX2 kernels in both, so
    free of MobileNet's AVX2-modeled / AVX-512-measured difference)."""
    rows = {k: {"modeled_ratio": models[k]["ratio"], "measured_ratio": round(measured[k]["ratio"], 3),
                "measured_p50_ms": measured[k]["p50_ms"]} for k in models if models[k]["ratio"]}
    out: dict[str, Any] = {
        "summary": (f"qemu-x86_64 -cpu {X86_QEMU_CPU}, AVX2 kernels, llvm-mca -mcpu={mcpu}, against native "
                    f"1-thread medians of {timed_runs} interleaved rounds here with "
                    "CONDENSE_DEPLOY_ISA=avx2; natively onnxruntime's own kernels (MobileNet v1) use "
                    "AVX-512 here, modeled they run AVX2"),
        "models": rows,
    }
    c8, c4 = "condensenet74_c8g8", "condensenet74_c4g4"
    if c8 in models and c4 in models:
        out["c4g4_over_c8g8"] = {"modeled": round(models[c4]["cycles"] / models[c8]["cycles"], 3),
                                 "measured": round(measured[c4]["ratio"] / measured[c8]["ratio"], 3)}
    return out


if __name__ == "__main__":
    main()
