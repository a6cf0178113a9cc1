"""The machine description: fields, CPU features on x86 / aarch64 / armv7, ARM core names, slugs,
and no failure when /proc and /sys hide everything."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from condense_deploy.runtime import machine as M

PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_describe_machine_has_every_field_with_sane_values() -> None:
    info = M.describe_machine()
    assert list(info)[:4] == ["slug", "hostname", "arch", "cpu_model"]
    assert info["emulated_on"] is None
    for key in ("board", "cores_logical", "cores_physical", "cores_usable", "cpu_features", "governor",
                "cur_mhz", "min_mhz", "max_mhz", "temperature_c", "os", "python", "python_bits",
                "onnxruntime", "numpy"):
        assert key in info
    assert info["arch"] in ("x86_64", "aarch64", "armv7l", "arm64", "AMD64")
    assert info["cores_usable"] >= 1 and info["cores_usable"] <= (info["cores_logical"] or 1_000)
    assert isinstance(info["cpu_features"], list)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["onnxruntime"])
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert re.fullmatch(r"[a-z0-9_]+-[a-z0-9-]+-\d+c", info["slug"])


def test_x86_features_keep_a_fixed_order_and_only_what_matters() -> None:
    flags = "fpu sse sse2 avx512_vnni avx2 fma avx avx512f sse4_2 f16c ht".split()
    assert M.notable_features(flags, "x86_64") == ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f",
                                                   "avx512_vnni"]


def test_arm_features_use_the_common_names() -> None:
    a76 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    assert M.notable_features(a76.split(), "aarch64") == ["neon", "dotprod", "fp16"]
    assert M.notable_features("half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt".split(),
                              "armv7l") == ["neon", "vfpv4"]
    assert M.notable_features(["fp", "asimd"], "aarch64") == ["neon"]


def test_arm_core_name_and_board_from_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(PI4_CPUINFO)
    monkeypatch.setattr(M, "_CPUINFO", cpuinfo)
    monkeypatch.setattr(M, "_CPUFREQ", tmp_path / "no-cpufreq")
    monkeypatch.setattr(M, "_board", lambda: "Raspberry Pi 4 Model B Rev 1.4")
    monkeypatch.setattr(M.platform, "machine", lambda: "aarch64")
    info = M.describe_machine()
    assert info["cpu_model"] == "Cortex-A72"
    assert info["cpu_features"] == ["neon"]
    assert info["governor"] is None and info["max_mhz"] is None
    assert info["slug"].startswith("aarch64-raspberry-pi-4-model-b-")


def test_qemu_user_emulation_is_named_not_mistaken_for_the_host(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"  # qemu-user shows the x86 host's /proc/cpuinfo to the aarch64 guest
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
                       "cpu MHz\t\t: 2445.4\nflags\t\t: fpu sse2 avx2\n")
    monkeypatch.setattr(M, "_CPUINFO", cpuinfo)
    monkeypatch.setattr(M, "_CPUFREQ", tmp_path / "none")
    monkeypatch.setattr(M.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(M, "_auxv_flags", lambda arch: ["asimd", "asimddp"])
    monkeypatch.setenv("QEMU_CPU", "cortex-a76")
    info = M.describe_machine()
    assert info["cpu_model"] == "cortex-a76 (emulated)" and info["emulated_on"] == "AMD EPYC"
    assert info["cpu_features"] == ["neon", "dotprod"] and info["cur_mhz"] is None
    assert info["slug"] == f"aarch64-cortex-a76-emulated-{info['cores_usable']}c"


def test_governor_and_frequency_read_from_cpufreq(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    freq = tmp_path / "cpufreq"
    freq.mkdir()
    for name, value in {"scaling_governor": "ondemand\n", "scaling_cur_freq": "1500000\n",
                        "cpuinfo_min_freq": "600000\n", "cpuinfo_max_freq": "1800000\n"}.items():
        (freq / name).write_text(value)
    monkeypatch.setattr(M, "_CPUFREQ", freq)
    info = M.describe_machine()
    assert (info["governor"], info["cur_mhz"], info["min_mhz"], info["max_mhz"]) == ("ondemand", 1500.0,
                                                                                     600.0, 1800.0)


def test_hidden_proc_and_sys_leave_fields_empty_not_errors(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setattr(M, "_CPUINFO", tmp_path / "none")
    monkeypatch.setattr(M, "_CPUFREQ", tmp_path / "none")
    monkeypatch.setattr(M, "_CPU_SYS", tmp_path / "none")
    info = M.describe_machine()
    assert info["cpu_features"] == [] and info["governor"] is None and info["cores_physical"] is None
    assert info["cpu_model"]


@pytest.mark.parametrize(
    ("cpu", "slug"),
    [
        ("Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz", "x86_64-intel-xeon-e5-2690-v4-8c"),
        ("AMD Ryzen 7 5800X 8-Core Processor", "x86_64-amd-ryzen-7-5800x-8c"),
        ("AMD EPYC", "x86_64-amd-epyc-8c"),
    ],
)
def test_slug_is_short_and_file_name_safe(cpu: str, slug: str) -> None:
    assert M.machine_slug({"arch": "x86_64", "cpu_model": cpu, "cores_usable": 8}) == slug


def test_arm_part_table_names_the_pi_cores() -> None:
    assert M.ARM_PARTS[("0x41", "0xd08")] == "Cortex-A72"  # Raspberry Pi 4
    assert M.ARM_PARTS[("0x41", "0xd0b")] == "Cortex-A76"  # Raspberry Pi 5
    assert M.ARM_PARTS[("0x41", "0xd03")] == "Cortex-A53"  # Raspberry Pi 3


def test_import_is_torch_free() -> None:
    code = "import sys, condense_deploy.runtime.machine, condense_deploy.runtime.bench, " \
           "condense_deploy.runtime.reports; print(sorted({'torch', 'onnx'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
