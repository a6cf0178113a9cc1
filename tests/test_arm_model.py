"""benchmarks/arm_model.py, the ARM cost model: qemu TCG plugin trace -> llvm-mca cycles.

The fast tests check the analysis half on a hand-made trace (a known loop) and the script's usage
errors. The slow test runs the reduced form (--quick: MobileNet v1 and C=G=8, one counted inference
each, on the Cortex-A72 model) twice and checks the JSON and that the figures repeat exactly. It
needs root, Debian's qemu-user (dynamic qemu-aarch64) and llvm-19, which .ci/run installs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _prereq import missing_prerequisite

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "benchmarks" / "arm_model.py"
LLVM_MCA = Path("/usr/lib/llvm-19/bin/llvm-mca")
sys.path.insert(0, str(PROJECT / "benchmarks"))


def _need_llvm() -> None:
    if not LLVM_MCA.exists():
        missing_prerequisite("llvm-19 (llvm-mca, llvm-mc) is not installed")


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=PROJECT)


# A loop of 8 independent FMLA (one block, executed 1000 times) and a cold block; the encodings are
# fmla v0.4s..v7.4s, v8.4s, v9.s[0] / subs x0, x0, #1 / b.ne back, then ret.
_FMLA = [f"{0x4F891100 + i:08x}" for i in range(8)]
_LOOP = [*_FMLA, "f1000400", "54fffee1"]


def _le(word: str) -> str:
    return "".join(reversed([word[i:i + 2] for i in range(0, 8, 2)]))


def _trace(path: Path) -> None:
    lines = [f"B 400000 1000 {len(_LOOP)}", *[f"I {_le(w)} x" for w in _LOOP],
             "B 400100 1 1", f"I {_le('d65f03c0')} ret", "B 400200 1 1", "I ffffffff garbage",
             f"E 3 {1000 * len(_LOOP) + 2}"]
    path.write_text("\n".join(lines) + "\n")


def test_known_loop_models_at_fp_throughput(tmp_path: Path) -> None:
    """8 independent 128-bit FMLA per iteration: 8 cycles on the A72 model (one FMLA fills both FP
    pipes: 4 MAC per cycle), 4 on Neoverse-N1 (8 MAC per cycle); the undecodable word is counted,
    not hidden."""
    _need_llvm()
    from mca_model import analyse, read_window

    _trace(tmp_path / "t.blocks")
    window = read_window(tmp_path / "t.blocks")
    assert window.instructions == 10002 and len(window.blocks) == 3
    a72 = analyse(window, [], [], "aarch64", "cortex-a72", coverage=1.0)
    n1 = analyse(window, [], [], "aarch64", "neoverse-n1", coverage=1.0)
    assert a72.instructions == 10002
    per_iter_a72 = (a72.cycles - 2) / 1000  # minus ret and garbage at about 1 cycle each
    per_iter_n1 = (n1.cycles - 2) / 1000
    assert 7.5 <= per_iter_a72 <= 9.5, per_iter_a72
    assert 3.5 <= per_iter_n1 <= 5.0, per_iter_n1
    assert a72.undecoded_share == pytest.approx(1 / 10002)
    # the 8 vector FMLA of each iteration are counted; the subs, b.ne, ret and garbage are not
    assert a72.fmla == n1.fmla == 8000
    assert sum(v["fmla"] for v in n1.by_symbol.values()) == 8000


def test_fmla_count_takes_vector_fmla_only() -> None:
    """Vector FMLA of any arrangement, by element or not, in llvm-mc's or qemu's spelling; not the
    scalar by-element form, other multiplies, or x86 (no pattern there)."""
    from mca_model import count_fmla

    texts = ["fmla v0.4s, v8.4s, v9.s[0]", "fmla\tv1.4s, v2.4s, v3.4s", "FMLA V4.8H, V5.8H, V6.H[7]",
             "fmla s0, s1, v2.s[1]", "fmul v0.4s, v1.4s, v2.4s", "fmadd s0, s1, s2, s3",
             "fmlal v0.4s, v1.4h, v2.4h"]
    assert count_fmla(texts, "aarch64") == 3
    assert count_fmla(texts, "x86_64") == 0


def test_kernel_tables_show_the_loss_over_the_fmla_bound() -> None:
    """Per kernel function: FMLA-bound cycles (FMLA / FMLA per cycle) and the cycles over them, and a
    second table ordered by that loss; the library's totals in its heading."""
    from arm_model import _kernel_tables, fmla_per_cycle

    lib = "libcondense_deploy_ops.so"
    row = {"by_file": {lib: {"cycles": 30e6, "fmla": 40e6}},
           "by_symbol": {f"{lib}: big": {"instructions": 40e6, "cycles": 20e6, "fmla": 36e6,
                                         "share_of_cycles": 0.5},
                         f"{lib}: lossy": {"instructions": 8e6, "cycles": 10e6, "fmla": 4e6,
                                           "share_of_cycles": 0.25},
                         "libc.so.6: memcpy": {"instructions": 1e6, "cycles": 1e6, "fmla": 0,
                                               "share_of_cycles": 0.02}}}
    assert fmla_per_cycle(8) == 2 and fmla_per_cycle(4) == 1
    text = "\n".join(_kernel_tables("m", row, fmla_per_cycle(8)))
    assert "| `big` | 20.0 M | 50.0 % | 2.00 | 18.0 M | 2.0 M (10 %) |" in text
    assert "all kernels: 30.0 M cycles, FMLA bound 20.0 M" in text
    losses = text.split("largest losses")[1]
    assert losses.index("`lossy` | 10.0 M | 2.0 M | 8.0 M (80 %)") < losses.index("`big`")
    assert "memcpy" not in text
    assert _kernel_tables("m", {"by_file": {}, "by_symbol": {"libc.so.6: memcpy": {}}}, 2) == []
    # no FMLA counted (the x86 calibration): the hottest functions without the bound's columns
    for v in row["by_symbol"].values():
        v["fmla"] = 0
    text = "\n".join(_kernel_tables("m", row, 2))
    assert "| `big` | 20.0 M | 50.0 % | 2.00 |" in text
    assert "FMLA" not in text and "largest losses" not in text


# Two independent accumulator chains in one loop: fmla v0 / fmla v1 (each on its own accumulator),
# subs, b.ne. Whole, the chains overlap; cut in two and each half run back to back with itself, each
# chain's latency is paid in turn, so a page split read without joining costs about twice as much.
_TWO_CHAINS = [("4f891100", "fmla v0.4s, v8.4s, v9.s[0]"), ("4f891101", "fmla v1.4s, v8.4s, v9.s[0]"),
               ("f1000400", "subs x0, x0, #1"), ("54ffffa1", "b.ne #-0xc")]


def _blocks_trace(path: Path, blocks: list[tuple[int, int, list[tuple[str, str]]]]) -> None:
    lines = []
    for vaddr, executions, insns in blocks:
        lines.append(f"B {vaddr:x} {executions} {len(insns)}")
        lines += [f"I {_le(word)} {text}" for word, text in insns]
    total = sum(executions * len(insns) for _, executions, insns in blocks)
    path.write_text("\n".join([*lines, f"E {len(blocks)} {total}"]) + "\n")


def test_block_split_at_a_page_boundary_is_modeled_as_one(tmp_path: Path) -> None:
    """qemu ends a block at a 4 KB page: the loop cut at 0x401000 reads as one block, at the same
    cycles as the loop laid out inside one page, and not at the cost of its halves."""
    _need_llvm()
    from mca_model import Block, Window, analyse, read_window

    _blocks_trace(tmp_path / "whole.blocks", [(0x400100, 1000, _TWO_CHAINS)])
    _blocks_trace(tmp_path / "split.blocks",
                  [(0x400ffc, 1000, _TWO_CHAINS[:1]), (0x401000, 1000, _TWO_CHAINS[1:])])
    whole, split = read_window(tmp_path / "whole.blocks"), read_window(tmp_path / "split.blocks")
    assert [(b.vaddr, b.executions, len(b.encodings)) for b in split.blocks] == [(0x400ffc, 1000, 4)]
    assert split.blocks[0].encodings == whole.blocks[0].encodings
    joined = analyse(split, [], [], "aarch64", "cortex-a72", coverage=1.0).cycles
    assert joined == analyse(whole, [], [], "aarch64", "cortex-a72", coverage=1.0).cycles
    words = whole.blocks[0].encodings
    halves = [Block(0x400ffc, 1000, words[:1], []), Block(0x401000, 1000, words[1:], [])]
    unjoined = analyse(Window(halves, split.instructions), [], [], "aarch64", "cortex-a72",
                       coverage=1.0).cycles
    assert unjoined > 1.5 * joined, (unjoined, joined)


def test_page_split_is_joined_only_when_it_is_certain(tmp_path: Path) -> None:
    """Not joined: different executions, a first block ending in a branch, a boundary that is not a
    page's, two translations starting at the boundary."""
    from mca_model import Block, join_page_splits, read_window

    head, tail = _TWO_CHAINS[:1], _TWO_CHAINS[1:]
    cases = {
        "executions": [(0x400ffc, 1000, head), (0x401000, 999, tail)],
        "branch": [(0x400ff8, 1000, [*head, ("14000010", "b #0x40")]), (0x401000, 1000, tail)],
        "not a page": [(0x400f7c, 1000, head), (0x400f80, 1000, tail)],
        "two starts": [(0x400ffc, 1000, head), (0x401000, 500, tail), (0x401000, 500, tail[:2])],
    }
    for name, blocks in cases.items():
        _blocks_trace(tmp_path / "t.blocks", blocks)
        window = read_window(tmp_path / "t.blocks")
        assert len(window.blocks) == len(blocks), name
    # code spanning three "pages" of 16 bytes joins into one block, in order
    words = [w for w, _ in _TWO_CHAINS]
    chain = [Block(0x40000c, 7, words[:1], ["fmla"]), Block(0x400010, 7, words * 1, ["fmla"] * 4),
             Block(0x400020, 7, words[:2], ["fmla"] * 2)]
    chain[1].qemu_disas[-1] = "nop"
    joined = join_page_splits(list(reversed(chain)), page=16)
    assert [(b.vaddr, b.encodings) for b in joined] == [(0x40000c, words[:1] + words + words[:2])]


def test_a_loop_cut_by_a_page_joins_its_head_and_its_prologue_each_with_the_rest() -> None:
    """The loop's head (run 990 times) and the prologue falling into it (10 times) both end at the
    page; the tail (1000 times) starts there: each ender gets its own copy of the tail. Executed
    instructions are unchanged. Counts that do not add up are left alone."""
    from mca_model import Block, join_page_splits

    words = [w for w, _ in _TWO_CHAINS]
    prologue = Block(0x400ff8, 10, words[:2], ["mov", "fmla"])
    head = Block(0x400ffc, 990, words[:1], ["fmla"])
    tail = Block(0x401000, 1000, words[1:], ["fmla"] * (len(words) - 1))
    joined = join_page_splits([prologue, head, tail])
    assert sorted((b.vaddr, b.executions, b.encodings) for b in joined) == [
        (0x400ff8, 10, words[:2] + words[1:]), (0x400ffc, 990, words)]
    executed = sum(b.executed_instructions for b in (prologue, head, tail))
    assert sum(b.executed_instructions for b in joined) == executed
    tail.executions = 1001
    assert len(join_page_splits([prologue, head, tail])) == 3


def test_truncated_trace_is_one_clear_error(tmp_path: Path) -> None:
    from mca_model import ModelError, read_window

    path = tmp_path / "t.blocks"
    path.write_text("B 400000 1 1\nI d65f03c0 ret\n")
    with pytest.raises(ModelError, match="no end line"):
        read_window(path)


def test_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("--core", "cortex-a72", "--models", "resnet50", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: unknown model(s) resnet50; choose from mobilenet_v1, condensenet74_c8g8, condensenet74_c4g4, "
        "condensenet74_c8g8_fp16, condensenet74_c4g4_fp16"]


def test_unknown_core_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("--core", "cortex-a53", "--out", str(tmp_path))
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_refuses_to_overwrite_results_without_force(tmp_path: Path) -> None:
    (tmp_path / "arm_model_neoverse-n1.json").write_text("{}")
    done = _run("--core", "neoverse-n1", "--out", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("Error: ") and "--force" in done.stderr
    assert (tmp_path / "arm_model_neoverse-n1.json").read_text() == "{}"


@pytest.mark.slow
def test_quick_model_is_well_formed_and_repeatable(tmp_path: Path) -> None:
    """The reduced form twice (the second time C=G=8 alone): same binaries and input, same figures.
    Guest addresses are fixed (no ASLR), so the counts repeat to a few instructions in 10^8."""
    if os.geteuid() != 0:
        missing_prerequisite("the emulated userland needs root (unshare -m, mount)")
    if shutil.which("qemu-aarch64") is None:
        missing_prerequisite("qemu-aarch64 (Debian's qemu-user) is not installed")
    _need_llvm()
    reports = []
    for attempt, models in (("a", "mobilenet_v1,condensenet74_c8g8"), ("b", "condensenet74_c8g8")):
        out = tmp_path / attempt
        done = _run("--core", "cortex-a72", "--quick", "--models", models, "--out", str(out), timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        reports.append(json.loads((out / "arm_model_cortex-a72.json").read_text()))
        markdown = (out / "arm_model_cortex-a72.md").read_text()
        assert "Modeled, not measured" in markdown and "caches" in markdown
    first, second = reports
    assert list(first["models"]) == ["mobilenet_v1", "condensenet74_c8g8"]
    for key, row in first["models"].items():
        assert list(row)[:3] == ["instructions", "cycles", "ratio"]
        assert row["instructions"] > 100_000_000 and row["cycles"] > 50_000_000, key
        assert row["modeled_share_of_instructions"] >= 0.99
        assert row["undecoded_share_of_instructions"] < 0.001
    assert first["models"]["mobilenet_v1"]["ratio"] == 1.0
    assert 0.2 < first["models"]["condensenet74_c8g8"]["ratio"] < 2.0
    blocks = first["models"]["condensenet74_c8g8"]["dense_blocks"]
    assert 5 < blocks["percent_of_peak"] <= 100
    assert any(k.startswith("libcondense_deploy_ops.so: ") and "?" not in k
               for k in first["models"]["condensenet74_c8g8"]["by_symbol"])
    a, b = first["models"]["condensenet74_c8g8"], second["models"]["condensenet74_c8g8"]
    assert b["instructions"] == pytest.approx(a["instructions"], rel=1e-4)
    assert b["cycles"] == pytest.approx(a["cycles"], rel=1e-4)
    peak_a, peak_b = a["dense_blocks"]["percent_of_peak"], b["dense_blocks"]["percent_of_peak"]
    assert peak_b == pytest.approx(peak_a, abs=0.1)
