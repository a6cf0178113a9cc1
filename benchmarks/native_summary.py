"""The native kernels against MobileNet v1: CondenseNet-74 C=G=8 and C=G=4 exported with
``--optimize native`` and ``fast``, beside MobileNet v1, timed interleaved in one run with
onnxruntime at 1 and 2 threads, batch 1 and batch 8, plus each model's own peak RSS.

    .venv/bin/python benchmarks/native_summary.py [--runs 100] [--out benchmarks/results]

Timing is ``condense-deploy bench``'s own (``run_bench`` with bench's defaults: 10 warm-up rounds,
then ``--runs`` timed rounds, graph optimization ``all``, one session per model), so each row is
what ``condense-deploy bench MOBILENET.onnx OTHER.onnx ... --threads 1,2 --batch N`` prints as
"x first"; the results say that command. The 1-minute load average before and after each setting
is recorded: on a shared machine the ratios move with the load (they rise when other processes
compete for the cores and caches).

Exports go to ~/.cache/condense-deploy/onnx (the table's cache; reused when current). Latency ratios
are medians over interleaved rounds of each model's time over MobileNet's in the same round. Peak RSS
is measured with each model alone in a fresh process (one session, 5 runs): a process's high-water
mark says nothing per model when several share it. Writes ``native_summary_<machine>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from condense_deploy.runtime.bench import DEFAULT_RUNS, BenchSettings, run_bench
from condense_deploy.runtime.machine import describe_machine
from condense_deploy.table import cached_export, default_onnx_dir

# (row label, zoo name, optimize mode); the reference first
MODELS = [
    ("mobilenet_v1", "mobilenet_v1", "fast"),
    ("condensenet74_c8g8 native", "condensenet74_c8g8", "native"),
    ("condensenet74_c8g8 fast", "condensenet74_c8g8", "fast"),
    ("condensenet74_c4g4 native", "condensenet74_c4g4", "native"),
    ("condensenet74_c4g4 fast", "condensenet74_c4g4", "fast"),
]

# VmHWM, not getrusage: Linux carries ru_maxrss over from the parent through fork and exec
_RSS_CHILD = """
import sys, numpy as np
from condense_deploy.runtime.sessions import create_session
session = create_session(sys.argv[1], 1)
x = np.random.default_rng(0).standard_normal((int(sys.argv[2]), 3, 224, 224)).astype(np.float32)
for _ in range(5):
    session.run(None, {session.get_inputs()[0].name: x})
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
print(int(status[0]) / 1024)
"""


def export_all(folder: Path) -> dict[str, Path]:
    def step(message: str) -> None:
        print(message, file=sys.stderr)

    return {label: cached_export(name, mode, folder, on_step=step)[0] for label, name, mode in MODELS}


def peak_rss(path: Path, batch: int) -> float:
    done = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(batch)], capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description="CondenseNet-74 (native and fast exports) against MobileNet v1 in onnxruntime: "
                    "interleaved latency ratios at 1 and 2 threads, batch 1 and 8, and peak RSS.")
    parser.add_argument("--runs", type=_positive, default=DEFAULT_RUNS, metavar="N",
                        help="timed interleaved rounds per model and setting "
                             "(default: %(default)s, as condense-deploy bench)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), metavar="DIR",
                        help="existing folder for native_summary_<arch>.md and .json, overwritten "
                             "(default: benchmarks/results)")
    args = parser.parse_args()
    slug = f"native_summary_{platform.machine()}"
    from condense_deploy._fsutil import check_writable
    from condense_deploy.errors import CondenseDeployError

    try:  # before minutes of exports and timing
        for suffix in (".json", ".md"):
            check_writable(Path(args.out) / f"{slug}{suffix}", force=True)
    except CondenseDeployError as e:
        sys.exit(f"Error: {e}")
    started = time.time()
    paths = export_all(default_onnx_dir())
    labels = list(paths)
    result: dict[str, Any] = {
        "command": "python benchmarks/native_summary.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(), "runs": args.runs, "settings": {}, "peak_rss_mb": {},
        "bench_commands": {}, "load_average_1min": {},
    }
    for batch in (1, 8):
        print(f"timing batch {batch} at 1 and 2 threads", file=sys.stderr)
        settings = BenchSettings(threads=[1, 2], batch=batch, runs=args.runs)
        result["bench_commands"][f"batch {batch}"] = " ".join(
            ["condense-deploy bench", *(str(paths[label]) for label in labels), *settings.to_args()])
        load_before = os.getloadavg()[0]
        report = run_bench([paths[label] for label in labels], settings).to_dict()
        result["load_average_1min"][f"batch {batch}"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        by_path = {str(paths[label]): label for label in labels}
        for r in report["results"]:
            key = f"batch {batch}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
            result["settings"].setdefault(key, {})[by_path[r["path"]]] = {
                "p50_ms": r["latency_p50_ms"], "ratio_to_mobilenet": r["paired_ratio_to_first"]}
    for batch in (1, 8):
        result["peak_rss_mb"][f"batch {batch}"] = {label: peak_rss(paths[label], batch) for label in labels}
    result["seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    from condense_deploy._fsutil import write_json, write_text

    write_json(out / f"{slug}.json", result)
    markdown = render(result, labels)
    write_text(out / f"{slug}.md", markdown)
    print(markdown)


def render(result: dict[str, Any], labels: list[str]) -> str:
    machine = result["machine"]
    lines = [f"# Native kernels against MobileNet v1 ({machine['cpu_model']}, {machine['arch']})", "",
             f"`{result['command'].strip()}`: onnxruntime {machine['onnxruntime']}, 224x224, "
             f"{result['runs']} interleaved rounds per setting after 10 warm-up rounds, medians; ratio = "
             "median over rounds of time / MobileNet v1's time in the same round (`bench`'s \"x first\"). "
             "Random weights.", "",
             "| setting | " + " | ".join(labels) + " |", "|---" * (1 + len(labels)) + "|"]
    for setting, rows in result["settings"].items():
        cells = [f"{rows[m]['ratio_to_mobilenet']:.2f} ({rows[m]['p50_ms']:.1f} ms)" for m in labels]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines += ["", "Peak RSS (MB), each model alone in a fresh process (one session, 5 runs):", "",
              "| batch | " + " | ".join(labels) + " |", "|---" * (1 + len(labels)) + "|"]
    for batch, rows in result["peak_rss_mb"].items():
        lines.append(f"| {batch} | " + " | ".join(f"{rows[m]:.0f}" for m in labels) + " |")
    lines += ["", "The same timing with `condense-deploy bench` (1-minute load average before / after):", ""]
    for batch, command in result["bench_commands"].items():
        before, after = result["load_average_1min"][batch]
        lines.append(f"- {batch} (load {before:.1f} / {after:.1f}): `{command}`")
    lines += ["", f"Whole run took {result['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
