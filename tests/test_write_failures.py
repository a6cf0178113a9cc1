"""Writes that fail, are killed or race: one clean error, nothing half-written, nothing left behind.

Classes 3, 5 and 6 of issue 13: filesystem failures at write time (a folder that cannot be created, a
final rename that fails, ``bench --csv`` checked before measuring), a writer killed with SIGKILL (its
temp file is swept by the next write to the same target), and two concurrent writers without
``--force`` (exactly one wins, the other gets the usual "already exists" error). Plus writers that
write part of a file and then fail, for ``save_converted`` and the trainer's epoch checkpoints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from _ckpt_factory import converted_pair, tiny_config
from _clean import CLI, assert_clean_error, run_cli, temp_files
from _onnx_models import conv_net

from condense_deploy import _fsutil
from condense_deploy._fsutil import atomic_path, sweep_stale_temps, write_text
from condense_deploy.checkpoint import save_converted
from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------ class 5: killed writers


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
    assert_clean_error(
        subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), 130, "interrupted"
    )
    assert not target.exists() and temp_files(tmp_path) == []


# -------------------------------------------------------------- class 6: concurrent writers


def test_no_clobber_when_the_target_appears_during_the_write(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(CondenseDeployError, match="already exists"):  # noqa: PT012 - the race is the block
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("mine")
            target.write_text("theirs")  # another process won the race
    assert target.read_text() == "theirs" and temp_files(tmp_path) == []


@pytest.mark.parametrize("round_", range(2))
def test_two_concurrent_writers_without_force_exactly_one_wins(tmp_path: Path, round_: int) -> None:
    source = conv_net(tmp_path / "a.onnx", channels=16, size=32)
    target = tmp_path / "b.onnx"
    procs = [
        subprocess.Popen(
            [*CLI, "optimize", str(source), "-o", str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    assert len(winners) == 1 and len(losers) == 1, [r.stderr for r in results]
    assert_clean_error(losers[0], 1, "already exists (use --force to overwrite)")
    assert target.is_file() and temp_files(tmp_path) == []


# ---------------------------------------------------------- class 3: failures at write time


def _below_a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    return blocker


def test_output_below_a_regular_file_is_one_error(runner, tmp_path: Path) -> None:
    source = conv_net(tmp_path / "a.onnx")
    blocker = _below_a_file(tmp_path)
    result = runner.invoke(cli, ["optimize", str(source), "-o", str(blocker / "b.onnx")])
    assert_clean_error(result, 1, "is not a folder")
    assert blocker.read_text() == "a regular file"


def test_failing_final_rename_is_one_error_and_keeps_the_target(runner, tmp_path: Path, monkeypatch) -> None:
    """An immutable target (chattr +i needs root; simulated): os.replace fails at the very end."""
    source = conv_net(tmp_path / "a.onnx")
    target = tmp_path / "b.onnx"
    target.write_bytes(b"previous")

    def immutable(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_fsutil.os, "replace", immutable)
    result = runner.invoke(cli, ["optimize", str(source), "-o", str(target), "--force"])
    assert_clean_error(result, 1, str(target), "cannot write", "Operation not permitted")
    assert target.read_bytes() == b"previous" and temp_files(tmp_path) == []


def test_train_savedir_that_cannot_be_created_fails_first(runner, tmp_path: Path) -> None:
    blocker = _below_a_file(tmp_path)
    before = sorted(os.listdir(tmp_path))
    result = runner.invoke(
        cli,
        [
            "train",
            "--savedir",
            str(blocker / "run"),
            "--data",
            "cifar10",
            "--data-dir",
            str(tmp_path / "no-data"),
            "--no-progress",
        ],
    )
    assert_clean_error(result, 1, "cannot create the --savedir folder", "is not a folder")
    assert sorted(os.listdir(tmp_path)) == before


def test_bench_csv_is_checked_before_measuring(runner, tmp_path: Path, monkeypatch) -> None:
    import condense_deploy.commands.bench as bench_command

    source = conv_net(tmp_path / "a.onnx")
    blocker = _below_a_file(tmp_path)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("benchmarked although --csv cannot be written")

    monkeypatch.setattr(bench_command, "run_bench", never)
    result = runner.invoke(cli, ["bench", str(source), "--runs", "2", "--csv", str(blocker / "r.csv")])
    assert_clean_error(result, 1, "is not a folder")


# ------------------------------------------- partial writes: a writer that writes, then fails


def _partial_then_fail(*args: object, **kwargs: object) -> None:
    destination = args[1]
    with open(destination, "wb") as handle:  # type: ignore[arg-type]
        handle.write(b"PK\x03\x04 half a checkpoint")
    raise OSError(28, "No space left on device")


def test_save_converted_partial_write_keeps_previous_file(tmp_path: Path, monkeypatch) -> None:
    _, converted = converted_pair(tiny_config())
    path = tmp_path / "out.pth.tar"
    path.write_bytes(b"previous")
    monkeypatch.setattr(torch, "save", _partial_then_fail)
    with pytest.raises(CondenseDeployError, match="out.pth.tar: cannot write .No space left"):
        save_converted(converted, path, force=True)
    assert path.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["out.pth.tar"]


def test_epoch_checkpoint_partial_write_keeps_the_latest(tmp_path: Path, monkeypatch) -> None:
    from condense_deploy.train.checkpoints import CheckpointPaths, load_training_checkpoint, save_epoch

    paths = CheckpointPaths(tmp_path / "run")
    state = {"epoch": 0, "state_dict": {"w": torch.ones(2)}, "optimizer": {}, "best_prec1": 50.0}
    first = save_epoch(paths, state, is_best=True)
    best_before = paths.best.read_bytes()
    monkeypatch.setattr(torch, "save", _partial_then_fail)
    with pytest.raises(CondenseDeployError, match="checkpoint_001.pth.tar: cannot write .No space left"):
        save_epoch(paths, {**state, "epoch": 1}, is_best=True)
    monkeypatch.undo()
    assert paths.latest_checkpoint() == first
    assert load_training_checkpoint(first)["epoch"] == 0
    assert paths.best.read_bytes() == best_before
    assert not paths.epoch_file(1).exists() and temp_files(paths.models) == []


@pytest.mark.slow
def test_two_concurrent_exports_exactly_one_wins(tmp_path: Path) -> None:
    """The issue's case: two exports to the same new path at once, without --force."""
    target = tmp_path / "m.onnx"
    procs = [
        subprocess.Popen(
            [*CLI, "export", "condensenet50_cifar", "-o", str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    assert sorted(r.returncode for r in results) == [0, 1], [r.stderr for r in results]
    assert_clean_error(
        next(r for r in results if r.returncode), 1, "already exists (use --force to overwrite)"
    )
    assert target.is_file() and temp_files(tmp_path) == []
