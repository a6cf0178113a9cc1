"""What this install is and can do: ``condense-deploy info``. Never imports torch (its version comes
from the package metadata) and never raises: a board user runs it exactly when something is missing.

The kernel library's state is read from the file (``libcheck``: present, built for this architecture)
and then from the library itself (the ISA it picks on this CPU, the onnxruntime API it needs).
"""

from __future__ import annotations

import importlib.util
import os
import platform
from importlib import metadata
from typing import Any

from .. import __version__
from ..libcheck import elf_machine, host_machine, library_problem, library_queries
from ..native import library as kernels
from ..native.precision import cpu_fp16_problem
from .machine import describe_machine

__all__ = ["COMMANDS", "describe_install", "format_install"]

# command -> what it needs beyond the runtime set (onnxruntime, onnx, numpy, click)
COMMANDS: dict[str, tuple[str, ...]] = {
    "info, list, inspect FILE.onnx, optimize, quantize, bench, report, table --onnx-dir (exported files)": (),
    "eval FILE.onnx on CIFAR": (),
    "predict, eval FILE.onnx on an image folder": ("PIL",),
    "report --plot, the table's plot": ("matplotlib",),
    "export, convert, verify, train, eval CHECKPOINT, inspect ZOO-NAME, demo": ("torch",),
    "native models (exported with --optimize native)": ("kernels",),
}
_DISTRIBUTIONS = {"PIL": "pillow", "torch": "torch", "matplotlib": "matplotlib"}


def _version(distribution: str, module: str | None = None) -> str | None:
    """The installed version (from the package metadata: nothing is imported); None when the
    distribution is absent or ``module`` cannot be found by the import system."""
    if module is not None and not _importable(module):
        return None
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _kernels() -> dict[str, Any]:
    path = kernels._candidate()
    info: dict[str, Any] = {"path": str(path), "from_env": bool(os.environ.get(kernels.ENV_VAR)),
                            "usable": False, "built_for": None, "isa": None, "isas": None,
                            "api_version": None, "cpu_features": None, "problem": None}
    problem = library_problem(path)
    if path.is_file():
        try:
            info["built_for"] = elf_machine(path)
        except OSError:
            pass
    if problem is None:
        try:
            queried = library_queries(path, "condense_deploy_isa", "condense_deploy_isas",
                                      "condense_deploy_ort_api_version", "condense_deploy_cpu_features")
        except OSError as e:  # a damaged or incompatible file the loader refuses
            problem = f"{path} cannot be loaded ({str(e).strip().splitlines()[0]})"
        else:
            info["isa"] = queried["condense_deploy_isa"]
            isas = queried["condense_deploy_isas"]
            info["isas"] = isas.split(",") if isinstance(isas, str) else None
            info["api_version"] = queried["condense_deploy_ort_api_version"]
            info["cpu_features"] = queried["condense_deploy_cpu_features"] or None  # "" off AArch64
            problem = kernels.api_problem(path)
    info["problem"] = problem
    info["usable"] = problem is None
    # fp16 DenseBlocks (--precision fp16): the library's own CPU probe decides where it is usable
    fp16_problem = cpu_fp16_problem(str(path) if problem is None else None)
    info["fp16"] = {"runs": fp16_problem is None, "why": fp16_problem}
    return info


def describe_install() -> dict[str, Any]:
    """Versions, CPU, the kernel library's state and the commands this install can run."""
    machine = describe_machine()
    versions = {
        "condense-deploy": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "onnxruntime": _version("onnxruntime", "onnxruntime"),
        "onnx": _version("onnx", "onnx"),
        "numpy": _version("numpy", "numpy"),
        "click": _version("click", "click"),
        "pillow": _version("pillow", "PIL"),
        "matplotlib": _version("matplotlib", "matplotlib"),
        "torch": _version("torch", "torch"),
    }
    native = _kernels()
    have = {"kernels": native["usable"], **{m: _importable(m) for m in _DISTRIBUTIONS}}
    have["onnxruntime"] = _importable("onnxruntime")
    commands = []
    for command, needs in COMMANDS.items():
        missing = [n for n in needs if not have[n]]
        if not have["onnxruntime"]:
            missing.insert(0, "onnxruntime")
        commands.append({"commands": command, "runs": not missing, "missing": missing})
    return {
        "versions": versions,
        "custom_op_api_offered": kernels.offered_api_version() if have["onnxruntime"] else None,
        "machine": {"arch": host_machine(), "cpu_model": machine["cpu_model"], "board": machine["board"],
                    "emulated_on": machine["emulated_on"], "cores_usable": machine["cores_usable"],
                    "cpu_features": machine["cpu_features"]},
        "kernels": native,
        "commands": commands,
    }


def _missing_text(name: str) -> str:
    return {"kernels": "the native kernels (see above)",
            "torch": "torch (the full install: use a workstation)", "PIL": "pillow (pip install pillow)",
            "matplotlib": "matplotlib (pip install matplotlib)", "onnxruntime": "onnxruntime"}.get(name, name)


def format_install(info: dict[str, Any]) -> str:
    """The report as aligned text lines."""
    v = info["versions"]
    api = info["custom_op_api_offered"]
    m = info["machine"]
    k = info["kernels"]
    cpu = m["board"] or m["cpu_model"] or "unknown CPU"
    if m["emulated_on"]:
        cpu = cpu.replace(" (emulated)", "") + f" (emulated on {m['emulated_on']})"
    lines = [
        f"condense-deploy {v['condense-deploy']}",
        f"python:       {v['python']}",
        f"onnxruntime:  {v['onnxruntime'] or 'not installed'}"
        + (f" (custom-op API {api})" if api is not None else ""),
        f"onnx:         {v['onnx'] or 'not installed'}",
        f"numpy:        {v['numpy'] or 'not installed'}",
        f"pillow:       {v['pillow'] or 'not installed'}",
        f"matplotlib:   {v['matplotlib'] or 'not installed'}",
        f"torch:        {v['torch'] or 'not installed'}",
        f"cpu:          {cpu}, {m['arch']}, {m['cores_usable']} usable core(s)",
        f"features:     {', '.join(m['cpu_features']) or 'none reported'}",
    ]
    where = " (CONDENSE_DEPLOY_KERNELS)" if k["from_env"] else ""
    if k["usable"]:
        isas = f" of {', '.join(k['isas'])}" if k["isas"] else ""
        api_needed = f", needs custom-op API {k['api_version']}" if k["api_version"] is not None else ""
        lines.append(f"kernels:      {k['path']}{where}")
        lines.append(f"              built for {k['built_for']}{api_needed}; ISA here: {k['isa']}{isas}")
        if k.get("cpu_features"):
            lines.append(f"              CPU as the kernels see it: {k['cpu_features']}")
    else:
        lines.append(f"kernels:      not usable: {k['problem']}{where}")
        lines.append("              get them: build here (`make kernels` / `pip install .` with g++), the "
                     "aarch64 wheel (scripts/build-wheel.sh), or CONDENSE_DEPLOY_KERNELS=cross-built .so "
                     "(docs/arm.md)")
    fp16 = k["fp16"]
    if fp16["runs"]:
        lines.append("fp16 blocks:  yes: this CPU has ARMv8.2 FP16 arithmetic (--precision fp16 models run)")
    else:
        lines.append(f"fp16 blocks:  no: {fp16['why']} (--precision fp16 models are refused here)")
    lines.append("commands:")
    for entry in info["commands"]:
        if entry["runs"]:
            lines.append(f"  yes  {entry['commands']}")
        else:
            needs = ", ".join(_missing_text(n) for n in entry["missing"])
            lines.append(f"  no   {entry['commands']}: needs {needs}")
    return "\n".join(lines) + "\n"
