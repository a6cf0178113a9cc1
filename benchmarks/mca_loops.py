"""llvm-mca on the inner loops of the fp16 NEON micro-kernel tiles the CondenseNet-74 blocks use.

A tuning tool for ``csrc/ukernels/neonfp16/``: each tile (``conv_tile`` / ``cv_tile`` with the shape
the plan picks for a block) is instantiated in a scratch translation unit, compiled with the
library's flags for its ISA (``aarch64-linux-gnu-g++ -O3 -march=armv8.2-a+fp16``), and the innermost
loop holding its FMLA goes through ``llvm-mca-19 -mcpu=CORE``. Printed per tile: modeled cycles per
iteration, the output FMLA in it, % of the core's peak (two 128-bit FMLA per cycle), loads, and
stack accesses (a spill shows there). The loop found must hold at least the tile's output FMLA.

    .venv/bin/python benchmarks/mca_loops.py [--mcpu neoverse-n1]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mca_model import disassemble, tool  # noqa: E402

CSRC = Path(__file__).resolve().parents[1] / "csrc"
CXX = "aarch64-linux-gnu-g++"
FLAGS = ["-std=c++17", "-O3", "-march=armv8.2-a+fp16", "-ffp-contract=fast", "-fno-math-errno"]
ITERATIONS = 200
FMLA_PER_CYCLE = 2  # Neoverse N1 / Cortex-A76: two 128-bit FMLA pipes

# name -> (template call, output FMLA per inner-loop iteration, the blocks that use it). An iteration is
# one input channel (1x1), one row of 3 taps (position-vector 3x3) or one tap (channel vectors). The
# fused 1x1 also runs an FMLA, a move and an fmaxnm per input vector for BN + ReLU: not counted.
TILES = {
    "1x1 fused BN+ReLU 4x5": ("conv_tile<4, 5, 1, true>(a, 0, 0)", 20, "block 1 of C=G=8"),
    "1x1 fused BN+ReLU 8x3": ("conv_tile<8, 3, 1, true>(a, 0, 0)", 24, "block 2 of C=G=8, 1 of C=G=4"),
    "1x1 fused BN+ReLU 16x1": ("conv_tile<16, 1, 1, true>(a, 0, 0)", 16, "block 3 of C=G=8, 2 of C=G=4"),
    "1x1 8x3": ("conv_tile<8, 3, 1, false>(a, 0, 0)", 24, "32+ outputs per group (after the gather)"),
    "3x3 1x8": ("conv_tile<1, 8, 9, false>(a, 0, 0)", 24, "block 1 of C=G=8"),
    "3x3 2x6": ("conv_tile<2, 6, 9, false>(a, 0, 0)", 36, "block 2 of C=G=8, 1 of C=G=4"),
    "3x3 4x6": ("conv_tile<4, 6, 9, false>(a, 0, 0)", 72, "block 3 of C=G=8, 2-3 of C=G=4"),
    "chanvec 3x3 1x14": ("cv_tile<1, 14, 9>(c, 0, 0)", 42, "block 4 of C=G=8"),
    "chanvec 3x3 2x8": ("cv_tile<2, 8, 9>(c, 0, 0)", 48, "block 4 of C=G=4"),
    "chanvec 3x3 2x6": ("cv_tile<2, 6, 9>(c, 0, 0)", 36, "block 4 of C=G=4"),
    "chanvec 3x3 2x7": ("cv_tile<2, 7, 9>(c, 0, 0)", 42, "block 5"),
    "chanvec 1x1 2x7": ("cv_tile<2, 7, 1>(c, 0, 0)", 14, "block 5"),
}


def _source() -> str:
    lines = ['#include "ukernels/neonfp16/chanvec.h"', "using namespace cdops;",
             "using namespace cdops::neonfp16;"]
    for i, (call, _, _) in enumerate(TILES.values()):
        lines.append(f'extern "C" __attribute__((noinline)) void tile{i}(const F16ConvArgs& a, '
                     f"const F16CvArgs& c) {{ (void)a; (void)c; {call}; }}")
    return "\n".join(lines) + "\n"


def _functions(obj: Path) -> dict[str, list[tuple[int, str, str]]]:
    """Per function: (address, encoding as llvm-mc hex, objdump text) of each instruction."""
    dump = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    out: dict[str, list[tuple[int, str, str]]] = {}
    current: list[tuple[int, str, str]] = []
    for line in dump.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:", line)
        if head:
            current = out.setdefault(head.group(1), [])
            continue
        ins = re.match(r"^\s+([0-9a-f]+):\s+([0-9a-f]{8})\s+(.*)$", line)
        if ins:
            word = ins.group(2)
            current.append((int(ins.group(1), 16), word[6:8] + word[4:6] + word[2:4] + word[0:2],
                            ins.group(3).split("//")[0].strip()))
    return out


def _hot_loop(code: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The innermost loop (a backward branch with no branch inside) holding the most FMLA."""
    where = {addr: i for i, (addr, _, _) in enumerate(code)}
    best: list[tuple[int, str, str]] = []
    for i, (addr, _, text) in enumerate(code):
        m = re.match(r"^(b\.\w+|cbnz|cbz|b)\s+([0-9a-f]+) <", text)
        if not m or int(m.group(2), 16) >= addr or int(m.group(2), 16) not in where:
            continue
        body = code[where[int(m.group(2), 16)]: i + 1]
        if any(re.match(r"^(b\.|cbnz|cbz|tbnz|tbz|b\s|ret)", t) for _, _, t in body[:-1]):
            continue
        if sum(t.startswith("fmla") for _, _, t in body) > sum(t.startswith("fmla") for _, _, t in best):
            best = body
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcpu", default="neoverse-n1", help="llvm-mca's core (default neoverse-n1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, obj = Path(tmp) / "tiles.cc", Path(tmp) / "tiles.o"
        src.write_text(_source())
        subprocess.run([CXX, *FLAGS, f"-I{CSRC}", "-c", str(src), "-o", str(obj)], check=True)
        functions = _functions(obj)
    print(f"llvm-mca -mcpu={args.mcpu}, {ITERATIONS} iterations; % of peak = output FMLA / "
          f"({FMLA_PER_CYCLE} x cycles)")
    for i, (name, (_, outputs, users)) in enumerate(TILES.items()):
        code = functions[f"tile{i}"]
        calls = (re.match(r"^bl?\s+[0-9a-f]+ <([^+>]+)>", t) for _, _, t in code)
        for callee in {m.group(1) for m in calls if m}:
            code = code + functions.get(callee, [])  # GCC may keep the tile out of line
        loop = _hot_loop(code)
        text = disassemble({enc for _, enc, _ in loop}, "aarch64")
        mca = subprocess.run([tool("llvm-mca"), "-mtriple=aarch64", f"-mcpu={args.mcpu}",
                              f"-iterations={ITERATIONS}"],
                             input="\n".join(text[e] for _, e, _ in loop) + "\n",
                             capture_output=True, text=True, check=True).stdout
        cycles = int(re.search(r"Total Cycles:\s+(\d+)", mca).group(1)) / ITERATIONS  # type: ignore[union-attr]
        fmla = sum(1 for _, _, t in loop if t.startswith("fmla"))
        loads = sum(1 for _, _, t in loop if t.startswith("ld"))
        stack = sum(1 for _, _, t in loop if "[sp" in t)
        if fmla < outputs:
            raise SystemExit(f"{name}: the loop found has {fmla} FMLA, fewer than the tile's {outputs}")
        peak = 100 * outputs / FMLA_PER_CYCLE / cycles
        print(f"{name:24s} {cycles:6.2f} cycles  {outputs:3d} of {fmla:2d} FMLA  {peak:5.1f} %  "
              f"loads {loads:2d}  stack {stack}  ({users})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
