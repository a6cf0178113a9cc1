"""Concurrent writers without --force: the final step is a no-clobber hard link,
so exactly one of two real processes wins and the other gets the usual 'already exists' error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _clean import CLI, assert_clean_error, temp_files
from _onnx_models import conv_net

from condense_deploy._fsutil import atomic_path
from condense_deploy.errors import CondenseDeployError


def test_no_clobber_when_the_target_appears_during_the_write(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(CondenseDeployError, match="already exists"):  # noqa: PT012 - the race is the block
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("mine")
            target.write_text("theirs")  # another process won the race
    assert target.read_text() == "theirs" and temp_files(tmp_path) == []


def _exactly_one_wins(args: list[str], target: Path, timeout: float) -> None:
    """The CLI run with ``args`` (writing ``target`` without --force) in two processes started
    together: one writes the file, the other exits 1 with the usual 'already exists' error, and no
    temporary file is left."""
    procs = [
        subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    assert sorted(r.returncode for r in results) == [0, 1], [r.stderr for r in results]
    assert_clean_error(
        next(r for r in results if r.returncode), 1, "already exists (use --force to overwrite)"
    )
    assert target.is_file() and temp_files(target.parent) == []


@pytest.mark.parametrize("round_", range(2))
def test_two_concurrent_writers_without_force_exactly_one_wins(tmp_path: Path, round_: int) -> None:
    source = conv_net(tmp_path / "a.onnx", channels=16, size=32)
    target = tmp_path / "b.onnx"
    _exactly_one_wins(["optimize", str(source), "-o", str(target)], target, timeout=120)


@pytest.mark.slow
def test_two_concurrent_exports_exactly_one_wins(tmp_path: Path) -> None:
    """Two exports to the same new path at once, without --force: one writes, the other is refused."""
    target = tmp_path / "m.onnx"
    _exactly_one_wins(["export", "condensenet50_cifar", "-o", str(target)], target, timeout=600)


def test_without_hard_links_the_name_is_still_claimed_exclusively(tmp_path: Path, monkeypatch) -> None:
    """Filesystems without hard links (vfat, some FUSE mounts): the fallback reserves the name with
    O_EXCL, so the no-clobber guarantee holds there too."""
    import errno
    import os

    from condense_deploy import _fsutil

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_fsutil.os, "link", no_links)
    target = tmp_path / "out.txt"
    _fsutil.write_text(target, "first", overwrite=False)
    assert target.read_text() == "first"
    with pytest.raises(CondenseDeployError, match="already exists"):
        _fsutil.write_text(target, "second", overwrite=False)
    assert target.read_text() == "first" and temp_files(tmp_path) == []
    assert os.listdir(tmp_path) == ["out.txt"]
