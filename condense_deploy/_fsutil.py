"""Atomic file writes: a temp file beside the target, fsync, then a rename or a no-clobber link.

A crash or a failed check never leaves a half-written file, and an existing file survives a failed
write byte for byte. Two guarantees beyond that:

- **Kills leave nothing for long.** A SIGKILL cannot be caught, so a killed writer's temp file stays;
  its name carries the writer's pid (``.<name>.<pid>.<random>.tmp``) and the next write to the same
  target removes the temp files of processes that no longer exist.
- **Races do not clobber.** Without ``overwrite`` the final step is a hard link of the temp file to
  the target, which fails if the target exists: of two concurrent writers exactly one wins and the
  other gets the usual "already exists (use --force to overwrite)" error.

Every OS failure (folder not creatable, target immutable, disk full) becomes a one-line
``CondenseDeployError`` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import CondenseDeployError

__all__ = ["atomic_path", "atomic_write", "check_creatable", "check_not_input", "check_writable", "make_dirs",
           "same_file", "sweep_stale_temps", "write_json", "write_text"]


def _default_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _exists_error(target: Path) -> CondenseDeployError:
    return CondenseDeployError(f"{target}: already exists (use --force to overwrite)")


def _os_error(target: Path, e: OSError, what: str = "cannot write") -> CondenseDeployError:
    return CondenseDeployError(f"{target}: {what} ({e.strerror or e})")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when both names reach one file: the same path, a symlink to it, a hard link, or another
    spelling of the path (device and inode compared); False when either does not exist."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_not_input(path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse an output that is one of the command's inputs, under any name: an output never replaces
    its own input, with or without ``--force``."""
    for source in inputs:
        if same_file(path, source):
            also = "" if os.path.abspath(path) == os.path.abspath(source) else f" ({path} reaches {source})"
            raise CondenseDeployError(f"{path}: is the input {source}{also}; an output never replaces its "
                                      "input: choose another output name")


def check_writable(path: str | os.PathLike[str], force: bool,
                   inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Refuse an output that is one of ``inputs`` (always) or exists (without ``force``), and fail early
    when the folder is missing."""
    target = Path(path)
    check_not_input(target, inputs)
    if target.exists() and not force:
        raise _exists_error(target)
    if target.is_dir():
        raise CondenseDeployError(f"{target}: is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        if parent.exists() or any(p.exists() and not p.is_dir() for p in parent.parents):
            raise CondenseDeployError(f"{target}: {parent} is not a folder")
        raise CondenseDeployError(f"{target}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CondenseDeployError(f"{target}: folder {parent} is not writable")
    return target


def check_creatable(path: str | os.PathLike[str], what: str = "folder") -> Path:
    """Fail now, creating nothing, if ``make_dirs(path)`` could not succeed (a file in the way, no
    write permission on the nearest existing folder)."""
    folder = Path(path)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == folder and folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise CondenseDeployError(f"{folder}: the {what} is not writable")
        return folder
    if not probe.is_dir():
        raise CondenseDeployError(f"{folder}: cannot create the {what} ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CondenseDeployError(f"{folder}: cannot create the {what} ({probe} is not writable)")
    return folder


def make_dirs(path: str | os.PathLike[str], what: str = "folder") -> Path:
    """``mkdir -p`` whose failure (a regular file in the way, read-only mount) is one line."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(folder, e, f"cannot create the {what}") from e
    return folder


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove ``.<name>.<pid>.*.tmp`` beside ``path`` whose writer process is gone; return them.

    Only names with our pid field are touched; a live writer's temp file is never removed.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^.]+\.tmp")
    removed: list[Path] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            (directory / name).unlink()
            removed.append(directory / name)
    return removed


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Make ``tmp`` appear at ``target`` only if nothing is there, atomically."""
    try:
        os.link(tmp, target)
    except FileExistsError as e:
        raise _exists_error(target) from e
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise _os_error(target, e) from e
        # no hard links here (vfat, some FUSE mounts): reserve the name exclusively, then replace
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _default_mode()))
        except FileExistsError as e2:
            raise _exists_error(target) from e2
        except OSError as e2:
            raise _os_error(target, e2) from e2
        try:
            os.replace(tmp, target)
        except OSError as e2:
            with contextlib.suppress(OSError):
                target.unlink()
            raise _os_error(target, e2) from e2
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for writers that want a file name (torch.save, onnx.save).

    The temp file becomes ``path`` only if the block succeeds; otherwise it is removed. With
    ``overwrite=False`` an existing ``path`` (even one created meanwhile by another process) is an
    error and stays untouched.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    sweep_stale_temps(target)
    tmp: Path | None = None
    try:
        with _sigint_deferred():  # a Ctrl-C between creating the file and knowing its name would leak it
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                                dir=directory)
            except OSError as e:
                raise _os_error(target, e) from e
            os.close(fd)
            tmp = Path(tmp_name)
        os.chmod(tmp, _default_mode())
        try:
            yield tmp
        except OSError as e:
            if e.filename not in (None, str(tmp), tmp):  # about some other file: not ours to word
                raise
            raise _os_error(target, e) from e
        try:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as e:
            raise _os_error(target, e) from e
        if overwrite:
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise _os_error(target, e) from e
        else:
            _link_no_clobber(tmp, target)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """SIGINT held back (main thread, POSIX) until the block ends: its KeyboardInterrupt then comes
    where the caller can clean up, not halfway through creating a file."""
    main = threading.current_thread() is threading.main_thread()
    if not (main and hasattr(signal, "pthread_sigmask")):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", overwrite: bool = True) -> Iterator[Any]:
    """Yield a file object whose content replaces ``path`` only if the block succeeds."""
    with atomic_path(path, overwrite) as tmp:
        try:
            handle = open(tmp, mode)
        except OSError as e:
            raise _os_error(Path(path), e) from e
        with handle:
            yield handle


def write_text(path: str | os.PathLike[str], text: str, overwrite: bool = True) -> None:
    with atomic_write(path, "w", overwrite) as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], data: Any, overwrite: bool = True) -> None:
    """Write JSON with a stable key order (insertion order) and a trailing newline."""
    write_text(path, json.dumps(data, indent=2) + "\n", overwrite)
