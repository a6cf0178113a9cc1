"""Executed guest code to modeled cycles: the analysis half of ``arm_model.py``.

Input: the window the qemu plugin ``csrc/tools/tb_profile.c`` wrote (every translation block that ran
between the guest's start and stop markers: address, executions, instruction bytes) and the guest's
``/proc/self/maps`` at the stop marker. Steps:

1. Merge blocks with the same address and bytes (qemu may translate a block more than once), then
   join blocks qemu split at a guest page boundary (it never lets a translation block cross a 4 KB
   page): a block that ends where the only block starting on the next page begins, that does not
   end in a branch and runs as often as it, falls through into it every time, so the two are one
   piece of straight-line code (often one loop body) and are modeled as one block. Without this
   the same loop reads differently with code layout: llvm-mca would run each half back to back
   with itself and miss the overlap between them.
2. Disassemble every distinct instruction encoding once with ``llvm-mc --disassemble`` (LLVM's own
   syntax, so llvm-mca parses it; qemu's disassembly is kept for the report only).
3. The hottest blocks, covering ``coverage`` of the executed instructions, go into one llvm-mca run,
   one code region per block; a block's cost is llvm-mca's steady-state cycles per iteration
   (total cycles / iterations of the block run back to back). Cycles = sum of executions x that.
4. What llvm-mca cannot take is counted, not hidden: encodings llvm-mc cannot decode and
   instructions llvm-mca rejects are dropped from their block and charged 1 cycle each; blocks
   outside the coverage are charged at the modeled blocks' cycles per instruction. Both shares are
   reported.
5. Each block is attributed to the mapped file (and, where the file has a symbol table, the
   function) it lies in, from the guest's maps and ``llvm-nm``/``llvm-readelf``.
6. Each block's vector FMLA instructions are counted too (aarch64: ``fmla v.4s`` / ``v.8h``, by
   element or not), so a function's cycles can be held against its FMLA-bound cycles (executed
   FMLA / the core's FMLA per cycle): what is over the bound is the loss outside the multiply-adds.
"""

from __future__ import annotations

import json
import re
import subprocess
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LLVM_BIN = "/usr/lib/llvm-19/bin"
MCA_ITERATIONS = 100
# what to tell llvm-mc so that every guest encoding the emulated CPU may run decodes
DISASSEMBLE_ARGS = {
    "aarch64": ["-triple=aarch64", "-mattr=+v8.2a,+fullfp16,+dotprod,+i8mm,+bf16,+rcpc,+lse,+crc,+aes,+sha2"],
    "x86_64": ["-triple=x86_64"],
}
MCA_TRIPLE = {"aarch64": "aarch64", "x86_64": "x86_64"}
# vector FMLA (any arrangement, by element or not), in llvm-mc's and in qemu's disassembly; scalar
# fmla by element (``fmla s0, s1, v2.s[0]``) is not a full pipe op and is left out
FMLA = {"aarch64": re.compile(r"^fmla\s+v\d+\.\d+[hsd]\b")}


def count_fmla(texts: list[str], arch: str) -> int:
    """Vector FMLA among ``texts`` (instruction lines); 0 where the architecture has no pattern."""
    pattern = FMLA.get(arch)
    return sum(1 for t in texts if pattern.match(t.strip().lower())) if pattern else 0


class ModelError(RuntimeError):
    """A tool failed or the trace is unusable; the message is one line for the user."""


@dataclass
class Block:
    vaddr: int
    executions: int
    encodings: list[str]   # hex bytes per instruction
    qemu_disas: list[str]  # qemu's text, for reading only

    @property
    def executed_instructions(self) -> int:
        return self.executions * len(self.encodings)


@dataclass
class Window:
    blocks: list[Block]
    instructions: int  # guest instructions executed in the window, from the plugin


def read_window(path: Path) -> Window:
    """The plugin's output, identical blocks (same address and bytes) merged."""
    merged: dict[tuple[int, tuple[str, ...]], Block] = {}
    current: Block | None = None
    total = None

    def close(block: Block | None) -> None:
        if block is None:
            return
        key = (block.vaddr, tuple(block.encodings))
        if key in merged:
            merged[key].executions += block.executions
        else:
            merged[key] = block

    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("I "):
            if current is None:
                raise ModelError(f"{path}: instruction before any block")
            _, hexbytes, *disas = line.split(" ", 2)
            current.encodings.append(hexbytes)
            current.qemu_disas.append(disas[0] if disas else "")
        elif line.startswith("B "):
            close(current)
            _, vaddr, executions, _n = line.split()
            current = Block(int(vaddr, 16), int(executions), [], [])
        elif line.startswith("E "):
            close(current)
            current = None
            total = int(line.split()[2])
    if total is None:
        raise ModelError(f"{path}: no end line (the guest did not reach the stop marker?)")
    joined = join_page_splits(list(merged.values()))
    blocks = sorted(joined, key=lambda b: (-b.executed_instructions, b.vaddr))
    return Window(blocks, total)


PAGE_BYTES = 4096  # qemu's TARGET_PAGE_SIZE for aarch64 and x86_64 user mode
# mnemonics (qemu's disassembly) that end a block by themselves: after one, the next block is not
# a fall-through
_ENDS_FLOW = re.compile(
    r"^(b|bl|br|blr|braa\w*|blraa\w*|ret\w*|cbz|cbnz|tbz|tbnz|b\.\w+|svc|brk|hlt|udf|eret"
    r"|j\w+|call\w*|syscall|sysenter|int\w*|ud2|loop\w*)$")


def _byte_size(block: Block) -> int:
    return sum(len(e) // 2 for e in block.encodings)


def _ends_in_branch(block: Block) -> bool:
    words = block.qemu_disas[-1].split() if block.qemu_disas else []
    return bool(words) and bool(_ENDS_FLOW.match(words[0].lower()))


def join_page_splits(blocks: list[Block], page: int = PAGE_BYTES) -> list[Block]:
    """Join each block with the block it falls through into at a page boundary (one block to llvm-mca).

    Joined only when that is certain from the trace: exactly one block (one translation) starts at
    the page boundary, every block that ends there ends without a branch (so each of its executions
    goes on into the one that starts there), and their executions add up to the starting block's (so
    nothing else enters it). Several enders are the usual loop cut by a page: the loop's own head and
    the prologue that falls into it; each gets its own copy of the rest, run as often as itself.
    Chains (code spanning several pages) join in turn."""
    by_start: dict[int, list[Block]] = defaultdict(list)
    by_end: dict[int, list[Block]] = defaultdict(list)
    for b in blocks:
        by_start[b.vaddr].append(b)
        by_end[b.vaddr + _byte_size(b)].append(b)
    successor: dict[int, Block] = {}  # id(ender) -> the block it falls into
    for boundary, enders in by_end.items():
        starters = by_start.get(boundary, [])
        if boundary % page or len(starters) != 1:
            continue
        second = starters[0]
        if any(first is second or _ends_in_branch(first) for first in enders):
            continue
        if sum(first.executions for first in enders) != second.executions:
            continue
        for first in enders:
            successor[id(first)] = second
    absorbed = {id(b) for b in successor.values()}
    out = []
    for b in blocks:
        if id(b) in absorbed:
            continue
        head = Block(b.vaddr, b.executions, list(b.encodings), list(b.qemu_disas))
        nxt = successor.get(id(b))
        seen = {id(b)}
        while nxt is not None and id(nxt) not in seen:
            seen.add(id(nxt))
            head.encodings += nxt.encodings
            head.qemu_disas += nxt.qemu_disas
            nxt = successor.get(id(nxt))
        out.append(head)
    return out


def tool(name: str) -> str:
    path = Path(LLVM_BIN) / name
    if not path.exists():
        raise ModelError(f"{path} not found: install Debian's llvm-19 package")
    return str(path)


# An instruction put after every encoding, so that llvm-mc's output splits into one chunk per
# encoding whatever it makes of it (nothing for an invalid one, two lines for a lone prefix).
SEPARATOR = {"aarch64": ("00000000", "udf #0"), "x86_64": ("0f0b", "ud2")}


def disassemble(encodings: set[str], arch: str) -> dict[str, str]:
    """LLVM assembly text (one or more lines) for each hex encoding it can decode; the others are
    absent from the result."""
    sep_hex, sep_text = SEPARATOR[arch]
    ordered = sorted(encodings - {sep_hex})

    def group(e: str) -> str:
        return "[" + " ".join("0x" + e[i:i + 2] for i in range(0, len(e), 2)) + "]"

    text = "\n".join(f"{group(e)}\n{group(sep_hex)}" for e in ordered)
    done = subprocess.run([tool("llvm-mc"), "--disassemble", *DISASSEMBLE_ARGS[arch]],
                          input=text, capture_output=True, text=True, check=False)
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    lines = [line for line in lines if line and not line.startswith(".")]
    chunks: list[list[str]] = [[]]
    for line in lines:
        if line == sep_text:
            chunks.append([])
        else:
            chunks[-1].append(line)
    if len(chunks) != len(ordered) + 1 or chunks[-1]:
        raise ModelError(f"llvm-mc's output does not split into {len(ordered)} instructions")
    out = {e: "\n".join(chunk) for e, chunk in zip(ordered, chunks, strict=False) if chunk}
    if sep_hex in encodings:
        out[sep_hex] = sep_text
    return out


@dataclass
class BlockCost:
    cycles_per_execution: float
    modeled_instructions: int  # lines of the region llvm-mca modeled (the rest it rejected)


@dataclass
class Costs:
    per_block: dict[int, BlockCost]  # index into the hot list
    rejected: dict[str, int] = field(default_factory=dict)  # instruction text -> times seen in hot blocks
    mcpu: str = ""


def run_mca(regions: list[list[str]], arch: str, mcpu: str) -> Costs:
    """Steady-state cycles per execution of each region; instructions llvm-mca rejects are dropped
    (and listed) and the run repeated."""
    rejected: set[str] = set()
    for _attempt in range(200):
        lines: list[str] = []
        line_text: dict[int, str] = {}
        for i, insns in enumerate(regions):
            lines.append(f"# LLVM-MCA-BEGIN b{i}")
            for text in insns:
                if text not in rejected:
                    lines.append(text)
                    line_text[len(lines)] = text
            lines.append(f"# LLVM-MCA-END b{i}")
        done = subprocess.run(
            [tool("llvm-mca"), f"-mtriple={MCA_TRIPLE[arch]}", f"-mcpu={mcpu}",
             f"-iterations={MCA_ITERATIONS}", "-json", "-timeline=false", "-resource-pressure=false",
             "-instruction-info=false"],
            input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return _parse_mca(done.stdout, regions, rejected, mcpu)
        # llvm-mca names the culprit by line (parse errors) or by text (no scheduling information)
        bad = {line_text[int(m.group(1))] for m in re.finditer(r"<stdin>:(\d+):\d+: error", done.stderr)
               if int(m.group(1)) in line_text}
        named = {" ".join(m.group(1).split()) for m in re.finditer(r"note: instruction:\s*(.+)", done.stderr)}
        bad |= {t for t in line_text.values() if " ".join(t.split()) in named}
        if not bad:
            raise ModelError("llvm-mca failed: " + (done.stderr.strip().splitlines() or ["no message"])[0])
        rejected |= bad
    raise ModelError("llvm-mca kept rejecting instructions after 200 attempts")


def _parse_mca(stdout: str, regions: list[list[str]], rejected: set[str], mcpu: str) -> Costs:
    report = json.loads(stdout)
    costs = Costs({}, mcpu=report.get("TargetInfo", {}).get("CPUName", mcpu))
    for region in report["CodeRegions"]:
        index = int(region["Name"][1:])
        summary = region["SummaryView"]
        kept = [t for t in regions[index] if t not in rejected]
        cycles = summary["TotalCycles"] / summary["Iterations"] if kept else 0.0
        costs.per_block[index] = BlockCost(cycles, len(kept))
    for i, insns in enumerate(regions):
        costs.per_block.setdefault(i, BlockCost(0.0, 0))
        for text in insns:
            if text in rejected:
                costs.rejected[text] = costs.rejected.get(text, 0) + 1
    return costs


# ---- attribution to files and functions ------------------------------------------------------

@dataclass
class Mapping:
    start: int
    end: int
    offset: int
    path: str


def read_maps(path: Path) -> list[Mapping]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(None, 5)
        # every file mapping (qemu-x86_64's emulated maps can show code as r--p)
        if len(parts) < 6 or not parts[5].strip().startswith("/"):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        out.append(Mapping(start, end, int(parts[2], 16), parts[5].strip()))
    return sorted(out, key=lambda m: m.start)


class Symbolizer:
    """Guest address -> (file, function): files from the guest's maps, functions from each file's
    symbol table (llvm-nm), file offsets to ELF addresses through its LOAD segments (llvm-readelf)."""

    def __init__(self, maps: list[Mapping], roots: list[Path]):
        self.maps = maps
        self.starts = [m.start for m in maps]
        self.roots = roots
        self._symbols: dict[str, tuple[list[int], list[tuple[int, str]]]] = {}
        self._segments: dict[str, list[tuple[int, int, int]]] = {}

    def _host_file(self, guest_path: str) -> Path | None:
        for root in self.roots:
            candidate = Path(str(root) + guest_path) if guest_path.startswith("/") else root / guest_path
            if candidate.is_file():
                return candidate
        p = Path(guest_path)
        return p if p.is_file() else None

    def _load(self, guest_path: str) -> None:
        if guest_path in self._symbols:
            return
        starts: list[int] = []
        entries: list[tuple[int, str]] = []
        segments: list[tuple[int, int, int]] = []
        host = self._host_file(guest_path)
        if host is not None:
            seen: dict[int, tuple[int, str]] = {}
            for dynamic in ([], ["-D"]):
                done = subprocess.run([tool("llvm-nm"), *dynamic, "-C", "-S", "--defined-only", str(host)],
                                      capture_output=True, text=True, check=False)
                for line in done.stdout.splitlines():
                    parts = line.split(" ", 3)
                    if len(parts) == 4 and parts[2].lower() in ("t", "w"):
                        addr, size = int(parts[0], 16), int(parts[1], 16)
                        if size and addr not in seen:
                            seen[addr] = (size, parts[3])
            for addr in sorted(seen):
                starts.append(addr)
                entries.append(seen[addr])
            done = subprocess.run([tool("llvm-readelf"), "-lW", str(host)], capture_output=True, text=True,
                                  check=False)
            for line in done.stdout.splitlines():
                parts = line.split()
                if parts and parts[0] == "LOAD":
                    segments.append((int(parts[1], 16), int(parts[2], 16), int(parts[4], 16)))
        self._symbols[guest_path] = (starts, entries)
        self._segments[guest_path] = segments

    def locate(self, vaddr: int) -> tuple[str, str]:
        i = bisect_right(self.starts, vaddr) - 1
        if i < 0 or vaddr >= self.maps[i].end:
            return "[anonymous]", "?"
        m = self.maps[i]
        self._load(m.path)
        file_offset = vaddr - m.start + m.offset
        elf_addr = file_offset
        for off, va, filesz in self._segments[m.path]:
            if off <= file_offset < off + filesz:
                elf_addr = file_offset - off + va
                break
        starts, entries = self._symbols[m.path]
        j = bisect_right(starts, elf_addr) - 1
        name = "?"
        if j >= 0 and elf_addr < starts[j] + entries[j][0]:
            name = entries[j][1]
        return Path(m.path).name, name


# ---- the whole analysis -----------------------------------------------------------------------

STRING_BYTES_PER_CYCLE = 32  # rep movs/stos as a streaming copy/fill from L1 (Zen 4: 32 B stores a cycle)
_REP = re.compile(r"^rep[a-z]*\s+(movs|stos|lods|scas|cmps)([bwlq])\b")


def _rep_string_cycles(region: list[str]) -> float | None:
    """Cycles for one iteration of a lone rep-prefixed string instruction (None if it is not one)."""
    m = _REP.match(region[0])
    if not m:
        return None
    return {"b": 1, "w": 2, "l": 4, "q": 8}[m.group(2)] / STRING_BYTES_PER_CYCLE


@dataclass
class Analysis:
    instructions: int
    cycles: float
    modeled_blocks: int
    blocks: int
    coverage: float                # share of executed instructions in modeled blocks
    undecoded_share: float         # share of executed instructions llvm-mc could not decode
    rejected_share: float          # share llvm-mca rejected
    string_share: float            # x86 rep-string iterations, charged at STRING_BYTES_PER_CYCLE
    rejected: list[str]
    fmla: int                      # vector FMLA executed (aarch64; 0 elsewhere)
    by_file: dict[str, dict[str, float]]
    by_symbol: dict[str, dict[str, float]]
    mcpu: str


def analyse(window: Window, maps: list[Mapping], roots: list[Path], arch: str, mcpu: str,
            coverage: float = 0.999, max_blocks: int = 30000) -> Analysis:
    total = sum(b.executed_instructions for b in window.blocks)
    if total == 0:
        raise ModelError("the window holds no executed instructions")
    hot: list[Block] = []
    acc = 0
    for b in window.blocks:
        if acc >= coverage * total or len(hot) >= max_blocks:
            break
        hot.append(b)
        acc += b.executed_instructions
    texts = disassemble({e for b in hot for e in b.encodings}, arch)
    regions = [[line for e in b.encodings if e in texts for line in texts[e].split("\n")] for b in hot]
    # x86 rep-prefixed string instructions: qemu runs (and counts) one iteration per execution;
    # llvm-mca would charge the whole microcoded instruction (100 cycles on Zen 4) each time
    string_cost = {i: _rep_string_cycles(r) for i, r in enumerate(regions) if len(r) == 1}
    string_cost = {i: c for i, c in string_cost.items() if c is not None}
    for i in string_cost:
        regions[i] = []
    costs = run_mca(regions, arch, mcpu)
    undecoded = rejected = strings = 0
    modeled_cycles = 0.0
    block_cycles: list[float] = []
    for i, b in enumerate(hot):
        missing_decode = sum(1 for e in b.encodings if e not in texts)
        missing_mca = len(regions[i]) - costs.per_block[i].modeled_instructions
        undecoded += missing_decode * b.executions
        rejected += missing_mca * b.executions
        per_exec = costs.per_block[i].cycles_per_execution + missing_decode + missing_mca
        if i in string_cost:
            per_exec = string_cost[i]
            strings += b.executions
        block_cycles.append(per_exec * b.executions)
        modeled_cycles += per_exec * b.executions
    cpi = modeled_cycles / acc
    cold = window.blocks[len(hot):]
    cycles = modeled_cycles + cpi * sum(b.executed_instructions for b in cold)

    sym = Symbolizer(maps, roots)
    def counters() -> dict[str, float]:
        return {"instructions": 0, "cycles": 0.0, "fmla": 0}

    by_file: dict[str, dict[str, float]] = defaultdict(counters)
    by_symbol: dict[str, dict[str, float]] = defaultdict(counters)
    fmla_total = 0
    for i, b in enumerate(window.blocks):
        c = block_cycles[i] if i < len(hot) else cpi * b.executed_instructions
        # hot blocks by llvm-mc's text (what llvm-mca modeled), the cold rest by qemu's
        fmla = b.executions * count_fmla(regions[i] if i < len(hot) else b.qemu_disas, arch)
        fmla_total += fmla
        fname, func = sym.locate(b.vaddr)
        for entry in (by_file[fname], by_symbol[f"{fname}: {func}"]):
            entry["instructions"] += b.executed_instructions
            entry["cycles"] += c
            entry["fmla"] += fmla
    return Analysis(
        instructions=total, cycles=cycles, modeled_blocks=len(hot), blocks=len(window.blocks),
        coverage=acc / total, undecoded_share=undecoded / total, rejected_share=rejected / total,
        string_share=strings / total,
        rejected=sorted(costs.rejected), fmla=fmla_total, by_file=dict(by_file), by_symbol=dict(by_symbol),
        mcpu=costs.mcpu)


def summarize(analysis: Analysis, runs: int, top: int = 40) -> dict[str, Any]:
    """Per-inference figures (the window held ``runs`` inferences) for the JSON report."""
    def per_run(d: dict[str, float]) -> dict[str, float]:
        return {"instructions": round(d["instructions"] / runs), "cycles": round(d["cycles"] / runs),
                "fmla": round(d["fmla"] / runs), "share_of_cycles": round(d["cycles"] / analysis.cycles, 4)}

    files = sorted(analysis.by_file.items(), key=lambda kv: -kv[1]["cycles"])
    symbols = sorted(analysis.by_symbol.items(), key=lambda kv: -kv[1]["cycles"])[:top]
    return {
        "instructions": round(analysis.instructions / runs),
        "cycles": round(analysis.cycles / runs),
        "fmla": round(analysis.fmla / runs),
        "ipc": round(analysis.instructions / analysis.cycles, 3),
        "blocks_executed": analysis.blocks,
        "blocks_modeled": analysis.modeled_blocks,
        "modeled_share_of_instructions": round(analysis.coverage, 5),
        "undecoded_share_of_instructions": round(analysis.undecoded_share, 6),
        "rejected_by_mca_share_of_instructions": round(analysis.rejected_share, 6),
        "rejected_by_mca": analysis.rejected,
        "rep_string_share_of_instructions": round(analysis.string_share, 6),
        "by_file": {k: per_run(v) for k, v in files},
        "by_symbol": {k: per_run(v) for k, v in symbols},
    }
