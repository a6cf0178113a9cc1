"""The optimize recipes as data: mode name -> the passes it applies, in order, with their settings.

``optimize`` applies them, writes the pass names into its metadata report, and
``benchmarks/lowering_ablation.py`` reads its settings from here, so a recipe is written once.

- ``BASE``: always on, exact and never slower (measured): the shuffle as one Gather, BN folded into
  the conv before it through the shuffle, ReLU moved next to that conv so it fuses, Gathers merged.
- ``fast``: the base, then the fixed rules from the ablation on x86
  (benchmarks/results/lowering_ablation_*.md): depthwise + sum for <= 2 outputs per group
  (multiplier 2 made by duplicating the 1x1 conv's outputs), pad group inputs when it costs <= 34%
  more input channels, pad group outputs when it at most doubles them.
- ``tuned``: the base, then per-conv forms timed on this machine (``optimize.FORMS``), kept only
  when the whole model beats ``fast``.
- ``native``: every dense block becomes one ``DenseBlock`` op of our kernel library (csrc/,
  docs/native-ops.md), then ``fast`` for whatever is left. Needs the library wherever the model
  runs; ``min_positions`` leaves blocks below that many pixels per channel to onnxruntime. The
  blocks' precision (``--precision fp16``) is the user's choice, not part of the recipe:
  ``optimize.optimize_onnx`` gives it to the native step.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["BASE", "MODES", "RECIPES", "Recipe", "pass_names", "settings"]

# one step: (name of a pass in passes.PASSES, keyword arguments)
Recipe = tuple[tuple[str, Mapping[str, Any]], ...]

MODES = ("none", "fast", "tuned", "native")

_NONE: Mapping[str, Any] = MappingProxyType({})

BASE: Recipe = (
    ("shuffle_to_gather", _NONE),
    ("fold_bn_into_conv", _NONE),
    ("relu_before_gather", _NONE),
    ("merge_gathers", _NONE),
)

_FAST: Recipe = BASE + (
    ("grouped_conv_to_depthwise", MappingProxyType({"max_outputs_per_group": 2, "duplicate_producer": True})),
    ("pad_group_inputs", MappingProxyType({"max_ratio": 1.34})),
    ("pad_group_outputs", MappingProxyType({"max_ratio": 2.0})),
)

RECIPES: Mapping[str, Recipe] = MappingProxyType({
    "none": (),
    "fast": _FAST,
    "tuned": BASE,  # then the per-conv forms, see optimize._tune
    "native": (("dense_blocks_to_native", MappingProxyType({"min_positions": 0})),) + _FAST,
})


def pass_names(mode: str) -> list[str]:
    """The passes of ``mode``'s recipe, in order (what the metadata report lists)."""
    return [name for name, _ in RECIPES[mode]]


def settings(mode: str, name: str) -> dict[str, Any]:
    """The keyword arguments ``mode``'s recipe gives the pass ``name``."""
    for step, kwargs in RECIPES[mode]:
        if step == name:
            return dict(kwargs)
    raise KeyError(f"recipe {mode!r} has no pass {name!r}")
