"""The native kernels against MobileNet v1: CondenseNet-74 C=G=8 and
C=G=4 exported with ``--optimize native`` and ``fast``, beside MobileNet v1, timed interleaved in one
run with onnxruntime at 1 and 2 threads, batch 1 and batch 8, plus each model's own peak RSS.

    .venv/bin/python benchmarks/native_summary.py [--runs 40] [--out benchmarks/results]

Exports go to ~/.cache/condense-deploy/onnx (the table's cache; reused when current). Latency ratios
are medians over interleaved rounds of each model's time over MobileNet's in the same round. Peak RSS
is measured with each model alone in a fresh process (one session, 5 runs): a process's high-water
mark says nothing per model when several share it. Writes ``native_summary_<machine>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from condense_deploy.runtime.bench import BenchSettings, run_bench
from condense_deploy.runtime.machine import describe_machine
from condense_deploy.table import _reusable, default_onnx_dir

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
    from condense_deploy.pipeline import export_source

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, name, mode in MODELS:
        path = folder / f"{name}.{mode}.onnx"
        if _reusable(path, name, mode) is None:
            print(f"exporting {name} ({mode})", file=sys.stderr)
            export_source(name, path, optimize=mode, force=True)
        paths[label] = path
    return paths


def peak_rss(path: Path, batch: int) -> float:
    done = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(batch)], capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    started = time.time()
    paths = export_all(default_onnx_dir())
    labels = list(paths)
    result: dict[str, Any] = {
        "command": "python benchmarks/native_summary.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(), "runs": args.runs, "settings": {}, "peak_rss_mb": {},
    }
    for batch in (1, 8):
        print(f"timing batch {batch} at 1 and 2 threads", file=sys.stderr)
        report = run_bench([paths[label] for label in labels],
                           BenchSettings(threads=[1, 2], batch=batch, warmup=3, runs=args.runs)).to_dict()
        by_path = {str(paths[label]): label for label in labels}
        for r in report["results"]:
            key = f"batch {batch}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
            result["settings"].setdefault(key, {})[by_path[r["path"]]] = {
                "p50_ms": r["latency_p50_ms"], "ratio_to_mobilenet": r["paired_ratio_to_first"]}
    for batch in (1, 8):
        result["peak_rss_mb"][f"batch {batch}"] = {label: peak_rss(paths[label], batch) for label in labels}
    result["seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    slug = f"native_summary_{platform.machine()}"
    from condense_deploy._fsutil import write_json, write_text

    write_json(out / f"{slug}.json", result)
    markdown = render(result, labels)
    write_text(out / f"{slug}.md", markdown)
    print(markdown)


def render(result: dict[str, Any], labels: list[str]) -> str:
    machine = result["machine"]
    lines = [f"# Native kernels against MobileNet v1 ({machine['cpu_model']}, {machine['arch']})", "",
             f"`{result['command'].strip()}`: onnxruntime {machine['onnxruntime']}, 224x224, "
             f"{result['runs']} interleaved rounds per setting, medians; ratio = median over rounds of "
             "time / MobileNet v1's time in the same round. Random weights.", "",
             "| setting | " + " | ".join(labels) + " |", "|---" * (1 + len(labels)) + "|"]
    for setting, rows in result["settings"].items():
        cells = [f"{rows[m]['ratio_to_mobilenet']:.2f} ({rows[m]['p50_ms']:.1f} ms)" for m in labels]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines += ["", "Peak RSS (MB), each model alone in a fresh process (one session, 5 runs):", "",
              "| batch | " + " | ".join(labels) + " |", "|---" * (1 + len(labels)) + "|"]
    for batch, rows in result["peak_rss_mb"].items():
        lines.append(f"| {batch} | " + " | ".join(f"{rows[m]:.0f}" for m in labels) + " |")
    lines += ["", f"Whole run took {result['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
