"""The CondenseNet paper's Table 5 (inference time) reproduced on this machine.

A thin wrapper over ``condense-deploy table`` (library: ``condense_deploy.table.run_table``) that
writes next to this script, in ``benchmarks/results/<machine>.md/.csv/.json/.png``:

    .venv/bin/python benchmarks/inference_table.py --force            # 30 runs, 1 thread and all cores
    .venv/bin/python benchmarks/inference_table.py --torch --force    # plus PyTorch eager, 1 thread
    .venv/bin/python benchmarks/inference_table.py --quick --out-dir /tmp

Every option of ``condense-deploy table --help`` works; a later ``--out-dir`` wins over the default.
"""

from __future__ import annotations

import sys
from pathlib import Path

from condense_deploy.cli import cli

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    cli.main(["table", "--out-dir", str(RESULTS), *sys.argv[1:]], prog_name="inference_table.py")
