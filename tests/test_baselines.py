"""Baselines: exact parameter counts of the reference implementations, FLOPs by our counter, overrides."""

from __future__ import annotations

import pytest
import torch

from condense_deploy.architectures.registry import create_model, get_card, list_models
from condense_deploy.count import count_model

# torchvision's vgg16 / resnet18 / mobilenet_v2 / shufflenet_v2_x1_0 and MobileNet v1 1.0-224
PARAMS = {
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "mobilenet_v1": 4_231_976,
    "mobilenet_v2": 3_504_872,
    "shufflenet_v2_x1_0": 2_278_604,
}
# multiply-adds by the original measure_model rules (conv + FC + ReLU + pooling), measured with
# count_model; the published conv+FC figures are 1.82G, 569M and 15.5G.
FLOPS = {
    "vgg16": 15_489_975_784,
    "resnet18": 1_818_213_864,
    "mobilenet_v1": 573_834_216,
    "mobilenet_v2": 306_881_064,
    "shufflenet_v2_x1_0": 147_074_400,
}
BASELINES = sorted(PARAMS)
_BUILT: dict[str, torch.nn.Module] = {}


def built(name: str) -> torch.nn.Module:
    """Each baseline built once per session (VGG-16 alone initialises 138M weights)."""
    if name not in _BUILT:
        _BUILT[name] = create_model(name).eval()
    return _BUILT[name]


def test_every_baseline_card_is_covered() -> None:
    families = {get_card(name)["family"] for name in list_models()} - {"condensenet", "densenet"}
    assert sorted(families) == BASELINES


@pytest.mark.parametrize("name", BASELINES)
def test_parameter_count_matches_reference(name: str) -> None:
    model = built(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    assert get_card(name)["published"]["params"] == PARAMS[name]


@pytest.mark.parametrize("name", BASELINES)
def test_flops_by_the_shared_counter(name: str) -> None:
    flops, params = count_model(built(name), (3, 224, 224))
    assert params == PARAMS[name]
    assert flops == FLOPS[name]
    # within 3% of the published multiply-adds (they leave out ReLU and pooling)
    assert abs(flops - get_card(name)["published"]["flops"]) / get_card(name)["published"]["flops"] < 0.03


def test_published_conv_flops_of_mobilenet_v1() -> None:
    """The paper's 569M counts conv and FC multiply-adds only: ours are exactly that, 568.7M."""
    model = built("mobilenet_v1")
    total = 0

    def hook(module: torch.nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total += (module.in_channels * module.out_channels * kh * kw * out.shape[2] * out.shape[3]
                      // module.groups)
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    for handle in handles:
        handle.remove()
    assert total == 568_740_352


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "vgg16"])
def test_forward_and_num_classes_override(name: str) -> None:
    model = create_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 96))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    # random weights keep a usable scale (no vanishing to denormals, which would distort timings)
    assert 1e-3 < out.abs().max().item() < 1e3


@pytest.mark.slow
def test_vgg16_num_classes_override() -> None:
    model = create_model("vgg16", num_classes=10).eval()
    assert model.classifier[-1].out_features == 10
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_shufflenet_batch_independent() -> None:
    """The channel shuffle mixes channels, never samples."""
    model = built("shufflenet_v2_x1_0")
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x)[1:2], model(x[1:2]), atol=1e-4)
