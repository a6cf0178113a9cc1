"""CondenseNet (Huang, Liu, van der Maaten, Weinberger, CVPR 2018), training and converted forms.

The training form uses LearnedGroupConv for every 1x1 conv and a plain Linear classifier; the
converted form replaces them with CondenseConv (index + grouped conv + shuffle) and CondenseLinear.
Module names reproduce the original repository's state_dict keys.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .config import CLASSIFIER_FORMS, CondenseNetConfig
from .layers import BnReluConv, CondenseConv, CondenseLinear, LearnedGroupConv, stage_for_progress
from .registry import register_family

__all__ = ["CondenseNet", "learned_group_convs"]


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, cfg: CondenseNetConfig, converted: bool) -> None:
        super().__init__()
        mid = cfg.bottleneck * growth
        if converted:
            kept = in_channels * cfg.group_1x1 // cfg.condense_factor
            self.conv_1: nn.Module = CondenseConv(kept, mid, cfg.group_1x1)
        else:
            self.conv_1 = LearnedGroupConv(in_channels, mid, cfg.group_1x1, cfg.condense_factor,
                                           cfg.dropout_rate)
        self.conv_2 = BnReluConv(mid, growth, kernel_size=3, padding=1, groups=cfg.group_3x3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)


class _Transition(nn.Module):
    """A bare 2x2 average pool: CondenseNet's transitions have no conv."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class CondenseNet(nn.Module):
    """CondenseNet; ``converted=True`` builds the deployed form (load its weights, or use convert).

    ``classifier`` (converted form only): ``"half"`` is the original CondenseLinear keeping half of
    the inputs, ``"full"`` a plain Linear over all of them.
    """

    def __init__(self, cfg: CondenseNetConfig, converted: bool = False, classifier: str = "half") -> None:
        super().__init__()
        if classifier not in CLASSIFIER_FORMS:
            raise ValueError(f"classifier must be one of {CLASSIFIER_FORMS}, not {classifier!r}")
        self.cfg = cfg
        self.converted = converted
        self.classifier_form = classifier if converted else "full"
        self.features = nn.Sequential()
        channels = 2 * cfg.growth[0]
        self.features.add_module(
            "init_conv",
            nn.Conv2d(3, channels, 3, stride=cfg.init_stride, padding=1, bias=False),
        )
        for i, (layers, growth) in enumerate(zip(cfg.stages, cfg.growth, strict=True)):
            block = nn.Sequential()
            for j in range(layers):
                block.add_module(f"denselayer_{j + 1}",
                                 _DenseLayer(channels + j * growth, growth, cfg, converted))
            self.features.add_module(f"denseblock_{i + 1}", block)
            channels += layers * growth
            if i < len(cfg.stages) - 1:
                self.features.add_module(f"transition_{i + 1}", _Transition())
        self.features.add_module("norm_last", nn.BatchNorm2d(channels))
        self.features.add_module("relu_last", nn.ReLU(inplace=True))
        self.features.add_module("pool_last", nn.AvgPool2d(cfg.pool_size))
        if converted and classifier == "half":
            self.classifier: nn.Module = CondenseLinear(channels, cfg.num_classes, 0.5)
        else:
            self.classifier = nn.Linear(channels, cfg.num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor, progress: float | None = None) -> torch.Tensor:
        """Logits; ``progress`` (training only) first advances condensing to that point."""
        if progress is not None:
            self.condense(progress)
        features = self.features(x)
        return self.classifier(torch.flatten(features, 1))

    def condense(self, progress: float) -> int:
        """Bring every learned group conv to the stage of ``progress``; returns connections removed."""
        return sum(
            layer.condense_to(stage_for_progress(progress, layer.condense_factor))
            for layer in learned_group_convs(self)
        )

    def lasso_loss(self) -> torch.Tensor:
        losses = [layer.lasso_loss() for layer in learned_group_convs(self)]
        return torch.stack(losses).sum() if losses else torch.zeros(())


def learned_group_convs(model: nn.Module) -> list[LearnedGroupConv]:
    """Every LearnedGroupConv in ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, LearnedGroupConv)]


def _init_weights(model: nn.Module) -> None:
    """The original initialisation: He-normal convs, BN 1/0, zero Linear bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.bias.data.zero_()


@register_family("condensenet")
def build_condensenet(card: dict[str, Any], converted: bool = False, **overrides: Any) -> CondenseNet:
    """A CondenseNet as ``card`` describes it (training form unless ``converted``)."""
    return CondenseNet(CondenseNetConfig.from_card(card, **overrides), converted=converted)
