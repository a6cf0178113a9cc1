"""DenseNet-BC (Huang, Liu, van der Maaten, Weinberger, CVPR 2017) as the original CondenseNet
repository ships it: BN-ReLU-Conv bottleneck layers and compressing 1x1-conv transitions."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .condensenet import _init_weights
from .config import DenseNetConfig
from .layers import BnReluConv
from .registry import register_family

__all__ = ["DenseNet"]


def _make_divisible(x: int, divisor: int) -> int:
    return int((x // divisor + 1) * divisor) if x % divisor else int(x)


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, cfg: DenseNetConfig) -> None:
        super().__init__()
        mid = cfg.bottleneck * growth
        self.conv_1 = BnReluConv(in_channels, mid, kernel_size=1, groups=cfg.group_1x1)
        self.conv_2 = BnReluConv(mid, growth, kernel_size=3, padding=1, groups=cfg.group_3x3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)


class _Transition(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, cfg: DenseNetConfig) -> None:
        super().__init__()
        self.conv = BnReluConv(in_channels, out_channels, kernel_size=1, groups=cfg.group_1x1)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class DenseNet(nn.Module):
    """DenseNet-BC with the original repository's module names."""

    def __init__(self, cfg: DenseNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = nn.Sequential()
        channels = 2 * cfg.growth[0]
        self.features.add_module(
            "init_conv", nn.Conv2d(3, channels, 3, stride=cfg.init_stride, padding=1, bias=False)
        )
        for i, (layers, growth) in enumerate(zip(cfg.stages, cfg.growth, strict=True)):
            block = nn.Sequential()
            for j in range(layers):
                block.add_module(f"denselayer_{j + 1}", _DenseLayer(channels + j * growth, growth, cfg))
            self.features.add_module(f"denseblock_{i + 1}", block)
            channels += layers * growth
            if i < len(cfg.stages) - 1:
                out = _make_divisible(math.ceil(channels * cfg.reduction), cfg.group_1x1)
                self.features.add_module(f"transition_{i + 1}", _Transition(channels, out, cfg))
                channels = out
        self.features.add_module("norm_last", nn.BatchNorm2d(channels))
        self.features.add_module("relu_last", nn.ReLU(inplace=True))
        self.features.add_module("pool_last", nn.AvgPool2d(cfg.pool_size))
        self.classifier = nn.Linear(channels, cfg.num_classes)
        _init_weights(self)
        # The original's fan-out He init makes the compressing 1x1 transitions amplify: a fresh
        # DenseNet-BC-100 gives logits near 1e5 in eval mode, where float32 round-off alone exceeds
        # any export check. Fan-in keeps activations at unit scale and trains just as well.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_family("densenet")
def build_densenet(card: dict[str, Any], **overrides: Any) -> DenseNet:
    """A DenseNet-BC as ``card`` describes it."""
    return DenseNet(DenseNetConfig.from_card(card, **overrides))
