"""The CLI in a subprocess where some packages cannot be imported, as on an install without them: a
``sitecustomize`` puts a meta path finder first that refuses them, and the run fails if torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_BLOCKER = textwrap.dedent("""
    import sys

    BLOCKED = {blocked!r}

    class _Block:
        # a meta path finder: the blocked packages (and submodules) cannot be imported, as if absent
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _Block())
""")

_CODE = (
    "import sys; from condense_deploy.cli import cli; code = 0\n"
    "try:\n    cli.main(sys.argv[1:], standalone_mode=True)\n"
    "except SystemExit as e:\n    code = e.code or 0\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)"
)


def run_cli_without(tmp_path: Path, blocked: Iterable[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``condense-deploy ARGS`` with ``blocked`` unimportable, run in ``tmp_path``."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER.format(blocked=sorted(blocked)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run([sys.executable, "-c", _CODE, *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, check=False)
