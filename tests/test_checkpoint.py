"""checkpoint.py: every file format, architecture inference, the error for each bad input, saving."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import pytest
import torch
from _ckpt_factory import (
    converted_pair,
    original_converted_file,
    original_training_checkpoint,
    prefixed,
    pytorchcv_state_dict,
    save,
    tiny_config,
    trained_model,
)

from condense_deploy.architectures.condensenet import CondenseNet
from condense_deploy.architectures.config import CondenseNetConfig
from condense_deploy.architectures.registry import create_model
from condense_deploy.checkpoint import infer_config, load_model, save_converted
from condense_deploy.errors import CondenseDeployError


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, size=(3, 32, 32)) -> bool:
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


# ------------------------------------------------------------------------------------------ zoo names


def test_zoo_condensenet_defaults_to_a_real_converted_model() -> None:
    loaded = load_model("condensenet50_cifar")
    assert (loaded.name, loaded.family, loaded.form, loaded.source_format) == (
        "condensenet50_cifar", "condensenet", "converted", "zoo")
    assert loaded.sha256 is None and loaded.input_size == (3, 32, 32) and not loaded.model.training
    assert loaded.mean == [0.4914, 0.4824, 0.4467]
    index = loaded.model.features.denseblock_3.denselayer_8.conv_1.index
    assert len(set(index.tolist())) > 1  # condensed for real, not an all-zero placeholder
    again = load_model("condensenet50_cifar")  # deterministic across calls
    assert _same_outputs(loaded.model, again.model)


def test_zoo_training_form_and_classes() -> None:
    loaded = load_model("condensenet50_cifar", form="training", num_classes=100)
    assert loaded.form == "training" and loaded.config.num_classes == 100
    assert loaded.model.classifier.out_features == 100


def test_zoo_plain_families() -> None:
    loaded = load_model("densenet_bc100_cifar")
    assert (loaded.family, loaded.form) == ("densenet", "plain")
    with pytest.raises(CondenseDeployError, match="only the plain form"):
        load_model("densenet_bc100_cifar", form="converted")


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("legacy", [False, True])
def test_original_training_checkpoint(tmp_path: Path, legacy: bool) -> None:
    model = trained_model(tiny_config())
    path = original_training_checkpoint(model, tmp_path / "checkpoint_300.pth.tar", legacy=legacy)
    assert zipfile.is_zipfile(path) is not legacy
    before = path.read_bytes()
    loaded = load_model(path)
    assert (loaded.family, loaded.form, loaded.source_format) == ("condensenet", "training",
                                                                 "original-training")
    assert loaded.config == tiny_config() and loaded.name is None
    assert loaded.input_size == (3, 32, 32) and len(loaded.sha256) == 64
    assert _same_outputs(loaded.model, model)
    assert path.read_bytes() == before  # never modifies its input


def test_original_converted_file_legacy_without_num_batches_tracked(tmp_path: Path) -> None:
    _, converted = converted_pair(tiny_config())
    path = original_converted_file(converted, tmp_path / "converted_condensenet_4.pth.tar")
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["state_dict"] and not zipfile.is_zipfile(path)
    assert all(k.startswith("module.") for k in raw["state_dict"])
    assert not any(k.endswith("num_batches_tracked") for k in raw["state_dict"])
    loaded = load_model(path)
    assert (loaded.form, loaded.source_format) == ("converted", "original-converted")
    assert _same_outputs(loaded.model, converted)


@pytest.mark.parametrize("prefix", ["", "module."])
@pytest.mark.parametrize("form", ["training", "converted"])
def test_bare_state_dicts(tmp_path: Path, prefix: str, form: str) -> None:
    training, converted = converted_pair(tiny_config())
    model = training if form == "training" else converted
    path = save(prefixed(model.state_dict(), prefix), tmp_path / "bare.pth")
    loaded = load_model(path)
    assert (loaded.form, loaded.source_format) == (form, "state-dict")
    assert _same_outputs(loaded.model, model)


def test_pytorchcv_converted_keys(tmp_path: Path) -> None:
    _, converted = converted_pair(tiny_config(kind="imagenet"))
    state = pytorchcv_state_dict(converted)
    assert "features.stage2.unit1.conv1.index" in state and "output.linear.weight" in state
    loaded = load_model(save(state, tmp_path / "condensenet74_c4_g4-0864-4cc9e6d6.pth"))
    assert (loaded.form, loaded.source_format, loaded.config.kind) == ("converted", "pytorchcv", "imagenet")
    assert loaded.input_size == (3, 224, 224) and loaded.mean == [0.485, 0.456, 0.406]
    assert _same_outputs(loaded.model, converted, size=(3, 224, 224))


@pytest.mark.slow
def test_pytorchcv_full_condensenet74(tmp_path: Path) -> None:
    converted = load_model("condensenet74_c8g8").model
    loaded = load_model(save(pytorchcv_state_dict(converted), tmp_path / "cv.pth"))
    assert loaded.name == "condensenet74_c8g8"
    assert _same_outputs(loaded.model, converted, size=(3, 224, 224))


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    model = trained_model(tiny_config())
    path = tmp_path / "whole_model.pth"
    torch.save(model, path)
    with pytest.raises(CondenseDeployError, match=r"unsafe unpickling.*CondenseNet.*--trust-checkpoint"):
        load_model(path)
    loaded = load_model(path, trust_checkpoint=True)
    assert loaded.source_format == "pickled-module" and _same_outputs(loaded.model, model)


@pytest.mark.parametrize("legacy", [False, True])
def test_unsafe_objects_refused(tmp_path: Path, legacy: bool) -> None:
    model = trained_model(tiny_config())
    state = {"epoch": 1, "state_dict": prefixed(model.state_dict()), "args": argparse.Namespace(lr=0.1)}
    path = save(state, tmp_path / "with_args.pth.tar", legacy=legacy)
    with pytest.raises(CondenseDeployError, match=r"argparse\.Namespace.*refused"):
        load_model(path)
    assert load_model(path, trust_checkpoint=True).form == "training"


# ------------------------------------------------------------------------------------------ inference


@pytest.mark.parametrize("groups,condense,groups_3x3", [(2, 2, 2), (4, 4, 4), (8, 8, 8), (2, 4, 4),
                                                        (4, 8, 2), (8, 4, 8)])
def test_infers_groups_and_condense_factor(groups: int, condense: int, groups_3x3: int) -> None:
    cfg = tiny_config(groups, condense, groups_3x3, num_classes=7)
    training, converted = converted_pair(cfg)
    assert infer_config(training.state_dict()) == cfg
    assert infer_config(converted.state_dict()) == cfg


def test_infers_partially_condensed_and_imagenet() -> None:
    cfg = tiny_config(8, 8, kind="imagenet")
    assert infer_config(trained_model(cfg, progress=0.1).state_dict()) == cfg  # stage 1 of 7


def test_zoo_card_matched_by_shapes(tmp_path: Path) -> None:
    model = create_model("condensenet50_cifar", num_classes=100)
    model.condense(0.3)
    loaded = load_model(original_training_checkpoint(model, tmp_path / "c100.pth.tar"))
    assert loaded.name == "condensenet50_cifar" and loaded.config.num_classes == 100


def test_stage_zero_needs_arch(tmp_path: Path) -> None:
    model = create_model("condensenet50_cifar")
    path = original_training_checkpoint(model, tmp_path / "epoch0.pth.tar")
    with pytest.raises(CondenseDeployError, match="not started condensing.*--arch"):
        load_model(path)
    assert load_model(path, arch="condensenet50_cifar").name == "condensenet50_cifar"


def test_arch_mismatch_names_key_and_both_shapes(tmp_path: Path) -> None:
    model = create_model("condensenet50_cifar")
    model.condense(1.0)
    path = original_training_checkpoint(model, tmp_path / "c50.pth.tar")
    with pytest.raises(CondenseDeployError) as info:
        load_model(path, arch="condensenet74_c4g4")
    message = str(info.value)
    assert "--arch condensenet74_c4g4" in message
    assert "features.denseblock_2.denselayer_1.conv_1._mask: [64, 80, 1, 1] in the checkpoint, " \
           "[64, 48, 1, 1] in the model" in message


@pytest.mark.parametrize("progress,message", [
    (0.1, r"denselayer_1\.conv_1\._count is 2 at stage 1, condense factor 4 gives 4"),
    (0.3, r"denselayer_1\.conv_1\._stage is 4, but condense factor 4 allows 0\.\.3"),
])
def test_arch_with_other_condense_factor_is_refused(tmp_path: Path, progress: float, message: str) -> None:
    """Training shapes do not show C; the condensing buffers must agree with the --arch card's."""
    cfg = CondenseNetConfig(stages=[8, 8, 8], growth=[8, 16, 32], group_1x1=8, group_3x3=4, condense_factor=8)
    model = CondenseNet(cfg)
    model.condense(progress)
    path = original_training_checkpoint(model, tmp_path / "c8.pth.tar")
    assert load_model(path).config == cfg
    with pytest.raises(CondenseDeployError, match=r"does not match --arch condensenet50_cifar: "
                                                  r"features\.denseblock_1\." + message):
        load_model(path, arch="condensenet50_cifar")


# ------------------------------------------------------------------------------------------ bad input


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CondenseDeployError, match="no such file"):
        load_model(tmp_path / "nope.pth.tar")
    with pytest.raises(CondenseDeployError, match="no such file.*not a zoo model name"):
        load_model("condensenet_nope")
    with pytest.raises(CondenseDeployError, match="is a directory"):
        load_model(tmp_path)


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("hello, not a checkpoint")
    with pytest.raises(CondenseDeployError, match="not a torch file"):
        load_model(path)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CondenseDeployError, match="empty file"):
        load_model(tmp_path / "empty.pth")


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_file(tmp_path: Path, legacy: bool, keep: float) -> None:
    path = original_training_checkpoint(trained_model(tiny_config()), tmp_path / "full.pth.tar", legacy)
    data = path.read_bytes()
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CondenseDeployError, match="truncated"):
        load_model(cut)


def test_non_condensenet_state_dict(tmp_path: Path) -> None:
    path = save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(CondenseDeployError, match="not a CondenseNet state dict"):
        load_model(path)
    path = save({"epoch": 3, "model": "resnet", "state_dict": {}}, tmp_path / "resnet.pth.tar")
    with pytest.raises(CondenseDeployError, match="'resnet', not a CondenseNet"):
        load_model(path)
    path = save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CondenseDeployError, match="holds a list"):
        load_model(path)


def test_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = prefixed(trained_model(tiny_config()).state_dict())
    missing = dict(state)
    del missing["module.features.denseblock_2.denselayer_2.conv_2.norm.bias"]
    with pytest.raises(CondenseDeployError, match=r"denselayer_2\.conv_2\.norm\.bias: absent in the "
                                                  r"checkpoint, \[32\] in the model \(1 missing"):
        load_model(save(missing, tmp_path / "missing.pth"))
    extra = dict(state)
    extra["module.features.extra.weight"] = torch.zeros(4)
    with pytest.raises(CondenseDeployError, match=r"1 unexpected key\(s\), first features\.extra\.weight"):
        load_model(save(extra, tmp_path / "extra.pth"))


# ------------------------------------------------------------------------------------------ saving


def test_save_converted_layout_and_roundtrip(tmp_path: Path) -> None:
    _, converted = converted_pair(tiny_config())
    path = tmp_path / "converted.pth.tar"
    save_converted(converted, path)
    assert not zipfile.is_zipfile(path)  # legacy serialization, as the 2017 files
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["state_dict"]
    keys = list(raw["state_dict"])
    assert keys == ["module." + k for k in converted.state_dict() if not k.endswith("num_batches_tracked")]
    assert raw["state_dict"]["module.classifier.index"].dtype == torch.int64
    loaded = load_model(path)
    assert loaded.form == "converted" and _same_outputs(loaded.model, converted)
    # main.py --evaluate-from: DataParallel(model).load_state_dict(torch.load(f)['state_dict']), strict
    fresh = torch.nn.DataParallel(CondenseNet(tiny_config(), converted=True))
    fresh.load_state_dict(torch.load(path)["state_dict"], strict=True)
    assert _same_outputs(fresh.module, converted)


def test_save_converted_refuses_overwrite_and_is_atomic(tmp_path: Path, monkeypatch) -> None:
    training, converted = converted_pair(tiny_config())
    path = tmp_path / "out.pth.tar"
    path.write_bytes(b"previous")
    with pytest.raises(CondenseDeployError, match="already exists"):
        save_converted(converted, path)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CondenseDeployError, match="cannot write .disk full"):
        save_converted(converted, path, force=True)
    assert path.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind
    monkeypatch.undo()
    with pytest.raises(CondenseDeployError, match="needs a converted CondenseNet"):
        save_converted(training, tmp_path / "other.pth.tar")


def test_densenet_checkpoint(tmp_path: Path) -> None:
    """The original repository trains DenseNet-BC too; its checkpoints load as the plain zoo model."""
    from condense_deploy.architectures.config import DenseNetConfig
    from condense_deploy.architectures.densenet import DenseNet

    model = create_model("densenet_bc100_cifar", num_classes=100).eval()
    state = {"epoch": 300, "model": "densenet", "state_dict": prefixed(model.state_dict()),
             "best_prec1": 22.3, "optimizer": {}}
    loaded = load_model(save(state, tmp_path / "densenet.pth.tar", legacy=True))
    assert (loaded.name, loaded.family, loaded.form) == ("densenet_bc100_cifar", "densenet", "plain")
    assert loaded.config.num_classes == 100 and _same_outputs(loaded.model, model)
    other = DenseNet(DenseNetConfig(stages=[2, 2, 2], growth=[4, 4, 4]))
    with pytest.raises(CondenseDeployError,
                       match="does not match zoo model densenet_bc100_cifar: first differing"):
        load_model(save(other.state_dict(), tmp_path / "small_densenet.pth"))
