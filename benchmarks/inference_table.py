"""Regenerate this machine's committed reference table: the CondenseNet paper's Table 5 (inference
time) on this machine, written to ``benchmarks/results/<machine>.md/.csv/.json/.png``.

A thin wrapper over ``condense-deploy table`` (library: ``condense_deploy.table.run_table``) whose
only difference is that default output folder. ``condense-deploy table`` writes to ./table-results/
instead, so trying the table never replaces the committed reference; here ``--force`` does, on purpose:

    .venv/bin/python benchmarks/inference_table.py --force            # 30 runs, 1 thread and all cores
    .venv/bin/python benchmarks/inference_table.py --torch --force    # plus PyTorch eager, 1 thread
    .venv/bin/python benchmarks/inference_table.py --quick --out-dir /tmp

Every option of ``condense-deploy table --help`` works; a later ``--out-dir`` wins over the default.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from condense_deploy.commands.table import table_command
from condense_deploy.errors import CondenseDeployError

RESULTS = Path(__file__).resolve().parent / "results"


def _one_line_errors(callback: Any) -> Any:
    """As the condense-deploy group does: a library error is one ``Error:`` line, exit 1."""

    def run(**kwargs: Any) -> Any:
        try:
            return callback(**kwargs)
        except CondenseDeployError as e:
            raise click.ClickException(str(e)) from e

    return run


if __name__ == "__main__":
    table_command.callback = _one_line_errors(table_command.callback)
    table_command.main(["--out-dir", str(RESULTS), *sys.argv[1:]], prog_name="inference_table.py")
