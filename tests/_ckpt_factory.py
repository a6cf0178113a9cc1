"""Build CondenseNet checkpoints in the exact layouts the original code and pytorchcv wrote.

Tests use these instead of downloading anything: tiny CIFAR-style (3 blocks) or ImageNet-style
(5 blocks) models with random weights *and* random BN statistics, so a conversion that mixes up a
channel changes the output.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch

from condense_deploy.architectures.condensenet import CondenseNet
from condense_deploy.architectures.config import CondenseNetConfig
from condense_deploy.convert import convert_model


def tiny_config(groups: int = 4, condense: int = 4, groups_3x3: int | None = None, kind: str = "cifar",
                num_classes: int = 10) -> CondenseNetConfig:
    blocks = 3 if kind == "cifar" else 5
    return CondenseNetConfig(stages=[2] * blocks, growth=[8] * blocks, bottleneck=4, group_1x1=groups,
                             group_3x3=groups if groups_3x3 is None else groups_3x3,
                             condense_factor=condense, num_classes=num_classes, kind=kind)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BN affine parameters and running statistics (a fresh model's are identities)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(123)
            elif isinstance(module, torch.nn.Linear):
                module.bias.copy_(torch.randn(module.out_features, generator=generator))
    return model


def trained_model(cfg: CondenseNetConfig, progress: float = 1.0, seed: int = 0) -> CondenseNet:
    """A training-form model condensed to the stage of ``progress`` (1.0: final stage)."""
    torch.manual_seed(seed)
    model = randomize(CondenseNet(cfg), seed)
    model.condense(progress)
    return model.eval()


def prefixed(state: dict, prefix: str = "module.", drop_nbt: bool = False) -> OrderedDict:
    return OrderedDict((prefix + k, v.clone()) for k, v in state.items()
                       if not (drop_nbt and k.endswith("num_batches_tracked")))


def save(obj: object, path: Path, legacy: bool = False) -> Path:
    if legacy:
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, path)
    return path


def original_training_checkpoint(model: CondenseNet, path: Path, legacy: bool = False) -> Path:
    """main.py's save_checkpoint: epoch, model, state_dict (DataParallel keys), best_prec1, optimizer."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    state = {"epoch": 300, "model": "condensenet", "state_dict": prefixed(model.state_dict()),
             "best_prec1": 5.5, "optimizer": optimizer.state_dict()}
    return save(state, path, legacy)


def original_converted_file(converted: CondenseNet, path: Path) -> Path:
    """As the 2017 release: {'state_dict'} with module. keys, no num_batches_tracked, legacy format."""
    return save({"state_dict": prefixed(converted.state_dict(), drop_nbt=True)}, path, legacy=True)


_TO_PYTORCHCV = [
    (r"^features\.init_conv\.weight$", "features.init_block.conv.weight"),
    (r"^features\.denseblock_(\d+)\.denselayer_(\d+)\.conv_1\.norm\.(.+)$",
     r"features.stage\1.unit\2.conv1.bn.\3"),
    (r"^features\.denseblock_(\d+)\.denselayer_(\d+)\.conv_1\.(conv\.weight|index)$",
     r"features.stage\1.unit\2.conv1.\3"),
    (r"^features\.denseblock_(\d+)\.denselayer_(\d+)\.conv_2\.norm\.(.+)$",
     r"features.stage\1.unit\2.conv2.bn.\3"),
    (r"^features\.denseblock_(\d+)\.denselayer_(\d+)\.conv_2\.conv\.weight$",
     r"features.stage\1.unit\2.conv2.conv.weight"),
    (r"^features\.norm_last\.(.+)$", r"features.post_activ.bn.\1"),
    (r"^classifier\.(.+)$", r"output.\1"),
]


def pytorchcv_state_dict(converted: CondenseNet) -> OrderedDict:
    """The key names of pytorchcv's converted CondenseNet (imgclsmob ``condensenet74_c4_g4``)."""
    out = OrderedDict()
    for key, value in converted.state_dict().items():
        for pattern, replacement in _TO_PYTORCHCV:
            if re.match(pattern, key):
                out[re.sub(pattern, replacement, key)] = value.clone()
                break
        else:
            raise AssertionError(f"no pytorchcv name for {key}")
    return out


def converted_pair(cfg: CondenseNetConfig, seed: int = 0) -> tuple[CondenseNet, CondenseNet]:
    model = trained_model(cfg, seed=seed)
    return model, convert_model(model)
