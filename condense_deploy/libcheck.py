"""Can this machine load a native shared library? Read from the file itself, before any dlopen.

dlopen of a library built for another architecture fails with "cannot open shared object file: No such
file or directory" (the loader's misleading text when it finds no usable file), so the architecture is
read from the ELF header (``e_machine``) first and named plainly: "built for x86_64, this machine is
aarch64". Standard library only (ctypes for the library's own version queries).
"""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

__all__ = ["elf_machine", "host_machine", "library_problem", "library_queries"]

# ELF e_machine values -> the names uname -m prints
_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm (32-bit)", 62: "x86_64",
             183: "aarch64", 243: "riscv64", 258: "loongarch64"}
_HOST_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "armv7l": "arm (32-bit)", "armv6l": "arm (32-bit)",
                 "i686": "i386"}


def host_machine() -> str:
    """This machine's architecture as uname -m names it (arm64 and amd64 normalised)."""
    machine = platform.machine().lower()
    return _HOST_ALIASES.get(machine, machine)


def elf_machine(path: str | Path) -> str | None:
    """The architecture an ELF file is built for (``x86_64``, ``aarch64``, ...); None when ``path`` is
    not an ELF file. OSError when it cannot be read."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    number = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    name = _MACHINES.get(number, f"ELF machine {number}")
    if number == 62 and header[4] == 1:  # EM_X86_64 with 32-bit class: x32
        name = "x32"
    return name


def library_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a loadable library on this machine (missing, unreadable, not ELF, another
    architecture), as the end of a sentence; None when nothing in the file says so."""
    p = Path(path)
    if not p.exists():
        return f"{p} is missing"
    if not p.is_file():
        return f"{p} is not a file"
    try:
        built_for = elf_machine(p)
    except OSError as e:
        return f"{p} cannot be read ({e.strerror})"
    if built_for is None:
        return f"{p} is not a shared library (no ELF header)"
    host = host_machine()
    if built_for != host:
        return f"{p} is built for {built_for}, this machine is {host}"
    return None


def library_queries(path: str | Path, *names: str) -> dict[str, str | int | None]:
    """Call the library's exported no-argument version functions (``const char*`` or ``int``, told by a
    ``_version`` suffix meaning int). A missing symbol gives None. Only for a library whose
    ``library_problem`` is None: loading runs its static initialisers."""
    lib = ctypes.CDLL(str(path))
    out: dict[str, str | int | None] = {}
    for name in names:
        function = getattr(lib, name, None)
        if function is None:
            out[name] = None
            continue
        if name.endswith("_version"):
            function.restype = ctypes.c_int
            out[name] = int(function())
        else:
            function.restype = ctypes.c_char_p
            value = function()
            out[name] = value.decode() if value is not None else None
    return out
