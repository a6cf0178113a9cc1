"""FLOPs and parameters by the rules of the original ``utils.measure_model``.

One multiply-add is one FLOP. Conv: in*out*kh*kw*Ho*Wo/groups; LearnedGroupConv: the dense 1x1 conv
divided by the condense factor C (its params too), plus its BN and ReLU; ReLU/ReLU6: numel of the
input; average and max pooling: C*Ho*Wo*k^2; adaptive average pooling: numel of the input; Linear:
weight + bias numel. BN counts its weight and bias as params (not the running statistics) and no
FLOPs. Index selection, concatenation, channel shuffle and other functional ops are free. Counting
runs one forward pass on a 1-image batch with hooks on the measured modules; an unknown leaf module
type is an error, so a new layer is never silently counted as free.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .architectures.layers import LearnedGroupConv
from .errors import CondenseDeployError

__all__ = ["count_model"]

_FREE = (nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Identity)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6)
_POOLS = (nn.AvgPool2d, nn.MaxPool2d)
_MEASURED = (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool2d, *_FREE, *_NORMS, *_ACTIVATIONS, *_POOLS)


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules measured as a whole: learned group convs and every other leaf (as the original)."""
    units: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Module) -> None:
        children = list(module.named_children())
        if isinstance(module, LearnedGroupConv) or not children:
            units.append((prefix or type(module).__name__, module))
            return
        for child_name, child in children:
            walk(f"{prefix}.{child_name}" if prefix else child_name, child)

    walk("", model)
    for name, module in units:
        if not isinstance(module, (LearnedGroupConv, *_MEASURED)):
            raise CondenseDeployError(f"count: unknown layer type {type(module).__name__} at {name}")
    return units


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _measure(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(flops, params) of one call of ``module`` on input ``x`` giving output ``y`` (batch 1)."""
    if isinstance(module, LearnedGroupConv):
        conv = module.conv
        kh, kw = conv.kernel_size
        dense = conv.in_channels * conv.out_channels * kh * kw * y.shape[2] * y.shape[3]
        norm = module.norm.weight.numel() + module.norm.bias.numel()
        factor = module.condense_factor
        return x.numel() + dense // factor, norm + conv.weight.numel() // factor
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        flops = module.in_channels * module.out_channels * kh * kw * y.shape[2] * y.shape[3] // module.groups
        return flops, _n_params(module)
    if isinstance(module, _ACTIVATIONS):
        return x.numel(), 0
    if isinstance(module, _POOLS):
        kh, kw = _pair(module.kernel_size)
        return y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] * kh * kw, 0
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return x.numel(), 0
    if isinstance(module, nn.Linear):
        params = _n_params(module)
        return x.numel() // module.in_features * params, params
    if isinstance(module, _NORMS):
        return 0, (module.weight.numel() + module.bias.numel()) if module.affine else 0
    return 0, _n_params(module)


def count_model(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[int, int]:
    """(FLOPs, params) of ``model`` for one image of ``input_size`` (C, H, W), original rules.

    Params are counted once per module that runs; FLOPs once per call. The model's mode and hooks are
    restored however the pass ends.
    """
    units = _units(model)
    totals = {"flops": 0, "params": 0}
    seen: set[int] = set()

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        flops, params = _measure(module, inputs[0], output)
        totals["flops"] += flops
        if id(module) not in seen:
            seen.add(id(module))
            totals["params"] += params

    # inplace ReLU overwrites its input, but only the shape is used, so a post-hook is exact
    handles = []
    was_training = model.training
    try:
        for _, module in units:
            handles.append(module.register_forward_hook(hook))
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return int(totals["flops"]), int(totals["params"])
