"""Architectures: zoo cards, entrypoints, original state_dict keys, condensing schedule."""

from __future__ import annotations

import pytest
import torch

from condense_deploy.architectures.condensenet import CondenseNet, learned_group_convs
from condense_deploy.architectures.config import CondenseNetConfig
from condense_deploy.architectures.layers import LearnedGroupConv, channel_shuffle, stage_for_progress
from condense_deploy.architectures.registry import create_model, get_card, list_models, registered_entrypoints
from condense_deploy.errors import CondenseDeployError


def test_cards_and_entrypoints_match_one_to_one() -> None:
    assert registered_entrypoints() == list_models()


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(CondenseDeployError, match="unknown model 'nope'"):
        get_card("nope")


@pytest.mark.parametrize("name", list_models("condensenet*_cifar") + ["densenet_bc100_cifar"])
def test_cifar_models_run(name: str) -> None:
    model = create_model(name).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_num_classes_override() -> None:
    assert create_model("condensenet50_cifar", num_classes=100).classifier.out_features == 100


def test_original_state_dict_keys() -> None:
    keys = set(create_model("condensenet50_cifar").state_dict())
    prefix = "features.denseblock_1.denselayer_1."
    for key in ["features.init_conv.weight", prefix + "conv_1._mask", prefix + "conv_1._count",
                prefix + "conv_1._stage", prefix + "conv_1.norm.weight", prefix + "conv_1.conv.weight",
                prefix + "conv_2.norm.running_var", prefix + "conv_2.conv.weight",
                "features.norm_last.weight", "classifier.weight", "classifier.bias"]:
        assert key in keys
    converted = set(create_model("condensenet50_cifar", converted=True).state_dict())
    for key in [prefix + "conv_1.index", prefix + "conv_1.norm.weight", prefix + "conv_1.conv.weight",
                "classifier.index", "classifier.linear.weight", "classifier.linear.bias"]:
        assert key in converted


def test_converted_imagenet_shapes() -> None:
    model = create_model("condensenet74_c4g4", converted=True)
    sd = model.state_dict()
    # first layer: 16 input channels, C=4 keeps 16*G/C = 16, output 4*8 = 32 channels in 4 groups
    assert sd["features.denseblock_1.denselayer_1.conv_1.conv.weight"].shape == (32, 4, 1, 1)
    assert sd["classifier.index"].shape == (model.cfg.num_features // 2,)


@pytest.mark.parametrize("condense_factor", [2, 4, 8])
def test_stage_schedule(condense_factor: int) -> None:
    stages = [stage_for_progress(p / 1000, condense_factor) for p in range(1001)]
    assert stages[0] == 0 and stages[-1] == condense_factor - 1
    assert stages == sorted(stages)
    assert stage_for_progress(0.5, condense_factor) == condense_factor - 1
    assert stage_for_progress(0.4999, condense_factor) == condense_factor - 2


@pytest.mark.parametrize("groups,condense_factor", [(2, 2), (4, 4), (8, 8), (4, 8)])
def test_condensing_keeps_one_over_c_per_group(groups: int, condense_factor: int) -> None:
    layer = LearnedGroupConv(32, 16, groups, condense_factor)
    layer.condense_to(condense_factor - 1)
    kept = layer.kept_inputs()
    assert [len(k) for k in kept] == [32 // condense_factor] * groups
    mask = layer._mask[:, :, 0, 0]
    for group in range(groups):
        rows = mask[group::groups]
        assert torch.equal(rows, rows[:1].expand_as(rows))  # every output of a group sees the same inputs
    assert layer.lasso_loss().item() == 0.0


def test_pruning_removes_smallest_weights_first() -> None:
    layer = LearnedGroupConv(8, 4, groups=2, condense_factor=2)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.arange(1, 9, dtype=torch.float).repeat(4, 1).view(4, 8, 1, 1))
        layer.conv.weight[1::2, 0] = 100.0  # group 1 values input 0 highly
    layer.condense_to(1)
    assert layer.kept_inputs() == [[4, 5, 6, 7], [0, 5, 6, 7]]


def test_lasso_matches_definition() -> None:
    layer = LearnedGroupConv(8, 4, groups=2, condense_factor=4)
    w = layer.conv.weight[:, :, 0, 0]
    expected = sum(w[g::2].pow(2).sum(0).clamp(min=1e-6).sqrt().sum() for g in range(2))
    assert torch.allclose(layer.lasso_loss(), expected)


def test_model_condense_follows_progress() -> None:
    model = CondenseNet(CondenseNetConfig(stages=[2, 2, 2], growth=[4, 8, 8], num_classes=3))
    model.train()
    model(torch.randn(2, 3, 32, 32), progress=0.2)
    assert {m.stage for m in learned_group_convs(model)} == {1}
    model(torch.randn(2, 3, 32, 32), progress=0.9)
    assert {m.stage for m in learned_group_convs(model)} == {3}


def test_channel_shuffle_interleaves() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
