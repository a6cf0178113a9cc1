"""Architecture descriptions as plain data (no torch), shared by models, loaders and counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

__all__ = ["CondenseNetConfig", "DenseNetConfig", "parse_int_list"]


def parse_int_list(text: str) -> list[int]:
    """``"14-14-14"`` or ``"14,14,14"`` -> ``[14, 14, 14]`` (the original CLI used dashes)."""
    return [int(part) for part in text.replace(",", "-").split("-") if part]


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
        if len(self.stages) != len(self.growth):
            raise ValueError(f"stages {self.stages} and growth {self.growth} differ in length")
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
