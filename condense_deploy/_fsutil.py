"""Atomic file writes: a temp file beside the target, fsync, then ``os.replace``.

A crash or a failed check never leaves a half-written file, and an existing file survives
a failed write byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CondenseDeployError

__all__ = ["atomic_path", "atomic_write", "check_writable", "write_json", "write_text"]


def _default_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path: str | os.PathLike[str], force: bool) -> Path:
    """Refuse to overwrite without ``force`` and fail early when the folder is missing."""
    target = Path(path)
    if target.exists() and not force:
        raise CondenseDeployError(f"{target}: already exists (use --force to overwrite)")
    if target.is_dir():
        raise CondenseDeployError(f"{target}: is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CondenseDeployError(f"{target}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CondenseDeployError(f"{target}: folder {parent} is not writable")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for writers that want a file name (torch.save, onnx.save).

    The temp file becomes ``path`` only if the block succeeds; otherwise it is removed.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise CondenseDeployError(f"{target}: cannot write ({e.strerror})") from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _default_mode())
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[Any]:
    """Yield a file object whose content replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON with a stable key order (insertion order) and a trailing newline."""
    write_text(path, json.dumps(data, indent=2) + "\n")
