"""The board wheel, as a Raspberry Pi user gets it: built on this workstation by scripts/build-wheel.sh
(the kernels cross-compiled for aarch64), installed with pip for the aarch64 platform into a folder
(no torch, no compiler), then run on emulated aarch64 (scripts/aarch64-env.sh): `info` finds the
kernels, `bench` runs a native model, `predict` names the classes of a JPEG as x86 does.

Slow (a cross build, a pip install of the aarch64 wheels, about a minute of emulation); .ci/run's slow
tier runs it. It skips, saying why, only where emulation cannot run at all (not root, no qemu package).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _prereq import missing_prerequisite

from condense_deploy.libcheck import elf_machine

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
BUILD_WHEEL = PROJECT / "scripts" / "build-wheel.sh"
EMULATE = PROJECT / "scripts" / "aarch64-env.sh"
TAG = re.compile(r"condense_deploy-[^-]+-py3-none-manylinux_(\d+)_(\d+)_(aarch64|x86_64)\.whl$")


def _build(arch: str, out: Path) -> tuple[Path, str]:
    done = subprocess.run(["bash", str(BUILD_WHEEL), "--arch", arch, "--out", str(out)], capture_output=True,
                          text=True, check=False, timeout=1800)
    assert done.returncode == 0, f"build-wheel.sh --arch {arch} failed:\n{done.stderr[-3000:]}"
    wheel = Path(done.stdout.strip().splitlines()[-1])
    match = TAG.search(wheel.name)
    assert match and match.group(3) == arch, wheel.name
    glibc = (int(match.group(1)), int(match.group(2)))
    assert (2, 17) <= glibc <= (2, 36), f"{wheel.name}: needs a glibc newer than Raspberry Pi OS 12's 2.36"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "condense_deploy/_native/libcondense_deploy_ops.so" in names
        assert "condense_deploy/data/imagenet.txt" in names and "condense_deploy/cards/vgg16.json" in names
        library = out / f"lib-{arch}.so"
        library.write_bytes(z.read("condense_deploy/_native/libcondense_deploy_ops.so"))
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert elf_machine(library) == arch
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not any("torch" in line and "extra ==" not in line for line in requires), requires
    return wheel, f"manylinux_{glibc[0]}_{glibc[1]}_{arch}"


def _elf_copy(source: Path, target: Path) -> None:
    """The checkout's x86 library, or (not built here) an x86-64 ELF header standing in for it."""
    if source.is_file():
        target.write_bytes(source.read_bytes())
    else:
        header = bytearray(64)
        header[:7] = b"\x7fELF\x02\x01\x01"
        header[18:20] = (62).to_bytes(2, "little")
        target.write_bytes(bytes(header))


def _pip_target(wheel: Path, platform: str, target: Path) -> None:
    """What a user does on the workstation for an offline board: the wheel and its dependencies for the
    board's platform, into a folder (a board with internet runs `pip install WHEEL` itself)."""
    arch = "aarch64" if platform.endswith("aarch64") else "x86_64"
    platforms = [platform, f"manylinux_2_28_{arch}", f"manylinux_2_17_{arch}"]  # pip takes them literally
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--only-binary=:all:", *[a for p in platforms for a in ("--platform", p)],
                           "--python-version", "3.11", "--implementation", "cp", "--target", str(target),
                           str(wheel)],
                          capture_output=True, text=True, check=False, timeout=1800)
    assert done.returncode == 0, f"pip install --platform {platform} failed:\n{done.stderr[-3000:]}"
    assert (target / "onnxruntime").is_dir() and (target / "PIL").is_dir()
    assert not (target / "torch").exists()


def _emulated(target: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``python -m condense_deploy ARGS`` on emulated aarch64 with ``target`` as its site, started
    outside the checkout (``-m`` puts the working folder first on sys.path)."""
    env = {**os.environ, "AARCH64_PYTHONPATH": str(target), **extra_env}
    return subprocess.run(["bash", str(EMULATE), "run", "-m", "condense_deploy", *args], env=env,
                          capture_output=True, text=True, check=False, timeout=1800, cwd=target.parent)


def test_x86_64_wheel_is_tagged_for_its_glibc(tmp_path: Path) -> None:
    wheel, platform = _build("x86_64", tmp_path)
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--only-binary=:all:", "--platform", platform, "--target", str(target),
                           str(wheel)],
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (target / "condense_deploy" / "_native" / "libcondense_deploy_ops.so").is_file()


def test_aarch64_wheel_on_an_emulated_board(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        missing_prerequisite("emulated aarch64 needs root (apt-get install, unshare -m, mount)")
    wheel, platform = _build("aarch64", tmp_path / "dist")
    board = tmp_path / "board"
    _pip_target(wheel, platform, board)

    # a native model and a JPEG, made on the workstation
    from PIL import Image

    from condense_deploy.pipeline import export_source

    model = tmp_path / "c50_native.onnx"
    export_source("condensenet50_cifar", model, optimize="native")
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).resize((160, 120)).save(photo)

    info = _emulated(board, "info")
    if info.returncode == 77:
        missing_prerequisite(f"this machine cannot run emulated aarch64: {info.stderr.strip()[-200:]}")
    assert info.returncode == 0, info.stderr[-3000:]
    assert "torch:        not installed" in info.stdout
    assert "built for aarch64" in info.stdout and "ISA here: neon" in info.stdout, info.stdout
    assert "yes  native models" in info.stdout
    # an x86 library named on the board: said plainly, not dlopen's "No such file or directory"
    x86 = tmp_path / "dist" / "lib-x86_64.so"
    _elf_copy(PROJECT / "condense_deploy" / "_native" / "libcondense_deploy_ops.so", x86)
    wrong = _emulated(board, "bench", str(model), "--runs", "1", CONDENSE_DEPLOY_KERNELS=str(x86))
    assert wrong.returncode == 1 and f"{x86} is built for x86_64, this machine is aarch64" in wrong.stderr
    assert "No such file" not in wrong.stderr and "Traceback" not in wrong.stderr

    bench = _emulated(board, "bench", str(model), "--warmup", "1", "--runs", "3", "--json",
                      str(tmp_path / "bench.json"))
    assert bench.returncode == 0, bench.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["machine"]["arch"] == "aarch64" and report["results"][0]["runs"] == 3

    emulated = _emulated(board, "predict", str(model), str(photo), "-k", "3", "--json",
                         str(tmp_path / "arm.json"))
    assert emulated.returncode == 0, emulated.stderr[-3000:]
    here = subprocess.run([sys.executable, "-m", "condense_deploy", "predict", str(model), str(photo), "-k",
                           "3", "--json", str(tmp_path / "x86.json")], capture_output=True, text=True,
                          check=False)
    assert here.returncode == 0, here.stderr
    arm = json.loads((tmp_path / "arm.json").read_text())["predictions"][0]["top"]
    x86 = json.loads((tmp_path / "x86.json").read_text())["predictions"][0]["top"]
    assert [t["name"] for t in arm] == [t["name"] for t in x86]
    assert arm[0]["name"] in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                              "truck")
    for a, b in zip(arm, x86, strict=True):
        assert abs(a["probability"] - b["probability"]) < 1e-4
    print(emulated.stdout, file=sys.stderr)
