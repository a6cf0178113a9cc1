"""What machine a benchmark ran on: CPU, cores, SIMD features, frequency policy, runtime versions.

A latency figure means nothing without the machine beside it, and on a Raspberry Pi the governor
and temperature matter as much as the model. Everything is read from ``/proc`` and ``/sys`` where
the kernel exposes it and left ``None`` where it does not; never raises. Torch-free.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["ARM_PARTS", "describe_machine", "machine_slug", "notable_features", "usable_cores"]

_CPUINFO = Path("/proc/cpuinfo")
_CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")
_CPU_SYS = Path("/sys/devices/system/cpu")

# x86 flags that decide which onnxruntime kernels run (MLAS picks AVX2 / AVX-512 / VNNI paths).
_X86_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
                 "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile")
# ARM /proc/cpuinfo "Features" word -> the name people use (NEON, dot product, half precision ...).
_ARM_FEATURES = {
    "neon": "neon",          # armv7l spelling
    "asimd": "neon",         # aarch64 spelling of NEON
    "asimddp": "dotprod",    # SDOT/UDOT: int8 GEMM kernels
    "asimdhp": "fp16",       # half-precision arithmetic
    "fphp": "fp16",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "vfpv4": "vfpv4",
}
# (implementer, part) from /proc/cpuinfo -> core name; aarch64 kernels print no "model name".
ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd04"): "Cortex-A35", ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72", ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75", ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77", ("0x41", "0xd40"): "Neoverse-V1", ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd44"): "Cortex-X1", ("0x41", "0xd46"): "Cortex-A510", ("0x41", "0xd47"): "Cortex-A710",
    ("0x41", "0xd49"): "Neoverse-N2", ("0x41", "0xd4f"): "Neoverse-V2", ("0x41", "0xc07"): "Cortex-A7",
    ("0x41", "0xc0f"): "Cortex-A15", ("0x4e", "0x003"): "NVIDIA Denver 2", ("0x4e", "0x004"): "NVIDIA Carmel",
    ("0x61", "0x022"): "Apple M1", ("0x61", "0x023"): "Apple M1",
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first value of every ``key : value`` line (the first CPU describes them all here)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def notable_features(flags: list[str], arch: str) -> list[str]:
    """The CPU features that change which onnxruntime kernels run, in a fixed order, deduplicated."""
    present = set(flags)
    if _is_arm(arch):
        names = [_ARM_FEATURES[f] for f in _ARM_FEATURES if f in present]
        return list(dict.fromkeys(names))
    return [f for f in _X86_FEATURES if f in present]


def _is_arm(arch: str) -> bool:
    return arch.startswith(("arm", "aarch"))


def _emulated_on(fields: dict[str, str], arch: str) -> str | None:
    """The host CPU when this ARM Python runs under qemu-user, which shows the host's /proc/cpuinfo."""
    if _is_arm(arch) and ("vendor_id" in fields or ("flags" in fields and "Features" not in fields)):
        return re.sub(r"\s+", " ", fields.get("model name", "x86 host"))
    return None


def _cpu_model(fields: dict[str, str], arch: str) -> str:
    """ARM cores by part number (armv7 kernels print a vague "model name"), else the model name."""
    part = ARM_PARTS.get((fields.get("CPU implementer", "").lower(), fields.get("CPU part", "").lower()))
    if part:
        return part
    if fields.get("CPU part"):
        return f"ARM implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    if _emulated_on(fields, arch):
        return f"{os.environ.get('QEMU_CPU', 'unknown ARM CPU')} (emulated)"
    if fields.get("model name"):
        return re.sub(r"\s+", " ", fields["model name"])
    return platform.processor() or arch


# Linux hwcap bits (asm/hwcap.h) for when /proc/cpuinfo does not describe this CPU (qemu-user).
_AARCH64_HWCAP = {1 << 1: "asimd", 1 << 9: "fphp", 1 << 10: "asimdhp", 1 << 20: "asimddp", 1 << 22: "sve"}
_AARCH64_HWCAP2 = {1 << 13: "i8mm", 1 << 14: "bf16"}
_ARM32_HWCAP = {1 << 12: "neon", 1 << 16: "vfpv4"}


def _auxv_flags(arch: str) -> list[str]:
    """ARM feature names from getauxval(AT_HWCAP/AT_HWCAP2): what the kernel (or qemu) grants us."""
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        getauxval.argtypes = [ctypes.c_ulong]
        hwcap, hwcap2 = getauxval(16), getauxval(26)  # AT_HWCAP, AT_HWCAP2
    except (OSError, AttributeError):
        return []
    if arch == "aarch64":
        return [n for b, n in _AARCH64_HWCAP.items() if hwcap & b] + [
            n for b, n in _AARCH64_HWCAP2.items() if hwcap2 & b]
    return [n for b, n in _ARM32_HWCAP.items() if hwcap & b]


def _board() -> str | None:
    """The board name on single-board computers (e.g. "Raspberry Pi 4 Model B Rev 1.4")."""
    text = _read(Path("/proc/device-tree/model"))
    return text.rstrip("\x00") if text else None


def usable_cores() -> int:
    """Cores this process may run on (affinity / cgroup cpuset), which is what ``all cores`` means."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _physical_cores() -> int | None:
    cores = set()
    for topology in _CPU_SYS.glob("cpu[0-9]*/topology"):
        package = _read(topology / "physical_package_id")
        core = _read(topology / "core_id")
        if core is None:
            return None
        cores.add((package, core))
    return len(cores) or None


def _khz_to_mhz(text: str | None) -> float | None:
    try:
        return round(int(text) / 1000.0, 1) if text else None
    except ValueError:
        return None


def _frequency(fields: dict[str, str]) -> dict[str, Any]:
    """Governor and frequencies of cpu0 (cpufreq), else the x86 ``cpu MHz`` line; ``None`` if hidden."""
    cur = _khz_to_mhz(_read(_CPUFREQ / "scaling_cur_freq"))
    if cur is None and fields.get("cpu MHz"):
        try:
            cur = round(float(fields["cpu MHz"]), 1)
        except ValueError:
            cur = None
    return {
        "governor": _read(_CPUFREQ / "scaling_governor"),
        "cur_mhz": cur,
        "min_mhz": _khz_to_mhz(_read(_CPUFREQ / "cpuinfo_min_freq")),
        "max_mhz": _khz_to_mhz(_read(_CPUFREQ / "cpuinfo_max_freq")),
    }


def _temperature_c() -> float | None:
    """SoC temperature (thermal zone 0) where exposed: a hot Pi throttles, which explains slow runs."""
    text = _read(Path("/sys/class/thermal/thermal_zone0/temp"))
    try:
        return round(int(text) / 1000.0, 1) if text else None
    except ValueError:
        return None


def _os_name() -> str:
    release = _read(Path("/etc/os-release")) or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.MULTILINE)
    pretty = match.group(1) if match else platform.system()
    return f"{pretty} ({platform.system()} {platform.release()})"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """Everything a reader needs to judge a latency figure from this machine, with a stable key order."""
    arch = platform.machine() or "unknown"
    fields = _cpuinfo_fields(_read(_CPUINFO) or "")
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    emulated_on = _emulated_on(fields, arch)
    if emulated_on:
        flags = _auxv_flags(arch)
    info: dict[str, Any] = {
        "slug": "",
        "hostname": socket.gethostname(),
        "arch": arch,
        "cpu_model": _cpu_model(fields, arch),
        "board": _board(),
        "emulated_on": emulated_on,
        "cores_logical": os.cpu_count(),
        "cores_physical": _physical_cores(),
        "cores_usable": usable_cores(),
        "cpu_features": notable_features(flags, arch),
        **_frequency({} if emulated_on else fields),  # the host's "cpu MHz" is not the emulated CPU's
        "temperature_c": _temperature_c(),
        "os": _os_name(),
        "python": platform.python_version(),
        "python_bits": 64 if sys.maxsize > 2**32 else 32,
        "onnxruntime": _version("onnxruntime"),
        "numpy": _version("numpy"),
    }
    info["slug"] = machine_slug(info)
    return info


def machine_slug(info: dict[str, Any]) -> str:
    """A short file-name-safe name such as ``x86_64-amd-epyc-2c`` or ``aarch64-cortex-a72-4c``.

    Built from architecture, CPU and core count (not the host name, which containers randomise),
    so reruns on the same machine overwrite the same results files.
    """
    cpu = str(info.get("board") or info.get("cpu_model") or "cpu")
    cpu = re.split(r"@|\bwith\b|\bw/|\bRev\b", cpu, maxsplit=1)[0]
    cpu = re.sub(r"\((r|tm)\)|\b(cpu|processor|\d+-core)\b", " ", cpu, flags=re.IGNORECASE)
    words = re.sub(r"[^a-z0-9]+", "-", cpu.lower()).strip("-")
    words = "-".join(words.split("-")[:5]) or "cpu"
    return f"{info.get('arch', 'unknown')}-{words}-{info.get('cores_usable') or '?'}c"
