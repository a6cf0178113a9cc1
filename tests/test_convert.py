"""convert.py: the original converter's tensors, the equivalence property, refusing unfinished models."""

from __future__ import annotations

import pytest
import torch
from _ckpt_factory import tiny_config, trained_model

from condense_deploy.architectures.condensenet import CondenseNet, learned_group_convs
from condense_deploy.architectures.layers import CondenseConv, LearnedGroupConv
from condense_deploy.convert import check_equivalence, convert_model
from condense_deploy.errors import CondenseDeployError


def _reference_condensing_conv(layer: LearnedGroupConv) -> dict[str, torch.Tensor]:
    """The original CondensingConv's element loop, restated: walk groups, then input channels in
    ascending order, and take channel j into group i's next slot if row i of the mask keeps it."""
    groups, out_channels = layer.groups, layer.out_channels
    in_kept = layer.in_channels * groups // layer.condense_factor
    per_group, d_out = in_kept // groups, out_channels // groups
    weight = torch.zeros(out_channels, per_group, 1, 1)
    index = torch.zeros(in_kept, dtype=torch.long)
    norm = {name: torch.zeros(in_kept) for name in ("weight", "bias", "running_mean", "running_var")}
    mask = layer._mask.mean(-1).mean(-1)
    slot = 0
    for i in range(groups):
        for j in range(layer.in_channels):
            if slot < per_group * (i + 1) and mask[i, j] == 1:
                for k in range(d_out):
                    weight[k + i * d_out, slot % per_group] = layer.conv.weight[i + k * groups, j]
                for name in norm:
                    norm[name][slot] = getattr(layer.norm, name)[j]
                index[slot] = j
                slot += 1
    return {"conv.weight": weight, "index": index, **{f"norm.{n}": t for n, t in norm.items()}}


@pytest.mark.parametrize("groups,condense", [(2, 2), (4, 4), (8, 8), (2, 4), (4, 8), (8, 4)])
def test_tensors_equal_the_original_converter(groups: int, condense: int) -> None:
    model = trained_model(tiny_config(groups, condense, groups_3x3=2))
    converted = convert_model(model)
    modules = dict(converted.named_modules())
    for name, layer in model.named_modules():
        if isinstance(layer, LearnedGroupConv):
            new = modules[name]
            assert isinstance(new, CondenseConv)
            for key, expected in _reference_condensing_conv(layer).items():
                assert torch.equal(new.state_dict()[key], expected), f"{name}.{key}"
    # everything that is not a learned 1x1 conv or the classifier is copied unchanged
    old_state, new_state = model.state_dict(), converted.state_dict()
    for key, value in old_state.items():
        if ".conv_1." not in key and not key.startswith("classifier."):
            assert torch.equal(new_state[key], value), key


def test_classifier_keeps_half_by_l1_norm_in_ascending_importance() -> None:
    model = trained_model(tiny_config(num_classes=5))
    features = model.classifier.in_features
    with torch.no_grad():
        importance = torch.randperm(features, generator=torch.Generator().manual_seed(3)).float() + 1
        model.classifier.weight.copy_(torch.sign(torch.randn(5, features)) * importance / 5)
    converted = convert_model(model)
    keep = int(features * 0.5)
    expected = torch.argsort(importance)[features - keep:]
    assert torch.equal(converted.classifier.index, expected)
    norms = model.classifier.weight.abs().sum(0)[converted.classifier.index]
    assert torch.all(norms[1:] > norms[:-1])  # ascending importance, largest last
    assert torch.equal(converted.classifier.linear.weight, model.classifier.weight[:, expected])
    assert torch.equal(converted.classifier.linear.bias, model.classifier.bias)


@pytest.mark.parametrize("groups,condense,groups_3x3", [(2, 2, 2), (4, 4, 4), (8, 8, 8), (2, 4, 4),
                                                        (4, 8, 2), (8, 4, 8)])
def test_equivalence(groups: int, condense: int, groups_3x3: int) -> None:
    model = trained_model(tiny_config(groups, condense, groups_3x3), seed=groups * 10 + condense)
    converted = convert_model(model)
    diff = check_equivalence(model, converted, (3, 32, 32), batch=3, seed=1)
    assert 0 <= diff <= 1e-5
    # the property is not vacuous: outputs vary with the input and a wrong channel breaks it
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = converted(x)
    assert out.std() > 1e-3
    broken = convert_model(model)
    layer = broken.features.denseblock_2.denselayer_1.conv_1
    layer.index[0] = (layer.index[0] + 1) % 24
    with pytest.raises(CondenseDeployError, match=r"max abs diff .* > atol 1e-05"):
        check_equivalence(model, broken, (3, 32, 32))


def test_equivalence_on_imagenet_c8g8_full_size() -> None:
    from _ckpt_factory import randomize

    from condense_deploy.architectures.registry import create_model

    model = randomize(create_model("condensenet74_c8g8"))
    model.condense(1.0)
    converted = convert_model(model)
    assert check_equivalence(model.eval(), converted, (3, 224, 224), batch=1) <= 1e-5


def test_input_untouched_and_new_model_returned() -> None:
    model = trained_model(tiny_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_model(model)
    assert converted is not model and converted.converted and not model.converted
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("progress,stage", [(0.0, 0), (0.2, 1), (0.4, 2)])
def test_refuses_unfinished_condensing(progress: float, stage: int) -> None:
    model = trained_model(tiny_config(4, 4), progress=progress)
    with pytest.raises(CondenseDeployError,
                       match=rf"features\.denseblock_1\.denselayer_1\.conv_1 is at condensing stage "
                             rf"{stage} of 3 \(C=4\)"):
        convert_model(model)


def test_refuses_later_layer_and_bad_masks() -> None:
    model = trained_model(tiny_config(4, 4))
    learned_group_convs(model)[3]._stage.fill_(2)
    with pytest.raises(CondenseDeployError,
                       match=r"denseblock_2\.denselayer_2\.conv_1 is at condensing stage 2"):
        convert_model(model)
    model = trained_model(tiny_config(4, 4))
    learned_group_convs(model)[0]._mask[1, :, 0, 0] = 1  # an output that sees every input
    with pytest.raises(CondenseDeployError, match=r"denselayer_1\.conv_1\._mask group 1 keeps"):
        convert_model(model)


def test_refuses_converted_and_non_condensenet() -> None:
    with pytest.raises(CondenseDeployError, match="already in converted form"):
        convert_model(CondenseNet(tiny_config(), converted=True))
    with pytest.raises(CondenseDeployError, match="expected a CondenseNet"):
        convert_model(torch.nn.Linear(2, 2))
