"""The runtime install (no torch) through the real CLI: torch-free commands work on ONNX files without
importing torch, and the others say in one line which install brings what they need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _blocked_imports import run_cli_without
from _clean import assert_clean_error
from _onnx_models import conv_net
from _prereq import missing_prerequisite

REPO = Path(__file__).resolve().parent.parent

def _run(tmp_path: Path, blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli_without(tmp_path, blocked, *args)


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


def test_an_older_onnxruntime_is_named_not_the_model(runner, tmp_path: Path, monkeypatch) -> None:
    """A runtime older than the custom-op API the kernels are built for: one line saying so, where
    onnxruntime itself would say the model's DenseBlock is not a registered op."""
    import onnxruntime

    from condense_deploy.cli import cli
    from condense_deploy.native import library as kernels

    if not kernels.is_available():
        missing_prerequisite("native kernels not built (make kernels)")
    from _onnx_models import native_block_net

    source = native_block_net(tmp_path / "native.onnx")
    monkeypatch.setattr(onnxruntime, "__version__", "1.18.1")
    result = runner.invoke(cli, ["bench", str(source), "--runs", "1", "--warmup", "0"])
    line = assert_clean_error(result, 1, "custom-op API 21 (onnxruntime >= 1.21)",
                              "this onnxruntime offers 18")
    assert "not a registered" not in line


def test_the_package_requires_the_runtime_the_kernels_need() -> None:
    import tomllib

    from condense_deploy.native.library import MIN_ONNXRUNTIME

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"onnxruntime>={'.'.join(map(str, MIN_ONNXRUNTIME))}" in deps


def _read_only_copy(tmp_path: Path) -> Path:
    """The checkout's tracked files, on a read-only bind mount (root) or with write bits removed."""
    source = tmp_path / "src"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True)
    for name in archive.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    if os.geteuid() != 0:
        for folder, _, _ in os.walk(source):
            os.chmod(folder, 0o555)
        return source
    mounted = tmp_path / "ro"
    mounted.mkdir()
    for args in (["mount", "--bind", str(source), str(mounted)],
                 ["mount", "-o", "remount,bind,ro", str(mounted)]):
        if subprocess.run(args, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(mounted)], capture_output=True)
            missing_prerequisite("cannot make a read-only mount here")
    return mounted


@pytest.mark.slow
def test_pip_builds_from_a_read_only_tree(tmp_path: Path) -> None:
    """setuptools' egg-info and build folders go to a temp folder: a read-only checkout builds a wheel
    holding the package and its cards, and the tree is left as it was."""
    import zipfile

    tree = _read_only_copy(tmp_path)
    try:
        before = sorted(p.name for p in tree.iterdir())
        out = tmp_path / "wheels"
        env = {**os.environ, "CONDENSE_DEPLOY_NO_KERNELS": "1"}
        pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out)]
        done = subprocess.run([*pip, str(tree)], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        names = zipfile.ZipFile(next(out.glob("condense_deploy-*.whl"))).namelist()
        assert "condense_deploy/cli.py" in names and "condense_deploy/cards/resnet18.json" in names
        assert sorted(p.name for p in tree.iterdir()) == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(tree)], capture_output=True)
