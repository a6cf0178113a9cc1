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
from .contract import DOMAIN

__all__ = ["BENCH_LIBRARY_NAME", "BUILD_HINT", "ENV_VAR", "LIBRARY_NAME", "bench_library_path",
           "is_available", "library_path"]

LIBRARY_NAME = "libcondense_deploy_ops.so"
# DenseBlock plus GroupedConv (which no graph pass emits), for the per-kernel benchmark; never shipped
BENCH_LIBRARY_NAME = "libcondense_deploy_bench_ops.so"
ENV_VAR = "CONDENSE_DEPLOY_KERNELS"
BUILD_HINT = ("build them with `make kernels` (or `scripts/build-kernels.sh`) in a source checkout, "
              "or reinstall with `pip install .` where g++ is present")


def _candidate() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "_native" / LIBRARY_NAME


def is_available() -> bool:
    """True when the library file exists (built for this install or named by CONDENSE_DEPLOY_KERNELS)."""
    return _candidate().is_file()


def library_path() -> str:
    """The custom-op library to pass to ``SessionOptions.register_custom_ops_library``."""
    path = _candidate()
    if not path.is_file():
        where = f"{ENV_VAR}={path}" if os.environ.get(ENV_VAR) else str(path)
        raise CondenseDeployError(f"the native kernels ({DOMAIN}) are not built here ({where} is missing): "
                                  f"{BUILD_HINT}")
    return str(path)


def bench_library_path() -> str:
    """The bench-only library (``scripts/build-kernels.sh --bench`` puts it beside the library)."""
    path = _candidate().with_name(BENCH_LIBRARY_NAME)
    if not path.is_file():
        raise CondenseDeployError(f"the bench-only kernels library is not built here ({path} is missing): "
                                  "build it with `scripts/build-kernels.sh --bench`")
    return str(path)
