"""The CLI shell: entry points, the error handler, torch-free import of the group."""

from __future__ import annotations

import subprocess
import sys

from condense_deploy.cli import cli


def test_list(runner) -> None:
    result = runner.invoke(cli, ["list", "condensenet74_c*"])
    assert result.exit_code == 0
    assert "condensenet74_c4g4" in result.output and "condensenet74_c8g8" in result.output


def test_unknown_command(runner) -> None:
    result = runner.invoke(cli, ["nope"])
    assert result.exit_code == 2


def test_python_m_and_script_agree() -> None:
    out = subprocess.run([sys.executable, "-m", "condense_deploy", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert "condense-deploy" in out


def test_group_import_leaves_torch_out() -> None:
    code = ("import sys, condense_deploy.cli, condense_deploy.architectures.registry; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
