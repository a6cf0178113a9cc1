"""What every failing command must look like: one ``Error:`` line, the right exit code, no traceback,
no temp file left beside the target, and the target untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "condense_deploy"]


def output_of(result: Any) -> str:
    """CliRunner result or CompletedProcess: stdout and stderr together."""
    if isinstance(result, subprocess.CompletedProcess):
        return (result.stdout or "") + (result.stderr or "")
    return result.output


def code_of(result: Any) -> int:
    return result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code


def assert_clean_error(result: Any, code: int | tuple[int, ...] = 1, *fragments: str) -> str:
    """Exactly one ``Error:`` line containing ``fragments``, exit ``code``, no traceback; returns the line."""
    text = output_of(result)
    codes = code if isinstance(code, tuple) else (code,)
    assert code_of(result) in codes, f"exit status {code_of(result)}, expected {codes}:\n{text}"
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def temp_files(folder: Path) -> list[str]:
    """Our atomic writer's temp files (``.<name>.<pid>.<random>.tmp``) in ``folder``."""
    return sorted(n for n in os.listdir(folder) if n.startswith(".") and n.endswith(".tmp"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
