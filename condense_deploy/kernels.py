"""Our native onnxruntime kernels (the ``ai.condense_deploy`` custom-op library): where it is,
whether a model needs it, and how a session loads it. Imports neither torch nor onnx.

The library is built from csrc/ by ``scripts/build-kernels.sh`` (``make kernels``, ``pip install .``
with a C++ compiler) into ``condense_deploy/_native/``. Every session this package creates loads it
by itself when the model uses our domain (``runtime.sessions``); your own code does it with one call::

    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(condense_deploy.kernels.library_path())

``CONDENSE_DEPLOY_KERNELS`` may name another build of the library (for example an aarch64 one).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import CondenseDeployError
from .libcheck import library_problem, library_queries

__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "LIBRARY_NAME",
    "dense_block_reference",
    "api_problem",
    "is_available",
    "library_path",
    "offered_api_version",
]

DOMAIN = "ai.condense_deploy"
DOMAIN_VERSION = 1
LIBRARY_NAME = "libcondense_deploy_ops.so"
ENV_VAR = "CONDENSE_DEPLOY_KERNELS"
BUILD_HINT = ("`condense-deploy info` shows what this install has; get the kernels by building them here "
              "(`make kernels` or `scripts/build-kernels.sh` in a checkout, or `pip install .` where g++ is "
              "present), by installing the aarch64 wheel from `scripts/build-wheel.sh --arch aarch64` on a "
              "board, or by pointing CONDENSE_DEPLOY_KERNELS at a cross-built libcondense_deploy_ops.so "
              "(docs/arm.md)")


def _candidate() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "_native" / LIBRARY_NAME


def is_available() -> bool:
    """True when the library exists and is built for this machine's architecture (built for this install
    or named by CONDENSE_DEPLOY_KERNELS)."""
    return library_problem(_candidate()) is None


def library_path() -> str:
    """The custom-op library to pass to ``SessionOptions.register_custom_ops_library``; one clear error
    when it is missing, built for another architecture, or needs a newer onnxruntime."""
    path = _candidate()
    problem = library_problem(path)
    if problem is None:
        problem = api_problem(path)
    if problem is not None:
        named = f" ({ENV_VAR})" if os.environ.get(ENV_VAR) else ""
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


def dense_block_reference(x: np.ndarray, index: np.ndarray, bn_scale: np.ndarray, bn_shift: np.ndarray,
                          w1: np.ndarray, b1: np.ndarray, w3: np.ndarray, *, growth: int, mid: int,
                          groups_1x1: int, groups_3x3: int, kept: list[int]) -> np.ndarray:
    """The ``DenseBlock`` op's meaning in numpy (float64 inside), straight from docs/native-ops.md.

    Slow and simple on purpose: the tests hold the kernels and the graph pass against it.
    """
    x = np.asarray(x, np.float64)
    batch, _, height, width = x.shape
    d1, in3, out3 = mid // groups_1x1, mid // groups_3x3, growth // groups_3x3
    shuffle = np.arange(mid).reshape(groups_1x1, d1).T.reshape(-1)
    padded_shape = (batch, mid, height + 2, width + 2)
    offsets = np.cumsum([0, *kept])
    w1_offsets = np.cumsum([0, *[mid * k // groups_1x1 for k in kept]])
    w3_size = growth * in3 * 9
    for layer, count in enumerate(kept):
        span = slice(offsets[layer], offsets[layer + 1])
        a = np.maximum(x[:, index[span]] * bn_scale[span, None, None] + bn_shift[span, None, None], 0.0)
        weight1 = w1[w1_offsets[layer]:w1_offsets[layer + 1]].reshape(mid, count // groups_1x1)
        per_in = count // groups_1x1
        c = np.concatenate([
            np.einsum("oi,nihw->nohw", weight1[j * d1:(j + 1) * d1], a[:, j * per_in:(j + 1) * per_in])
            for j in range(groups_1x1)], axis=1)
        m = np.maximum(c[:, shuffle] + b1[layer * mid:(layer + 1) * mid, None, None], 0.0)
        padded = np.zeros(padded_shape)
        padded[:, :, 1:-1, 1:-1] = m
        weight3 = w3[layer * w3_size:(layer + 1) * w3_size].reshape(growth, in3, 3, 3)
        y = np.zeros((batch, growth, height, width))
        for j in range(groups_3x3):
            for dy in range(3):
                for dx in range(3):
                    window = padded[:, j * in3:(j + 1) * in3, dy:dy + height, dx:dx + width]
                    y[:, j * out3:(j + 1) * out3] += np.einsum(
                        "oi,nihw->nohw", weight3[j * out3:(j + 1) * out3, :, dy, dx], window)
        x = np.concatenate([x, y], axis=1)
    return x.astype(np.float32)
