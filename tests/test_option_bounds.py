"""Fuzz every command's numeric options with values no run can have (0, -1, nan, inf, huge): each gives
one ``Error:`` line and exit 1 or 2, no traceback, and creates nothing."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from _cifar_train import train_args
from _clean import assert_clean_error

from condense_deploy.cli import cli
from condense_deploy.commands.options import FiniteFloat

BOUNDARY = ["0", "-1", "nan", "inf", "-inf", "1e400", "99999999999999999999"]

# options that take numbers as text (lists, "all", "dynamic")
TEXT_NUMERIC = {
    ("bench", "threads"),
    ("table", "threads"),
    ("train", "stages"),
    ("train", "growth"),
    ("export", "batch"),
}

# arguments that make each command fail fast (and cleanly) once the fuzzed option is accepted
BASE = {
    "train": ["--savedir", "run", "--data", "cifar10", "--data-dir", "no-data", "--no-progress"],
    "eval": ["missing.pth"],
    "export": ["missing.pth", "-o", "x.onnx"],
    "inspect": ["missing.pth"],
    "verify": ["missing.onnx", "missing.pth"],
    "optimize": ["missing.onnx", "-o", "x.onnx"],
    "quantize": ["missing.onnx", "-o", "x.onnx", "--calibration-data", "missing"],
    "bench": ["missing.onnx"],
    "predict": ["missing.onnx", "missing.jpg"],
    "table": ["--out-dir", "blocker/results", "--models", "mobilenet_v1"],
}


def _is_numeric(command: str, option: click.Option) -> bool:
    return (
        isinstance(option.type, (click.types.IntParamType, click.types.FloatParamType, FiniteFloat))
        or (command, option.name) in TEXT_NUMERIC
    )


def _numeric_options() -> list[tuple[str, str]]:
    ctx = click.Context(cli)
    found = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and _is_numeric(name, param):
                found.append((name, max(param.opts, key=len)))
    return found


OPTIONS = _numeric_options()


def test_every_number_is_bounded() -> None:
    """No numeric option takes a bare int or float: each has a range (and floats refuse nan/inf)."""
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag:
                continue
            if isinstance(param.type, click.types.FloatParamType):
                raise AssertionError(f"{name} {param.opts}: a bare float (use FiniteFloat)")
            if isinstance(param.type, click.types.IntParamType):
                assert (
                    isinstance(param.type, click.IntRange)
                    and param.type.min is not None
                    and param.type.max is not None
                ), f"{name} {param.opts}: an unbounded int"
    assert {c for c, _ in OPTIONS} >= set(BASE), "a command with numeric options has no fuzz arguments"


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[f"{c}{o}" for c, o in OPTIONS])
def test_boundary_values(runner, tmp_path: Path, monkeypatch, command: str, option: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("a regular file")
    before = sorted(os.listdir(tmp_path))
    for value in BOUNDARY:
        result = runner.invoke(cli, [command, option, value, *BASE[command]])
        assert_clean_error(result, (1, 2))
        assert sorted(os.listdir(tmp_path)) == before, (command, option, value)


def test_values_no_model_can_have_are_usage_errors(runner, tmp_path: Path, monkeypatch) -> None:
    """Values no model can have: usage errors (exit 2) naming the option, before any folder is made."""
    monkeypatch.chdir(tmp_path)
    cases = [
        ["train", "--lr", "-1"],
        ["train", "--lr", "nan"],
        ["train", "--momentum", "-1"],
        ["train", "--weight-decay", "-1"],
        ["train", "--condense-factor", "0"],
        ["train", "--group-1x1", "0"],
        ["train", "--growth", "0-0-0"],
        ["train", "--stages", "0-0-0"],
        ["train", "--bottleneck", "0"],
        ["export", "--num-classes", "0"],
        ["inspect", "--num-classes", "-1"],
        ["inspect", "--num-classes", "0"],
        ["bench", "--duration", "inf"],
        ["bench", "--runs", "0"],
        ["bench", "--threads", "0"],
        ["bench", "--threads", "-1"],
        ["bench", "--threads", "nan"],
        ["bench", "--threads", "1,,2"],
        ["bench", "--threads", "2,2"],
        ["bench", "--threads", "999"],
        ["table", "--threads", "1,,2"],
    ]
    for command, option, value in cases:
        result = runner.invoke(cli, [command, option, value, *BASE[command]])
        assert_clean_error(result, 2, option)
    assert os.listdir(tmp_path) == []


def test_architecture_combinations_are_checked_before_any_folder(runner, tmp_path: Path) -> None:
    """Each number in range but the combination impossible: the shared validator says which, no folder."""
    from condense_deploy.train.synthetic import write_cifar_archive

    data = write_cifar_archive(tmp_path / "data", train_per_class=1, test_per_class=1, extracted=True)
    run = tmp_path / "run"
    impossible = ["--stages", "2-2-2", "--growth", "4-8-8", "--group-1x1", "3"]
    result = runner.invoke(cli, train_args(data, run, *impossible, "--no-progress"))
    assert_clean_error(result, 1, "divisible by --group-1x1 3")
    assert not run.exists()


def test_sizes_that_cannot_fit_are_refused_before_any_work(runner, tmp_path: Path, monkeypatch) -> None:
    """Each size option is checked against the memory it needs (here: a machine with 20 MB free) with
    one line naming the size, before a file or folder is made; an absurd export batch is a usage error."""
    from _onnx_models import conv_net

    from condense_deploy.runtime import memory
    from condense_deploy.train.synthetic import write_cifar_archive

    model = conv_net(tmp_path / "m.onnx", size=32)
    images = tmp_path / "images"
    write_cifar_archive(images, train_per_class=1, test_per_class=2, seed=0)
    assert_clean_error(runner.invoke(cli, ["export", "condensenet50_cifar", "-o", str(tmp_path / "x.onnx"),
                                           "--batch", "100000"]), 2, "--batch")
    monkeypatch.setattr(memory, "available_bytes", lambda: 20_000_000)
    before = sorted(os.listdir(tmp_path))
    cases = [
        (["export", "condensenet50_cifar", "-o", str(tmp_path / "x.onnx"), "--batch", "4096"],
         "export at batch 4096 needs about"),
        (["bench", str(model), "--batch", "4096", "--runs", "1"], "batch 4096 of 32x32 images needs about"),
        (["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calibration-data", str(images),
          "--calibration-size", "100000"], "100256 images of 32x32 needs about"),
    ]
    for args, fragment in cases:
        assert_clean_error(runner.invoke(cli, args), 1, fragment, "20 MB available")
        assert sorted(os.listdir(tmp_path)) == before, args


def test_available_memory_is_read() -> None:
    from condense_deploy.runtime.memory import available_bytes

    free = available_bytes()
    assert free is not None and free > 10_000_000
