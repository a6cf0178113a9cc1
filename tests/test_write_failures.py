"""Filesystem failures at write time: a folder that cannot be created, a final
rename that fails, `bench --csv` checked before measuring; and writers that write part of a file and
then fail (save_converted, the trainer's epoch checkpoints): one clean error, the old file intact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from _ckpt_factory import converted_pair, tiny_config
from _clean import assert_clean_error, temp_files
from _onnx_models import conv_net

from condense_deploy import _fsutil
from condense_deploy.checkpoint import save_converted
from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError


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
