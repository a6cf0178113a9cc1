"""The zoo cards ship in the wheel (pyproject maps ``condense_deploy.cards`` onto models/, no
symlink), and an installed package reads them from there, not from a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*cache",
                               "_native", "runs", "demo-output", "results")


@pytest.mark.slow
def test_the_wheel_holds_and_reads_every_card(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=_SKIP)
    env = dict(os.environ, CONDENSE_DEPLOY_NO_KERNELS="1")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           str(source), "-w", str(tmp_path / "wheel")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    cards = sorted(p.name for p in (REPO / "models").glob("*.json"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(Path(n).name for n in archive.namelist() if n.startswith("condense_deploy/cards/"))
        archive.extractall(tmp_path / "installed")
    assert shipped == cards and cards
    code = ("import condense_deploy.architectures.registry as r, sys\n"
            "folder = str(r._cards_folder())\n"
            f"assert {str(tmp_path / 'installed')!r} in folder, folder\n"
            "print(len(r.list_models()))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path / "installed")), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == len(cards)
