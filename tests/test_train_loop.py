"""The done-when test of the trainer: a small CondenseNet (C=4) on a generated CIFAR-format archive.

One uninterrupted run is shared by the tests of this module; a second run is interrupted mid-epoch
and resumed, and must end with bit-identical weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from condense_deploy.architectures.condensenet import CondenseNet, learned_group_convs
from condense_deploy.architectures.config import CondenseNetConfig
from condense_deploy.checkpoint import strip_module
from condense_deploy.errors import CondenseDeployError
from condense_deploy.train.data import CifarData
from condense_deploy.train.loop import TrainOptions, train
from condense_deploy.train.synthetic import write_cifar_archive

SMALL = {"stages": [2, 2, 2], "growth": [4, 8, 8]}
EPOCHS = 4


def _options(savedir: Path, data_dir: Path, **kw) -> TrainOptions:
    base = dict(savedir=str(savedir), data="cifar10", data_dir=str(data_dir), model_overrides=dict(SMALL),
                epochs=EPOCHS, batch_size=40, seed=3, show_progress=False)
    base.update(kw)
    return TrainOptions(**base)



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar_archive(root, train_per_class=20, test_per_class=10, seed=0)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    savedir = tmp_path_factory.mktemp("run")
    lines: list[str] = []
    result = train(_options(savedir, data_dir), log=lines.append)
    return savedir, result, lines


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _model_from(state: dict) -> CondenseNet:
    model = CondenseNet(CondenseNetConfig(**state["config"]))
    model.load_state_dict(strip_module(state["state_dict"]))
    return model.eval()


def test_learns_well_above_chance(run) -> None:
    _, result, _ = run
    assert result.best_err1 < 40.0  # chance is 90 % error on ten classes
    assert result.history[-1].train_err1 < result.history[0].train_err1


def test_every_lgc_ends_at_its_final_stage_keeping_one_in_c(run) -> None:
    savedir, result, lines = run
    model = _model_from(_load(savedir / "save_models" / f"checkpoint_{EPOCHS - 1:03d}.pth.tar"))
    layers = learned_group_convs(model)
    assert len(layers) == 6
    for layer in layers:
        assert layer.stage == layer.condense_factor - 1 == 3
        for kept in layer.kept_inputs():
            assert len(kept) == layer.in_channels // 4
        assert int(layer._mask.sum()) == layer.out_channels * layer.in_channels // 4
    events = [line for line in lines if line.startswith("condensing:")]
    assert len(events) == 3  # C-1 pruning events, all by half of training
    assert all("connections removed" in line for line in events)
    assert "progress 0.5000" in events[-1]


def test_checkpoints_in_the_original_layout(run) -> None:
    savedir, result, _ = run
    models = savedir / "save_models"
    names = sorted(p.name for p in models.iterdir())
    assert names == ["checkpoint_000.pth.tar", "checkpoint_001.pth.tar", "checkpoint_002.pth.tar",
                     "checkpoint_003.pth.tar", "converted_model_best.pth.tar", "latest.txt",
                     "model_best.pth.tar"]
    assert Path((models / "latest.txt").read_text().strip()).name == "checkpoint_003.pth.tar"
    last = _load(models / "checkpoint_003.pth.tar")
    assert {"epoch", "model", "state_dict", "best_prec1", "optimizer"} <= set(last)
    assert last["epoch"] == 3 and last["model"] == "condensenet"
    assert all(k.startswith("module.") for k in last["state_dict"])
    assert "module.features.denseblock_1.denselayer_1.conv_1._mask" in last["state_dict"]
    assert set(last["optimizer"]) == {"state", "param_groups"}
    assert last["optimizer"]["param_groups"][0]["nesterov"] is True
    # model_best really is the epoch with the lowest validation error (the first one on ties)
    errors = [h["val_err1"] for h in last["history"]]
    best_epoch = errors.index(min(errors))
    assert last["best_prec1"] == pytest.approx(min(errors)) and last["best_epoch"] == best_epoch
    best = _load(models / "model_best.pth.tar")
    assert best["epoch"] == best_epoch == result.best_epoch
    source = _load(models / f"checkpoint_{best_epoch:03d}.pth.tar")
    assert all(torch.equal(best["state_dict"][k], v) for k, v in source["state_dict"].items())
    log = (savedir / "train.log").read_text().splitlines()
    assert sum(line.startswith("epoch ") for line in log) == EPOCHS
    assert "val err" in log[-2] or any("val err" in line for line in log)
    assert (savedir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_converted_model_matches_the_trained_one(run, data_dir: Path) -> None:
    savedir, result, lines = run
    from condense_deploy.checkpoint import load_model

    assert result.converted_path and Path(result.converted_path).is_file()
    assert result.converted_max_diff is not None and result.converted_max_diff <= 1e-5
    assert result.flops > 0 and result.params > 0
    converted = load_model(result.converted_path).model.eval()
    trained = _model_from(_load(savedir / "save_models" / "model_best.pth.tar"))
    selected = copy.deepcopy(trained)
    keep = torch.zeros(selected.classifier.in_features, dtype=torch.bool)
    keep[getattr(converted.classifier, "index", slice(None))] = True  # a full classifier keeps all
    with torch.no_grad():
        selected.classifier.weight[:, ~keep] = 0
    data = CifarData("cifar10", data_dir)
    x, y = data.normalize(data.val_x), data.val_y
    with torch.no_grad():
        pred_converted = converted(x).argmax(1)
        pred_trained = selected(x).argmax(1)
    assert torch.equal(pred_converted, pred_trained)
    err = 100 * (1 - (pred_converted == y).float().mean().item())
    assert err == pytest.approx(result.converted_err1)
    assert result.converted_epoch == result.best_epoch
    assert any(line.startswith(f"converted epoch {result.best_epoch + 1} ") for line in lines)


def test_interrupted_then_resumed_gives_the_same_weights(run, tmp_path: Path, data_dir: Path) -> None:
    savedir, _, _ = run

    def stop(epoch: int, i: int) -> None:
        if epoch == 2 and i == 2:
            raise KeyboardInterrupt

    with pytest.raises(CondenseDeployError, match=r"interrupted in epoch 3; epoch 2 is the last checkpoint"):
        train(_options(tmp_path, data_dir), on_batch=stop)
    latest = (tmp_path / "save_models" / "latest.txt").read_text().strip()
    assert Path(latest).name == "checkpoint_001.pth.tar"
    with pytest.raises(CondenseDeployError, match="already holds a run"):
        train(_options(tmp_path, data_dir))
    with pytest.raises(CondenseDeployError, match="used epochs=4, not 5"):
        train(_options(tmp_path, data_dir, epochs=5, resume=True))
    lines: list[str] = []
    # on resume the options default to the checkpoint's
    resumed = train(TrainOptions(savedir=str(tmp_path), data_dir=str(data_dir), resume=True,
                                 show_progress=False), log=lines.append)
    assert lines[0].startswith("resumed from") and "epoch 3" in lines[0]
    name = f"checkpoint_{EPOCHS - 1:03d}.pth.tar"
    a = _load(savedir / "save_models" / name)
    b = _load(tmp_path / "save_models" / name)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert resumed.best_epoch == run[1].best_epoch
    assert resumed.converted_err1 == run[1].converted_err1


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_weights(run, tmp_path: Path, data_dir: Path) -> None:
    """SIGKILL a real training process after its first checkpoint, then --resume in this process."""
    import os
    import signal
    import subprocess
    import sys
    import time

    savedir, _, _ = run
    command = [sys.executable, "-m", "condense_deploy.train", "--data", "cifar10",
               "--data-dir", str(data_dir),
               "--savedir", str(tmp_path), "--stages", "2-2-2", "--growth", "4-8-8", "--epochs", str(EPOCHS),
               "-b", "40", "--seed", "3", "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    latest = tmp_path / "save_models" / "latest.txt"
    deadline = time.monotonic() + 240
    while not latest.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.exists()
    train(TrainOptions(savedir=str(tmp_path), data_dir=str(data_dir), resume=True, show_progress=False))
    name = f"checkpoint_{EPOCHS - 1:03d}.pth.tar"
    a = _load(savedir / "save_models" / name)["state_dict"]
    b = _load(tmp_path / "save_models" / name)["state_dict"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())
