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

from condense_deploy.cli import run_command

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":  # the table command as a program of its own, with the CLI's error handling
    run_command("table", prog_name="inference_table.py", args=["--out-dir", str(RESULTS), *sys.argv[1:]])
