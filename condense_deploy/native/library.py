"""Where our native custom-op library (``libcondense_deploy_ops.so``) is, and whether it is built.

The library is built from csrc/ by ``scripts/build-kernels.sh`` (``make kernels``, ``pip install .``
with a C++ compiler) into ``condense_deploy/_native/``. Every session this package creates loads it
by itself when the model uses our domain (``runtime.sessions``); your own code does it with one call::

    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(condense_deploy.native.library_path())

``CONDENSE_DEPLOY_KERNELS`` may name another build of the library (for example an aarch64 one).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CondenseDeployError
from ..libcheck import library_problem, library_queries
from .contract import DOMAIN

__all__ = ["BENCH_LIBRARY_NAME", "BUILD_HINT", "ENV_VAR", "LIBRARY_NAME", "MIN_ONNXRUNTIME", "api_problem",
           "bench_library_path", "is_available", "library_path", "offered_api_version"]

LIBRARY_NAME = "libcondense_deploy_ops.so"
# DenseBlock plus GroupedConv (which no graph pass emits), for the per-kernel benchmark; never shipped
BENCH_LIBRARY_NAME = "libcondense_deploy_bench_ops.so"
ENV_VAR = "CONDENSE_DEPLOY_KERNELS"
# the library asks onnxruntime for C API version 21 (the headers it is built with): the package requires
# the runtime that offers it; where an older one is found anyway, ``api_problem`` says so
MIN_ONNXRUNTIME = (1, 21)
BUILD_HINT = ("`condense-deploy info` shows what this install has; get the kernels by building them here "
              "(`make kernels` or `scripts/build-kernels.sh` in a checkout, or `pip install .` where g++ and "
              "cmake are present), by installing the aarch64 wheel from `scripts/build-wheel.sh --arch "
              "aarch64` on a board, or by pointing CONDENSE_DEPLOY_KERNELS at a cross-built "
              "libcondense_deploy_ops.so (docs/arm.md)")


def _candidate() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "_native" / LIBRARY_NAME


def is_available() -> bool:
    """True when the library exists and is built for this machine's architecture (built for this install
    or named by CONDENSE_DEPLOY_KERNELS)."""
    return library_problem(_candidate()) is None


def library_path() -> str:
    """The custom-op library to pass to ``SessionOptions.register_custom_ops_library``; one clear error
    when it is missing, built for another architecture (read from its ELF header: dlopen would say "No
    such file or directory"), or needs a newer onnxruntime."""
    path = _candidate()
    problem = library_problem(path)
    if problem is None:
        problem = api_problem(path)
    if problem is not None:
        named = f" ({ENV_VAR})" if os.environ.get(ENV_VAR) else ""
        if not path.exists():
            raise CondenseDeployError(f"the native kernels ({DOMAIN}) are not built here ({problem}{named}): "
                                      f"{BUILD_HINT}")
        raise CondenseDeployError(f"the native kernels ({DOMAIN}) cannot be used here: {problem}{named}; "
                                  f"{BUILD_HINT}")
    return str(path)


def offered_api_version() -> int | None:
    """The custom-op (C) API version this onnxruntime offers: its minor version for 1.x releases."""
    try:
        import onnxruntime
    except ImportError:
        return None
    parts = onnxruntime.__version__.split(".")
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 and parts[1].isdigit() else None


def api_problem(path: str | Path) -> str | None:
    """Why onnxruntime here cannot register the library (built against a newer API), or None."""
    needed = library_queries(path, "condense_deploy_ort_api_version").get("condense_deploy_ort_api_version")
    offered = offered_api_version()
    if isinstance(needed, int) and offered is not None and offered < needed:
        return (f"{path} needs onnxruntime's custom-op API {needed} (onnxruntime >= 1.{needed}), this "
                f"onnxruntime offers {offered}: pip install -U onnxruntime, or build the kernels against "
                "this one")
    return None


def bench_library_path() -> str:
    """The bench-only library (``scripts/build-kernels.sh --bench`` puts it beside the library)."""
    path = _candidate().with_name(BENCH_LIBRARY_NAME)
    if not path.is_file():
        raise CondenseDeployError(f"the bench-only kernels library is not built here ({path} is missing): "
                                  "build it with `scripts/build-kernels.sh --bench`")
    return str(path)
