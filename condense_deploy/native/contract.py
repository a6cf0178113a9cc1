"""The contract between the graph pass that emits our custom ops and the library that runs them
(docs/native-ops.md): the domain, its version, op names, inputs and attributes. numpy-free."""

from __future__ import annotations

__all__ = [
    "DENSE_BLOCK",
    "DENSE_BLOCK_ATTRIBUTES",
    "DENSE_BLOCK_INPUTS",
    "DENSE_BLOCK_OPTIONAL_ATTRIBUTES",
    "DENSE_BLOCK_PRECISIONS",
    "DOMAIN",
    "DOMAIN_VERSION",
    "GROUPED_CONV",
    "GROUPED_CONV_ATTRIBUTES",
    "GROUPED_CONV_INPUTS",
]

DOMAIN = "ai.condense_deploy"
DOMAIN_VERSION = 1

# DenseBlock: a whole converted CondenseNet dense block.
DENSE_BLOCK = "DenseBlock"
DENSE_BLOCK_INPUTS = ("X", "index", "bn_scale", "bn_shift", "w1", "b1", "w3")
DENSE_BLOCK_ATTRIBUTES = ("growth", "mid", "groups_1x1", "groups_3x3", "kept")  # required
# Optional: `precision` (a string), the arithmetic inside the block; inputs and outputs stay float32.
# "fp32" (the default when absent) or "fp16" (ARMv8.2 FP16 arithmetic; the library refuses it at
# session creation on a CPU without it).
DENSE_BLOCK_OPTIONAL_ATTRIBUTES = ("precision",)
DENSE_BLOCK_PRECISIONS = ("fp32", "fp16")

# GroupedConv: one grouped 1x1/3x3 convolution on the same micro-kernels. No graph pass emits it; it
# is in the bench-only library (libcondense_deploy_bench_ops.so) for per-kernel comparisons.
GROUPED_CONV = "GroupedConv"
GROUPED_CONV_INPUTS = ("X", "W", "B")  # B optional
GROUPED_CONV_ATTRIBUTES = ("group", "relu")
