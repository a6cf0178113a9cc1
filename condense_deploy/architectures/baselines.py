"""Baseline ImageNet networks for the inference-time table, written here (torchvision does not install).

- VGG-16: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", 2015
  (configuration D, no batch norm, as torchvision's ``vgg16``).
- ResNet-18: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
- MobileNet v1 1.0-224: Howard et al., "MobileNets", 2017 (the paper's Table 1, BN + ReLU after every
  conv) - the network CondenseNet's paper compares against on ARM.
- MobileNetV2 1.0: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
- ShuffleNetV2 x1.0: Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
  Design", ECCV 2018.

Shapes, and so parameter counts, equal the reference implementations (torchvision's, and the paper's
table for MobileNet v1); a test checks the counts. Weights are random (initialised as torchvision does):
these models exist to be timed, not to be evaluated.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layers import channel_shuffle
from .registry import register_family

__all__ = ["VGG", "MobileNetV1", "MobileNetV2", "ResNet", "ShuffleNetV2"]


# --------------------------------------------------------------------------------------------- blocks

class ConvBnAct(nn.Sequential):
    """Conv (no bias) -> BN -> optional activation, the unit every compact net is built from."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels),
        )
        if act is not None:
            self.append(act(inplace=True))


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convs with an identity (or strided 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class DepthwiseSeparable(nn.Sequential):
    """MobileNet v1's unit: depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            ConvBnAct(in_channels, in_channels, 3, stride, groups=in_channels),
            ConvBnAct(in_channels, out_channels, 1),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2's unit: 1x1 expand -> depthwise 3x3 -> linear 1x1 project, residual when shapes agree."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_channels, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBnAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            ConvBnAct(hidden, out_channels, 1, act=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: split channels (or duplicate the input when downsampling), transform one
    half, concatenate, shuffle with 2 groups."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        branch = out_channels // 2
        self.stride = stride
        self.branch1: nn.Module = nn.Identity()
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvBnAct(in_channels, in_channels, 3, stride, groups=in_channels, act=None),
                ConvBnAct(in_channels, branch, 1),
            )
        self.branch2 = nn.Sequential(
            ConvBnAct(in_channels if stride > 1 else branch, branch, 1),
            ConvBnAct(branch, branch, 3, stride, groups=branch, act=None),
            ConvBnAct(branch, branch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


# --------------------------------------------------------------------------------------------- models

class VGG(nn.Module):
    """VGG with biased convs and no BN (torchvision's ``vgg16``), 7x7 pooled features, 3 FC layers."""

    def __init__(self, layers: list[int | str], num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        channels = 3
        for item in layers:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*modules)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class ResNet(nn.Module):
    """ResNet with basic blocks: 7x7/2 stem, 3x3/2 max-pool, four stages, global pool, FC."""

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, blocks: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = 64
        for i, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(channels if j == 0 else width, width, stride if j == 0 else 1)
                     for j in range(count)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MobileNetV1(nn.Module):
    """MobileNet v1 (width 1.0): a 3x3/2 stem and 13 depthwise-separable units, as the paper's Table 1."""

    def __init__(self, layers: list[tuple[int, int]], num_classes: int = 1000) -> None:
        super().__init__()
        channels = 32
        units: list[nn.Module] = [ConvBnAct(3, channels, 3, 2)]
        for out_channels, stride in layers:
            units.append(DepthwiseSeparable(channels, out_channels, stride))
            channels = out_channels
        self.features = nn.Sequential(*units)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0): stem, 17 inverted residuals, 1x1 to 1280, dropout, FC."""

    def __init__(self, settings: list[tuple[int, int, int, int]], num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        channels = 32
        layers: list[nn.Module] = [ConvBnAct(3, channels, 3, 2, act=nn.ReLU6)]
        for expand, width, repeats, stride in settings:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, width, stride if i == 0 else 1, expand))
                channels = width
        layers.append(ConvBnAct(channels, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2: 3x3/2 stem, max-pool, three stages of shuffle units, 1x1 conv5, global mean, FC."""

    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential

    def __init__(self, repeats: list[int], widths: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(3, widths[0], 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = widths[0]
        for i, (count, width) in enumerate(zip(repeats, widths[1:-1], strict=True)):
            units = [ShuffleUnit(channels if j == 0 else width, width, 2 if j == 0 else 1)
                     for j in range(count)]
            self.add_module(f"stage{i + 2}", nn.Sequential(*units))
            channels = width
        self.conv5 = ConvBnAct(channels, widths[-1], 1)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean((2, 3)))


# -------------------------------------------------------------------------------------------- helpers

def _init_weights(model: nn.Module) -> None:
    """He-normal convs, BN 1/0, N(0, 0.01) FCs with zero bias.

    Unlike torchvision, the He fan is the fan-in, which counts a depthwise kernel as 9 inputs: with
    fan-out, random MobileNets in eval mode shrink activations to ~1e-18 (denormals, which distort
    timings, and logits so small that an export check with an absolute tolerance cannot fail).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def _create(card: dict[str, Any], cls: type[nn.Module], *args: Any,
            num_classes: int | None = None) -> nn.Module:
    """Build ``cls`` with the card's class count unless overridden."""
    classes = card["num_classes"] if num_classes is None else num_classes
    return cls(*args, num_classes=classes)


# ------------------------------------------------------------------------------ architecture numbers

_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_MOBILENET_V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
    (1024, 2), (1024, 1)]
# (expand ratio t, output channels c, repeats n, first stride s), the paper's Table 2
_MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)]


@register_family("vgg16")
def build_vgg16(card: dict[str, Any], num_classes: int | None = None) -> nn.Module:
    return _create(card, VGG, _VGG16, num_classes=num_classes)


@register_family("resnet18")
def build_resnet18(card: dict[str, Any], num_classes: int | None = None) -> nn.Module:
    return _create(card, ResNet, [2, 2, 2, 2], num_classes=num_classes)


@register_family("mobilenet_v1")
def build_mobilenet_v1(card: dict[str, Any], num_classes: int | None = None) -> nn.Module:
    return _create(card, MobileNetV1, _MOBILENET_V1, num_classes=num_classes)


@register_family("mobilenet_v2")
def build_mobilenet_v2(card: dict[str, Any], num_classes: int | None = None) -> nn.Module:
    return _create(card, MobileNetV2, _MOBILENET_V2, num_classes=num_classes)


@register_family("shufflenet_v2_x1_0")
def build_shufflenet_v2_x1_0(card: dict[str, Any], num_classes: int | None = None) -> nn.Module:
    return _create(card, ShuffleNetV2, [4, 8, 4], [24, 116, 232, 464, 1024],
                   num_classes=num_classes)
