"""The contract between the graph pass that emits our custom ops and the library that runs them
(docs/native-ops.md): the domain, its version, op names, inputs and attributes. numpy-free."""

from __future__ import annotations

__all__ = [
    "DENSE_BLOCK",
    "DENSE_BLOCK_ATTRIBUTES",
    "DENSE_BLOCK_INPUTS",
    "DOMAIN",
    "DOMAIN_VERSION",
    "GROUPED_CONV",
]

DOMAIN = "ai.condense_deploy"
DOMAIN_VERSION = 1

# DenseBlock: a whole converted CondenseNet dense block.
DENSE_BLOCK = "DenseBlock"
DENSE_BLOCK_INPUTS = ("X", "index", "bn_scale", "bn_shift", "w1", "b1", "w3")
DENSE_BLOCK_ATTRIBUTES = ("growth", "mid", "groups_1x1", "groups_3x3", "kept")

# GroupedConv: one grouped 1x1/3x3 convolution on the same micro-kernels. No graph pass emits it; it
# is in the bench-only library (libcondense_deploy_bench_ops.so) for per-kernel comparisons.
GROUPED_CONV = "GroupedConv"
