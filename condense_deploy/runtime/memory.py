"""How much memory this process may still use, and one check that a job fits before it starts.

A size option (a batch, a number of images) that asks for more memory than the machine has would
otherwise run until the kernel kills the process. Commands estimate what they will need from the
sizes they were given and call ``check_fits`` before any work. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CondenseDeployError

__all__ = ["available_bytes", "check_fits", "gigabytes"]

_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
_CGROUP_USAGE = (Path("/sys/fs/cgroup/memory.current"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def available_bytes() -> int | None:
    """Memory available to a new allocation now: the smaller of the kernel's MemAvailable and what
    is left under this process's cgroup limit (containers); None when neither can be read."""
    candidates = [v for v in (_meminfo_available() or _sysconf_available(),) if v]
    for limit_path, usage_path in zip(_CGROUP_LIMITS, _CGROUP_USAGE, strict=True):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 1 << 60:  # "max" / unlimited
            candidates.append(max(limit - usage, 0))
            break
    return min(candidates) if candidates else None


def gigabytes(n: float) -> str:
    """Bytes as a short figure: ``105 GB``, ``20 MB``."""
    return f"{n / 1e9:.3g} GB" if n >= 1e9 else f"{n / 1e6:.3g} MB"


def check_fits(needed: float, what: str, hint: str = "") -> None:
    """Raise one ``CondenseDeployError`` before any work when ``needed`` bytes (an estimate) exceed
    the memory available; ``what`` names the job and the size that decides it."""
    available = available_bytes()
    if available is not None and needed > available:
        raise CondenseDeployError(f"{what} needs about {gigabytes(needed)} of memory; this machine has "
                                  f"{gigabytes(available)} available" + (f" ({hint})" if hint else ""))
