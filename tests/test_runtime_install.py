"""The runtime install (no torch) through the real CLI: torch-free commands work on ONNX files without
importing torch, and the others say in one line which install brings what they need."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _clean import assert_clean_error
from _onnx_models import conv_net

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

# the CLI, then a check that torch never got in
_CODE = (
    "import sys; from condense_deploy.cli import cli; code = 0\n"
    "try:\n    cli.main(sys.argv[1:], standalone_mode=True)\n"
    "except SystemExit as e:\n    code = e.code or 0\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)"
)


def _run(tmp_path: Path, blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER.format(blocked=sorted(blocked)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-c", _CODE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


RUNTIME = {"torch", "onnxsim", "matplotlib", "PIL", "torchvision"}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return conv_net(tmp_path / "m.onnx")


def test_blocker_really_blocks(tmp_path: Path) -> None:
    done = _run(tmp_path, RUNTIME, "--version")
    assert done.returncode == 0, done.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr


def test_optimize_and_inspect_onnx_without_torch(tmp_path: Path, model: Path) -> None:
    done = _run(tmp_path, RUNTIME, "optimize", str(model), "-o", str(tmp_path / "fast.onnx"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fast.onnx").is_file()
    done = _run(tmp_path, RUNTIME, "inspect", str(tmp_path / "fast.onnx"))
    assert done.returncode == 0, done.stderr
    assert "Conv" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["export", "condensenet50_cifar", "-o", "x.onnx"],
        ["convert", "missing.pth", "-o", "c.pth"],
        ["inspect", "condensenet50_cifar"],
    ],
)
def test_torch_commands_say_which_install(tmp_path: Path, args: list[str]) -> None:
    done = _run(tmp_path, RUNTIME, *args)
    assert_clean_error(
        done,
        1,
        f"'{args[0]}' needs torch, which the runtime install leaves out",
        "pip install 'condense-deploy[full]'",
    )
    assert not (tmp_path / "x.onnx").exists()


def test_no_onnxruntime_names_the_armv7_limit(tmp_path: Path, model: Path) -> None:
    done = _run(tmp_path, RUNTIME | {"onnxruntime"}, "bench", str(model), "--runs", "2")
    assert_clean_error(done, 1, "onnxruntime cannot be imported", "pip install onnxruntime", "armv7l")
