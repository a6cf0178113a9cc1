"""Killed writers: a SIGKILLed writer's temp file is swept by the next write to the
same target (its name holds the dead writer's pid); a live writer's is kept; SIGINT exits 130 and
leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from _clean import CLI, assert_clean_error, run_cli, temp_files
from _onnx_models import conv_net

from condense_deploy._fsutil import atomic_path, sweep_stale_temps, write_text


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_temp_of_a_dead_writer_is_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    dead = tmp_path / f".m.onnx.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".m.onnx.{os.getpid()}.def456.tmp"
    other = tmp_path / f".other.onnx.{_dead_pid()}.abc123.tmp"  # another target's: not ours to judge
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert not dead.exists() and live.exists() and other.exists()
    assert sweep_stale_temps(tmp_path / "other.onnx") == [other]


def test_temp_name_carries_the_writers_pid(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "x.bin") as tmp:
        assert tmp.name.startswith(f".x.bin.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"x")


def test_sigkilled_export_leaves_a_temp_file_that_the_next_write_removes(tmp_path: Path) -> None:
    """A real SIGKILL of ``export`` while it writes; then ``optimize`` to the same target sweeps it."""
    out = tmp_path / "d"
    out.mkdir()
    target = out / "m.onnx"
    proc = subprocess.Popen(
        [*CLI, "export", "condensenet50_cifar", "-o", str(target), "--optimize", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while not temp_files(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert temp_files(out), "the export never started writing (or finished before the kill)"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    leftovers = temp_files(out)
    assert leftovers and all(f".m.onnx.{proc.pid}." in name for name in leftovers)
    assert not target.exists()
    source = conv_net(tmp_path / "a.onnx")
    result = run_cli("optimize", str(source), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.is_file() and temp_files(out) == []


def test_sigint_during_export_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT) while export writes: exit 130, one line, no temp file, no target."""
    target = tmp_path / "m.onnx"
    proc = subprocess.Popen(
        [*CLI, "export", "condensenet50_cifar", "-o", str(target), "--optimize", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not temp_files(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert temp_files(tmp_path), "the export never started writing (or finished before the interrupt)"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    # 130, or killed by SIGINT after its one line (a shell shows both as status 130): in the full
    # suite the interrupted export has been seen to die of the signal while exiting, after the
    # error line and the clean-up
    assert_clean_error(
        subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
        (130, -signal.SIGINT),
        "interrupted",
    )
    assert not target.exists() and temp_files(tmp_path) == []
