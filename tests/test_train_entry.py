"""``python -m condense_deploy.train`` (the torchrun entry point) runs the CLI's ``train`` command
through the CLI's one error handler: one ``Error:`` line, exit 1 for a library error, 130 for
Ctrl-C, 2 for a usage error, and the missing-package message of the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import condense_deploy.train.loop as loop
from condense_deploy.cli import run_command

PROG = "python -m condense_deploy.train"


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Error:")]


def test_bad_data_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "condense_deploy.train", "--data", "cifar10",
                           "--data-dir", str(tmp_path / "none"), "--savedir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert len(_errors(done.stderr)) == 1 and "no data in" in done.stderr


def test_usage_error_exits_2_naming_this_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_command("train", PROG, ["--epochs", "0", "--savedir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"Usage: {PROG} [OPTIONS]" in err and len(_errors(err)) == 1


def _raising(error: BaseException) -> Any:
    def train(*args: Any, **kwargs: Any) -> Any:
        raise error
    return train


@pytest.mark.parametrize(("error", "code", "says"), [
    (KeyboardInterrupt(), 130, "Error: interrupted"),
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), 1,
     "Error: 'train' needs matplotlib"),
])
def test_interrupt_and_missing_package_as_in_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    error: BaseException, code: int, says: str,
) -> None:
    monkeypatch.setattr(loop, "train", _raising(error))
    with pytest.raises(SystemExit) as exit_info:
        run_command("train", PROG, ["--savedir", str(tmp_path / "run"), "--no-progress"])
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert _errors(err) == [line for line in err.splitlines() if line.strip()]
    assert err.startswith(says)


def test_the_cli_group_keeps_its_own_command(tmp_path: Path) -> None:
    """Running the command alone wraps a copy: the group's ``train`` callback is left as it was."""
    from condense_deploy.commands.train import train_command

    callback = train_command.callback
    with pytest.raises(SystemExit):
        run_command("train", PROG, ["--epochs", "0", "--savedir", str(tmp_path / "run")])
    assert train_command.callback is callback
