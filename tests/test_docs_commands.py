"""The ``console`` blocks of README.md and docs/*.md, run as written, so the docs stay true.

Every ``$ condense-deploy ...`` line is run through the CLI in a working folder, and its output is
held to the lines the docs print under it: numbers may differ (timings, float noise, checksums), the
words may not, and without a ``...`` line the number of lines must match. ``{ ..., "key": value }``
abbreviates a JSON object: each key shown must be there with exactly that value. A line starting with
``Error:`` means the command must fail with that error.

Commands that need no files (the zoo) run in the fast suite. The rest need the docs' own training run
(the synthetic CIFAR archive and the ``runs/demo`` run that docs/export.md trains), made once for the
slow tier. Templates (``[--json]``, ``...``) and commands other than condense-deploy are not run.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from condense_deploy.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"


@dataclass
class Command:
    page: str
    line: int
    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        return shlex.split(self.text)[1:]

    @property
    def runnable(self) -> bool:
        return (self.text.startswith("condense-deploy ") and "[" not in self.text and "..." not in self.text
                and "|" not in self.text)

    @property
    def needs_files(self) -> bool:
        return any("/" in a or a.endswith((".onnx", ".tar", ".json")) for a in self.args)

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: $ {self.text}"


def console_commands(page: Path) -> list[Command]:
    """Each ``$ command`` of the page's console blocks with the lines printed under it."""
    commands: list[Command] = []
    inside = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            text = re.sub(r"\s{2,}#.*$", "", line[2:]).strip()
            commands.append(Command(page.relative_to(ROOT).as_posix(), number, text))
        elif commands and line.strip():
            commands[-1].expected.append(line)
    return commands


ALL = [c for page in PAGES for c in console_commands(page)]
RUNNABLE = [c for c in ALL if c.runnable]


def _pattern(expected: str) -> re.Pattern[str]:
    """Numbers and checksums may differ, ``...`` stands for anything; the rest must be as printed."""
    parts = re.split(r"(\.\.\.|…|\b[0-9a-f]{8,}\b|" + _NUMBER + ")", expected.strip())
    regex = "".join(".*" if p in ("...", "…") else _NUMBER if re.fullmatch(_NUMBER, p)
                    else "[0-9a-f]+" if re.fullmatch("[0-9a-f]{8,}", p) else re.escape(p) for p in parts if p)
    return re.compile(regex)


def check_output(command: Command, exit_code: int, output: str) -> None:
    """Hold what the command printed to what the docs print under it."""
    actual = [line.rstrip() for line in output.splitlines() if line.strip()]
    expected = command.expected
    failing = any(line.startswith("Error:") for line in expected)
    assert "Traceback" not in output, f"{command}\n{output}"
    assert (exit_code != 0) == failing, f"{command}: exit {exit_code}\n{output}"
    if failing:
        actual = [line for line in actual if line.startswith("Error:")]
    if len(expected) == 1 and expected[0].startswith("{ ...,"):
        data = json.loads(output)
        for key, value in re.findall(r'"(\w+)": ("[^"]*"|[\d.]+)', expected[0]):
            assert data.get(key) == json.loads(value), f"{command}: {key} is {data.get(key)!r}"
        return
    if not expected:
        return
    elided = any(line.strip() in ("...", "…") for line in expected)
    if not elided:
        assert len(actual) == len(expected), (f"{command}: the docs show {len(expected)} lines, it printed "
                                               f"{len(actual)}:\n" + "\n".join(actual))
    at = 0
    for line in expected:
        if line.strip() in ("...", "…"):
            continue
        pattern = _pattern(line)
        while at < len(actual) and not pattern.fullmatch(actual[at].strip()):
            assert elided, f"{command}: docs line\n  {line}\nprinted\n  {actual[at]}"
            at += 1
        assert at < len(actual), f"{command}: no printed line matches the docs line\n  {line}"
        at += 1


def _run(command: Command, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(cli, command.args)
    check_output(command, result.exit_code, result.output)


def test_the_docs_have_console_commands_to_run() -> None:
    assert len(RUNNABLE) >= 10, [str(c) for c in RUNNABLE]
    assert [c for c in RUNNABLE if not c.needs_files]


@pytest.mark.parametrize("command", [c for c in RUNNABLE if not c.needs_files], ids=str)
def test_docs_zoo_command(command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(command, tmp_path, monkeypatch)


def test_a_changed_line_count_is_caught() -> None:
    command = Command("x", 1, "condense-deploy list", ["a  1", "b  2"])
    with pytest.raises(AssertionError, match="show 2 lines, it printed 3"):
        check_output(command, 0, "a  1\nb  2\nc  3\n")
    check_output(command, 0, "a  7\nb  8.5\n")
    with pytest.raises(AssertionError):
        check_output(command, 0, "a  1\nB  2\n")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs' own set-up (docs/export.md): the synthetic archive in data/, a run in runs/demo."""
    root = tmp_path_factory.mktemp("docs")
    subprocess.run([sys.executable, "-c", "from condense_deploy.train.synthetic import write_cifar_archive; "
                    "write_cifar_archive('data')"], cwd=root, check=True)
    train = ("train --data cifar10 --data-dir data --savedir runs/demo --stages 2-2-2 --growth 8-8-8 "
             "--epochs 4 -b 50")  # docs/export.md's command
    subprocess.run([sys.executable, "-m", "condense_deploy", *train.split()], cwd=root, check=True,
                   capture_output=True)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted({c.page for c in RUNNABLE if c.needs_files}))
def test_docs_commands_on_the_docs_training_run(page: str, demo_run: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page's commands in order, in a copy of the run (a page's commands use each other's files)."""
    work = tmp_path / "work"
    shutil.copytree(demo_run, work)
    for command in [c for c in RUNNABLE if c.page == page]:
        inputs = [a for a in command.args if a.endswith((".tar", ".onnx")) and a != _output(command)]
        if any(not (work / a).exists() for a in inputs):
            continue  # another run's files (docs/train.md's digits runs): not made by this fixture
        _run(command, work, monkeypatch)


def _output(command: Command) -> str | None:
    args = command.args
    return args[args.index("-o") + 1] if "-o" in args[:-1] else None
