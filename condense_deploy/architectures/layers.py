"""CondenseNet building blocks: learned group conv (training form) and its converted forms.

Names of modules and buffers match the original ShichenLiu/CondenseNet code exactly, so their
state_dicts load one-to-one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BnReluConv",
    "CondenseConv",
    "CondenseLinear",
    "LearnedGroupConv",
    "channel_shuffle",
    "stage_for_progress",
]


def stage_for_progress(progress: float, condense_factor: int) -> int:
    """The condensing stage at training progress ``progress`` in [0, 1].

    Stage i (0-based) lasts while 2p < (i+1)/(C-1); all C-1 pruning events happen by p = 0.5,
    after which the layer sits in its final (optimisation) stage C-1.
    """
    for i in range(condense_factor - 1):
        if progress * 2 < (i + 1) / (condense_factor - 1):
            return i
    return condense_factor - 1


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channels: conv output k + i*(C/groups) of group i moves to k*groups + i.

    Written with -1 so an ONNX export keeps the batch and spatial sizes symbolic.
    """
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


class BnReluConv(nn.Sequential):
    """BN -> ReLU -> Conv (the original ``Conv``), pre-activation as in DenseNet."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module(
            "conv",
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False,
                      groups=groups),
        )


class LearnedGroupConv(nn.Module):
    """A 1x1 conv whose input connections are pruned per group while training.

    Output channel o belongs to group o mod G. Each condensing stage removes in_channels/C more
    inputs from every group (those with the smallest summed |W| over the group's outputs), so at
    the final stage each group keeps in_channels/C inputs. ``_mask`` (0/1, shape of the weight),
    ``_count`` (inputs removed per group) and ``_stage`` are buffers, saved with the checkpoint.
    """

    _count: torch.Tensor
    _stage: torch.Tensor
    _mask: torch.Tensor
    drop: nn.Dropout

    def __init__(
        self, in_channels: int, out_channels: int, groups: int, condense_factor: int | None = None,
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.condense_factor = groups if condense_factor is None else condense_factor
        if in_channels % groups or out_channels % groups or in_channels % self.condense_factor:
            raise ValueError(
                f"LearnedGroupConv: in={in_channels}, out={out_channels} not divisible by "
                f"groups={groups} / condense factor={self.condense_factor}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.dropout_rate = dropout_rate
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        if dropout_rate > 0:
            self.drop = nn.Dropout(dropout_rate, inplace=False)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("_count", torch.zeros(1))
        self.register_buffer("_stage", torch.zeros(1))
        self.register_buffer("_mask", torch.ones(self.conv.weight.shape))

    @property
    def stage(self) -> int:
        return int(self._stage[0])

    @property
    def count(self) -> int:
        return int(self._count[0])

    @property
    def final_stage(self) -> int:
        return self.condense_factor - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.norm(x))
        if self.dropout_rate > 0:
            x = self.drop(x)
        return F.conv2d(x, self.conv.weight * self._mask)

    @torch.no_grad()
    def condense_to(self, stage: int) -> int:
        """Advance to ``stage``, pruning in_channels/C inputs per group for each stage entered.

        Returns the number of weight connections removed (0 when already there).
        """
        removed = 0
        while self.stage < stage:
            removed += self._prune_step(self.in_channels // self.condense_factor)
            self._stage.fill_(self.stage + 1)
        return removed

    def _prune_step(self, delta: int) -> int:
        # rows o = k*G + i belong to group i: view them as [d_out, G, in] and treat all groups at once
        d_out = self.out_channels // self.groups
        shape = (d_out, self.groups, self.in_channels)
        weight = (self.conv.weight * self._mask).abs()[:, :, 0, 0].view(shape)
        mask = self._mask[:, :, 0, 0].view(shape)  # a view: writing it writes the buffer
        alive = mask.amax(0) > 0
        scores = weight.sum(0).masked_fill(~alive, float("inf"))  # [G, in]
        dropped = torch.sort(scores, dim=1, stable=True).indices[:, :delta]  # [G, delta]
        keep = torch.ones_like(scores).scatter_(1, dropped, 0.0)
        mask.mul_(keep)
        self._count.fill_(self.count + delta)
        return delta * d_out * self.groups

    def lasso_loss(self) -> torch.Tensor:
        """Group lasso: per (group, input) sqrt(sum of W^2 over the group's outputs); 0 when done."""
        if self.stage >= self.final_stage:
            return self.conv.weight.new_zeros(())
        weight = (self.conv.weight * self._mask)[:, :, 0, 0].pow(2)
        d_out = self.out_channels // self.groups
        per_group = weight.view(d_out, self.groups, self.in_channels).sum(0)
        return per_group.clamp(min=1e-6).sqrt().sum()

    def kept_inputs(self) -> list[list[int]]:
        """For each group, the input channels still connected, ascending."""
        mask = self._mask[:, :, 0, 0]
        return [
            torch.nonzero(mask[group] > 0).flatten().tolist() for group in range(self.groups)
        ]


class CondenseConv(nn.Module):
    """The converted 1x1 layer: Gather(index) -> BN -> ReLU -> grouped Conv -> channel shuffle."""

    index: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
        self.register_buffer("index", torch.zeros(in_channels, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.index_select(x, 1, self.index)
        x = self.conv(self.relu(self.norm(x)))
        return channel_shuffle(x, self.groups)


class CondenseLinear(nn.Module):
    """The converted classifier: keeps ``int(in_features * keep)`` inputs, selected by ``index``."""

    index: torch.Tensor

    def __init__(self, in_features: int, out_features: int, keep: float = 0.5) -> None:
        super().__init__()
        self.in_features = int(in_features * keep)
        self.out_features = out_features
        self.linear = nn.Linear(self.in_features, out_features)
        self.register_buffer("index", torch.zeros(self.in_features, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.index_select(x, 1, self.index))
