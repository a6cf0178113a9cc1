"""The fuzz target of our custom ops, in the slow tier: tests/_native_fuzz.py's malformed and random
valid DenseBlock / GroupedConv models against an AddressSanitizer + UndefinedBehaviorSanitizer build of
the libraries (``scripts/build-kernels.sh --sanitize``), bounded in cases and time. Fails on any
sanitizer report, crash, hang, a malformed model that runs, or a valid one that differs from numpy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _prereq import missing_prerequisite

REPO = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "_native_fuzz.py"
SECONDS = 150  # per seed: the whole target stays within a few minutes of CI
CASES = 800

pytestmark = pytest.mark.slow


def _runtime_library(name: str) -> str:
    path = subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    if not path or not Path(path).exists():
        missing_prerequisite(f"{name} not found (g++'s sanitizer runtime)")
    return str(Path(path).resolve())


def sanitizer_env() -> dict[str, str]:
    """libasan preloaded together with libstdc++ (libasan alone makes every C++ exception report a false
    "CHECK failed ... real___cxa_throw"); leaks are not errors (the interpreter keeps its own), any
    other report aborts the process."""
    preload = f"{_runtime_library('libasan.so')} {_runtime_library('libstdc++.so')}"
    return {**os.environ, "LD_PRELOAD": preload,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def _reported(stderr: str) -> bool:
    return any(mark in stderr for mark in ("ERROR: AddressSanitizer", "runtime error:", "SUMMARY: "))


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("g++") is None or shutil.which("cmake") is None:
        missing_prerequisite("needs g++ and cmake")
    out = tmp_path_factory.mktemp("asan")
    script = REPO / "scripts" / "build-kernels.sh"
    done = subprocess.run(["bash", str(script), "--sanitize", "--out", str(out)], capture_output=True,
                          text=True, timeout=3600)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("seed", [11, 12])
def test_fuzz_the_ops_under_sanitizers(sanitized: Path, seed: int) -> None:
    args = [sys.executable, str(DRIVER), "--library", str(sanitized / "libcondense_deploy_ops.so"),
            "--bench-library", str(sanitized / "libcondense_deploy_bench_ops.so"), "--seed", str(seed),
            "--cases", str(CASES), "--seconds", str(SECONDS)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, env=sanitizer_env(),
                              timeout=SECONDS + 120)
    except subprocess.TimeoutExpired as e:
        last = (e.stdout or b"").decode(errors="replace").strip().splitlines()[-1:] if e.stdout else []
        raise AssertionError(f"hang: no end within {SECONDS + 120} s; last started: {last}") from e
    lines = done.stdout.splitlines()
    started = [line for line in lines if line.startswith("case ")]
    assert not _reported(done.stderr), f"sanitizer report during {started[-1:]}:\n{done.stderr[-4000:]}"
    assert done.returncode == 0 and lines and lines[-1].startswith("done "), (
        f"exit {done.returncode} during {started[-1:]}:\n" + "\n".join(lines[-20:]) + done.stderr[-2000:])
    assert len(started) >= 100, lines[-1]  # the time bound did not cut the run to nothing


def test_the_harness_sees_a_sanitizer_report(tmp_path: Path) -> None:
    """A library with a deliberate heap overflow, loaded the same way: the report is seen."""
    source = tmp_path / "overflow.cc"
    source.write_text(textwrap.dedent("""
        #include <cstdlib>
        extern "C" int overflow(int i) { int* a = static_cast<int*>(std::malloc(4 * sizeof(int)));
                                          a[0] = 1; int v = a[i]; std::free(a); return v; }
    """))
    library = tmp_path / "liboverflow.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-O1", "-g", "-fsanitize=address,undefined", str(source), "-o",
                    str(library)], check=True)
    code = f"import ctypes; print(ctypes.CDLL({str(library)!r}).overflow(8))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=sanitizer_env(),
                          timeout=120)
    assert done.returncode != 0 and _reported(done.stderr), done.stderr[-2000:]
