"""Atomic writes: all or nothing, ordinary permissions, overwrite only with force."""

from __future__ import annotations

import os
import stat

import pytest

from condense_deploy._fsutil import atomic_path, atomic_write, check_writable, write_text
from condense_deploy.errors import CondenseDeployError


def test_failed_write_leaves_previous_file(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_path_write_leaves_no_temp(tmp_path) -> None:
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"x")
        raise RuntimeError("boom")
    assert not target.exists() and os.listdir(tmp_path) == []


def test_written_file_has_umask_permissions(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "hi")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_check_writable_refuses_overwrite_without_force(tmp_path) -> None:
    target = tmp_path / "x"
    target.write_text("keep")
    with pytest.raises(CondenseDeployError, match="already exists"):
        check_writable(target, force=False)
    assert check_writable(target, force=True) == target
    with pytest.raises(CondenseDeployError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x", force=False)
