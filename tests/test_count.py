"""count.py: the converted models' reference FLOPs/params, the original README's CIFAR table, the generic
module rules, hooks and mode restored."""

from __future__ import annotations

import pytest
import torch
from _ckpt_factory import tiny_config
from torch import nn

from condense_deploy.architectures.condensenet import CondenseNet
from condense_deploy.architectures.registry import create_model
from condense_deploy.count import count_model
from condense_deploy.errors import CondenseDeployError


@pytest.mark.parametrize("name,flops,params", [
    ("condensenet74_c4g4", 529_328_264, 4_773_944),
    ("condensenet74_c8g8", 274_233_480, 2_935_416),
    ("condensenet50_cifar", 28_639_514, 214_186),
])
def test_converted_check_figures(name: str, flops: int, params: int) -> None:
    model = create_model(name, converted=True)
    size = (3, 224, 224) if "cifar" not in name else (3, 32, 32)
    assert count_model(model, size) == (flops, params)


# The original README's CIFAR-10 table (training form); only -50 is given to the unit.
@pytest.mark.parametrize("name,mflops,params", [
    ("condensenet50_cifar", None, 216_506),
    ("condensenet74_cifar", 51.90, 405_466),
    ("condensenet86_cifar", 65.82, 520_202),
    ("condensenet98_cifar", 81.26, 648_442),
    ("condensenet110_cifar", 98.24, 790_186),
    ("condensenet122_cifar", 116.74, 945_434),
    ("condensenet182_cifar", 512.67, 4_221_946),
])
def test_training_form_cifar_table(name: str, mflops: float | None, params: int) -> None:
    flops, counted = count_model(create_model(name), (3, 32, 32))
    assert counted == params
    if mflops is None:
        assert flops == 28_641_834
    else:
        assert round(flops / 1e6, 2) == mflops


def test_learned_group_conv_and_converted_layer_rules() -> None:
    """LGC = BN (weight+bias) + ReLU (numel) + dense 1x1 / C; the converted layer's index is free."""
    from condense_deploy.architectures.layers import CondenseConv, LearnedGroupConv

    expected = (16 * 64 + 16 * 32 * 64 // 4, 2 * 16 + 16 * 32 // 4)
    assert count_model(LearnedGroupConv(16, 32, groups=4, condense_factor=4), (16, 8, 8)) == expected
    assert count_model(CondenseConv(16, 32, groups=4), (16, 8, 8)) == expected
    # whole models: the two forms differ only in the classifier (F vs F/2 inputs)
    cfg = tiny_config(4, 4)
    (flops_t, params_t) = count_model(CondenseNet(cfg), (3, 32, 32))
    (flops_c, params_c) = count_model(CondenseNet(cfg, converted=True), (3, 32, 32))
    half = (cfg.num_features - cfg.num_features // 2) * cfg.num_classes
    assert (flops_t - flops_c, params_t - params_c) == (half, half)


def test_generic_modules() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True),   # 3*8*9*8*8 = 13824, params 224
        nn.BatchNorm2d(8),                                    # params 16 (running stats excluded)
        nn.ReLU6(),                                           # 8*8*8 = 512
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # 8*8*9*64/8 = 4608, params 72
        nn.ReLU(inplace=True),                                # 512
        nn.MaxPool2d(2),                                      # 8*4*4*4 = 512
        nn.AvgPool2d(2, stride=2),                            # 8*2*2*4 = 128
        nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1),                              # 8*2*2 = 32
        nn.Flatten(),
        nn.Identity(),
        nn.Linear(8, 5),                                      # 45 FLOPs, 45 params
    )
    flops, params = count_model(model, (3, 16, 16))
    assert flops == 13824 + 512 + 4608 + 512 + 512 + 128 + 32 + 45
    assert params == 224 + 16 + 72 + 45


def test_functional_ops_are_free_and_shared_modules_count_per_call() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1, bias=False)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.relu(self.conv(x))
            return self.relu(torch.cat([x, y], 1)[:, :4] + y)  # relu called twice, add/cat free

    flops, params = count_model(Residual(), (4, 2, 2))
    assert (flops, params) == (4 * 4 * 4 + 16 + 16, 16)


def test_baselines_are_counted() -> None:
    pytest.importorskip("condense_deploy.architectures.baselines")
    flops, params = count_model(create_model("resnet18"), (3, 224, 224))
    assert params == 11_689_512 and 1.8e9 < flops < 1.85e9


def test_unknown_layer_is_an_error_and_hooks_are_removed() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU())
    with pytest.raises(CondenseDeployError, match="unknown layer type GELU at 1"):
        count_model(model, (3, 8, 8))

    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    conv = nn.Conv2d(3, 4, 1)
    model = nn.Sequential(conv, nn.ReLU())
    model.add_module("boom", nn.Sequential(nn.Identity()))
    model.boom.forward = Boom().forward
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        count_model(model, (3, 8, 8))
    assert not conv._forward_hooks and model.training  # hooks removed and mode restored


def test_mode_restored_after_counting() -> None:
    model = create_model("condensenet50_cifar").train()
    count_model(model, (3, 32, 32))
    assert model.training
