"""Architecture descriptions as plain data (no torch), shared by models, loaders and counters."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

__all__ = [
    "ARCH_LIMITS",
    "CLASSIFIER_FORMS",
    "CLASSIFIER_MODES",
    "CondenseNetConfig",
    "DenseNetConfig",
    "check_condensenet",
    "parse_int_list",
]

# How a CondenseNet's classifier reaches its deployed form (``train --classifier``):
#   condense  half of its inputs (smallest column L1 norm) masked at the last condensing stage
#             (progress 0.5), so training adapts; the converted model computes the trained one
#   full      every input kept: the converted classifier is the trained one (a plain Linear)
#   half      the original: half of its inputs dropped at conversion, with no adaptation
#   finetune  half dropped at conversion, then the kept classifier briefly retrained on the data
CLASSIFIER_MODES = ("condense", "full", "half", "finetune")
# The converted classifier's two forms: "half" (CondenseLinear keeping int(F/2) inputs, the original
# converted format) and "full" (a plain Linear over all F inputs).
CLASSIFIER_FORMS = ("half", "full")


def parse_int_list(text: str) -> list[int]:
    """``"14-14-14"`` or ``"14,14,14"`` -> ``[14, 14, 14]`` (the original CLI used dashes)."""
    return [int(part) for part in text.replace(",", "-").split("-") if part]


# (min, max) of every number an architecture description holds: the one place train's --stages,
# --growth, ... and every command's --num-classes are bounded (max keeps a typo from allocating GBs).
ARCH_LIMITS: dict[str, tuple[int, int]] = {
    "stages": (1, 256), "growth": (1, 1024), "bottleneck": (1, 64), "group_1x1": (1, 256),
    "group_3x3": (1, 256), "condense_factor": (1, 256), "num_classes": (1, 100_000),
}


def check_condensenet(stages: list[int], growth: list[int], bottleneck: int = 4, group_1x1: int = 4,
                      group_3x3: int = 4, condense_factor: int = 4, dropout_rate: float = 0.0,
                      num_classes: int = 10) -> None:
    """Raise ``ValueError`` (naming the option) unless a CondenseNet with these numbers can be built.

    The same rules as the layers (torch-free), so train, export and inspect reject a description at
    the command line instead of deep inside torch.
    """
    values = {"bottleneck": bottleneck, "group_1x1": group_1x1, "group_3x3": group_3x3,
              "condense_factor": condense_factor, "num_classes": num_classes}
    for key, number in [*values.items(), *(("stages", n) for n in stages), *(("growth", k) for k in growth)]:
        low, high = ARCH_LIMITS[key]
        if not isinstance(number, numbers.Integral) or not low <= number <= high:
            raise ValueError(f"--{key.replace('_', '-')} {number!r}: must be a whole number in {low}..{high}")
    if not stages or len(stages) != len(growth):
        raise ValueError(f"--stages {stages} and --growth {growth} differ in length (or are empty)")
    if not (isinstance(dropout_rate, (int, float)) and 0.0 <= dropout_rate < 1.0):
        raise ValueError(f"--dropout-rate {dropout_rate!r}: must be in [0, 1)")
    channels = 2 * growth[0]
    for block, (layers, k) in enumerate(zip(stages, growth, strict=True)):
        width = bottleneck * k
        if width % group_1x1 or width % group_3x3 or k % group_3x3:
            raise ValueError(f"block {block + 1}: growth {k} x bottleneck {bottleneck} (and growth {k}) must "
                             f"be divisible by --group-1x1 {group_1x1} and --group-3x3 {group_3x3}")
        for _ in range(layers):
            if channels % group_1x1 or channels % condense_factor:
                raise ValueError(f"block {block + 1}: a layer's {channels} input channels are not divisible "
                                 f"by --group-1x1 {group_1x1} and --condense-factor {condense_factor}")
            channels += k


_Config = TypeVar("_Config", bound="_KindConfig")


class _KindConfig:
    """What follows from ``kind``, as in the original code: ``"cifar"`` (stride-1 stem, 32x32 input,
    avgpool 8) or ``"imagenet"`` (stride-2 stem, 224x224 input, avgpool 7); and reading a zoo card."""

    kind: str

    @property
    def init_stride(self) -> int:
        return 1 if self.kind == "cifar" else 2

    @property
    def pool_size(self) -> int:
        return 8 if self.kind == "cifar" else 7

    @property
    def image_size(self) -> int:
        return 32 if self.kind == "cifar" else 224

    @classmethod
    def from_card(cls: type[_Config], card: dict[str, Any], **overrides: Any) -> _Config:
        """The card's architecture numbers; ``overrides`` that are not None replace them."""
        arch = dict(card["arch"])
        arch.setdefault("num_classes", card["num_classes"])
        arch.setdefault("kind", "cifar" if card["dataset"].startswith("cifar") else "imagenet")
        arch.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**arch)


@dataclass
class CondenseNetConfig(_KindConfig):
    """Everything that fixes a CondenseNet's shapes.

    ``kind`` is ``"cifar"`` (stride-1 stem, 32x32 input, avgpool 8) or ``"imagenet"`` (stride-2 stem,
    224x224 input, avgpool 7), as in the original code.
    """

    stages: list[int]
    growth: list[int]
    bottleneck: int = 4
    group_1x1: int = 4
    group_3x3: int = 4
    condense_factor: int = 4
    dropout_rate: float = 0.0
    num_classes: int = 10
    kind: str = "cifar"
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_condensenet(self.stages, self.growth, self.bottleneck, self.group_1x1, self.group_3x3,
                          self.condense_factor, self.dropout_rate, self.num_classes)
        if self.kind not in ("cifar", "imagenet"):
            raise ValueError(f"kind must be 'cifar' or 'imagenet', not {self.kind!r}")

    @property
    def num_features(self) -> int:
        """Channels entering the classifier."""
        return 2 * self.growth[0] + sum(n * k for n, k in zip(self.stages, self.growth, strict=True))

    @property
    def depth(self) -> int:
        """The paper's depth: two convs per dense layer, plus stem and classifier."""
        return 2 * sum(self.stages) + 2

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


@dataclass
class DenseNetConfig(_KindConfig):
    """DenseNet-BC as in the original repository: 1x1 bottleneck, compressing transitions."""

    stages: list[int]
    growth: list[int]
    bottleneck: int = 4
    group_1x1: int = 1
    group_3x3: int = 1
    reduction: float = 0.5
    num_classes: int = 10
    kind: str = "cifar"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
