"""What a user meets while ``train`` runs: --threads, Ctrl-C (exit 130, and advice that works), and a
progress bar that neither runs into the log lines on a terminal nor leaves stray lines in a pipe."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _cifar_train import train_args

from condense_deploy.cli import cli
from condense_deploy.commands.progress import ProgressBars
from condense_deploy.runtime.machine import usable_cores
from condense_deploy.train import loop
from condense_deploy.train.synthetic import write_cifar_archive
from condense_deploy.train.threads import resolve_threads

SMALL = ["--stages", "2-2-2", "--growth", "4-8-8", "-b", "20", "--seed", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar_archive(root, train_per_class=10, test_per_class=5, seed=2, extracted=True)
    return root


def _train(savedir: Path, data_dir: Path, *extra: str) -> list[str]:
    return train_args(data_dir, savedir, *SMALL, *extra)


def _interrupted_run(runner, monkeypatch: pytest.MonkeyPatch, savedir: Path, data_dir: Path, wanted: int,
                     epochs: int) -> str:
    """``train`` of ``epochs`` epochs with Ctrl-C pressed in epoch index ``wanted``: checks it exits
    130 and returns its output (the interruption undone, for the run that follows)."""
    real = loop._Run.train_epoch

    def train_epoch(self: loop._Run, epoch: int):  # type: ignore[no-untyped-def]
        if epoch == wanted:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(loop._Run, "train_epoch", train_epoch)
    stopped = runner.invoke(cli, _train(savedir, data_dir, "--epochs", str(epochs)))
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.undo()
    return stopped.output


def test_ctrl_c_after_a_checkpoint_exits_130_and_its_advice_resumes(runner, monkeypatch, tmp_path: Path,
                                                                     data_dir: Path) -> None:
    savedir = tmp_path / "run"
    stopped = _interrupted_run(runner, monkeypatch, savedir, data_dir, 1, epochs=2)
    errors = [line for line in stopped.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: interrupted in epoch 2; the last checkpoint is {savedir}/save_models/"
                      "checkpoint_000.pth.tar; continue with: condense-deploy train --savedir "
                      f"{savedir} --resume"]
    assert (savedir / "save_models" / "latest.txt").is_file() and "Traceback" not in stopped
    advice = errors[0].split("continue with: condense-deploy ")[1].split()
    resumed = runner.invoke(cli, [*advice, "--data-dir", str(data_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "epoch   2/2" in resumed.output


def test_ctrl_c_before_the_first_checkpoint_says_to_start_again(runner, monkeypatch, tmp_path: Path,
                                                                 data_dir: Path) -> None:
    savedir = tmp_path / "run"
    stopped = _interrupted_run(runner, monkeypatch, savedir, data_dir, 0, epochs=1)
    assert ("Error: interrupted in epoch 1, before the first checkpoint: nothing to resume; run the same "
            "command again to start over") in stopped
    again = runner.invoke(cli, _train(savedir, data_dir, "--epochs", "1"))  # as the message says
    assert again.exit_code == 0, again.output


def test_threads_option_sets_and_restores_torch_threads(runner, monkeypatch, tmp_path: Path,
                                                        data_dir: Path) -> None:
    seen = []
    real = loop._Run.train_epoch

    def train_epoch(self: loop._Run, epoch: int):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return real(self, epoch)

    monkeypatch.setattr(loop._Run, "train_epoch", train_epoch)
    before = torch.get_num_threads()
    result = runner.invoke(cli, _train(tmp_path / "a", data_dir, "--epochs", "1", "--threads", "2"))
    assert result.exit_code == 0, result.output
    assert seen == [2] and "1 process(es) of 2 thread(s)" in result.output
    assert torch.get_num_threads() == before
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # torch is loaded here: its threads spin
    default = runner.invoke(cli, _train(tmp_path / "b", data_dir, "--epochs", "1"))
    assert default.exit_code == 0 and seen[-1] == 1
    bad = runner.invoke(cli, _train(tmp_path / "c", data_dir, "--threads", "999"))
    assert bad.exit_code == 2 and not (tmp_path / "c").exists()


def test_threads_default(monkeypatch) -> None:
    """OMP_NUM_THREADS, else every core (shared by the processes) where threads wait passively, else 1."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(None) == 3 and resolve_threads(2) == 2
    for junk in ("", "0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", junk)
        monkeypatch.setenv("OMP_WAIT_POLICY", "active")
        assert resolve_threads(None) == 1
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        assert resolve_threads(None) == usable_cores()
        assert resolve_threads(None, processes=usable_cores() * 2) == 1


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("active", "active")])
def test_train_asks_for_passive_waiting_before_torch_loads(given: str | None, expected: str) -> None:
    code = ("import os, sys\nfrom condense_deploy.train.threads import prefer_passive_waiting\n"
            "assert 'torch' not in sys.modules\nprefer_passive_waiting()\n"
            "print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_clears_the_bar_and_the_bar_is_drawn_again_below(monkeypatch, capsys) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bars = ProgressBars()
    bars("epoch 1/4", 2, 4)
    drawn = terminal.getvalue()
    assert "epoch 1/4" in drawn
    bars.echo("condensing: epoch 1 batch 2")
    after = terminal.getvalue()[len(drawn):]
    assert after.startswith("\r\033[K") and "epoch 1/4" in after  # cleared, then drawn again
    bars("epoch 1/4", 4, 4)
    bars.close()
    assert capsys.readouterr().out == "condensing: epoch 1 batch 2\n"


def test_piped_output_has_no_bar_lines(runner, tmp_path: Path, data_dir: Path) -> None:
    result = runner.invoke(cli, _train(tmp_path / "run", data_dir, "--epochs", "2"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not [line for line in lines if line.strip().startswith("epoch") and "val err" not in line], lines


def _read_all(fd: int, proc: subprocess.Popen, until: float) -> bytes:
    out = b""
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


@pytest.mark.slow
def test_on_a_terminal_bar_and_log_lines_never_share_a_line_and_sigint_exits_130(tmp_path: Path,
                                                                                 data_dir: Path) -> None:
    """A real terminal (a pty for stdout and stderr) and a real SIGINT after the first checkpoint."""
    main, child = pty.openpty()
    savedir = tmp_path / "run"
    args = [sys.executable, "-m", "condense_deploy", *_train(savedir, data_dir, "--epochs", "30")]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=child, stderr=child, close_fds=True,
                            env=env)
    os.close(child)
    out = b""
    deadline = time.monotonic() + 300
    while not (savedir / "save_models" / "latest.txt").is_file() and time.monotonic() < deadline:
        out += _read_all(main, proc, time.monotonic() + 1)
    proc.send_signal(signal.SIGINT)
    out += _read_all(main, proc, time.monotonic() + 120)
    assert proc.wait(timeout=60) == 130
    os.close(main)
    text = out.decode(errors="replace")
    # what the terminal shows: each line as left after carriage returns and clear-line sequences
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.replace("\r\n", "\n"))
    shown = [line.split("\r")[-1] for line in plain.split("\n")]
    logs = [line for line in shown if "val err" in line or line.startswith(("training ", "Error:"))]
    assert logs and all("%" not in line and "#" not in line for line in logs), shown
    assert any(line.startswith("Error: interrupted in epoch") and "--resume" in line for line in shown), shown
    # the default where train loads torch itself: every core, waiting passively
    assert any(f"1 process(es) of {usable_cores()} thread(s)" in line for line in shown), shown
