"""``condense-deploy train`` / ``eval`` through the CLI, and a 2-process gloo run under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from condense_deploy.architectures.condensenet import learned_group_convs
from condense_deploy.cli import cli
from condense_deploy.train.synthetic import write_cifar_archive

SMALL = ["--stages", "2-2-2", "--growth", "4-8-8"]



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar_archive(root, train_per_class=10, test_per_class=5, seed=2, extracted=True)
    return root


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    from click.testing import CliRunner

    savedir = tmp_path_factory.mktemp("cli_run")
    result = CliRunner().invoke(cli, ["train", "--data", "cifar10", "--data-dir", str(data_dir), "--savedir",
                                      str(savedir), *SMALL, "--epochs", "1", "-b", "20", "--seed", "1"])
    return savedir, result


def _errors(output: str) -> list[str]:
    assert "Traceback" not in output
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_train_command_runs_end_to_end(cli_run) -> None:
    savedir, result = cli_run
    assert result.exit_code == 0, result.output
    assert "epoch   1/1  val err" in result.output
    assert "converted:" in result.output and "M FLOPs" in result.output
    assert (savedir / "save_models" / "converted_model_best.pth.tar").is_file()
    assert (savedir / "curves.png").is_file()


def test_train_command_errors_are_one_line(cli_run, runner, data_dir: Path, tmp_path: Path) -> None:
    savedir, _ = cli_run
    cases = [
        (["--savedir", str(savedir), "--data", "cifar10", "--data-dir", str(data_dir)],
         "already holds a run"),
        (["--savedir", str(tmp_path), "--data", "cifar10", "--data-dir", str(data_dir), "--resume"],
         "no checkpoint"),
        (["--savedir", str(tmp_path), "--data", "cifar10", "--data-dir", str(data_dir), "--stages", "2-2",
          "--growth", "4-8-8"], "differ in length"),
        (["--savedir", str(tmp_path), "--data", "cifar10", "--data-dir", str(data_dir), "--arch",
          "condensenet74_c4g4"], "cannot train on cifar10"),
        (["--savedir", str(tmp_path), "--data", "cifar10", "--data-dir", str(data_dir), "--arch", "vgg16"],
         "CondenseNets only"),
        (["--savedir", str(tmp_path), "--data", "cifar10", "--data-dir", str(data_dir), "--arch", "nope"],
         "unknown model"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["train", *args, "--no-progress"])
        assert result.exit_code == 1, (args, result.output)
        errors = _errors(result.output)
        assert len(errors) == 1 and message in errors[0], (args, result.output)
    # --force starts over: the old run's checkpoints are gone, the new one's are there
    stale = tmp_path / "forced" / "save_models"
    stale.mkdir(parents=True)
    for name in ("checkpoint_000.pth.tar", "checkpoint_007.pth.tar", "model_best.pth.tar"):
        (stale / name).write_bytes(b"old")
    (stale / "latest.txt").write_text(str(stale / "checkpoint_007.pth.tar"))
    result = runner.invoke(cli, ["train", "--savedir", str(tmp_path / "forced"), "--data", "cifar10",
                                 "--data-dir", str(data_dir), *SMALL, "--epochs", "1", "-b", "50", "--force",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert not (stale / "checkpoint_007.pth.tar").exists()
    assert torch.load(stale / "model_best.pth.tar", weights_only=True)["epoch"] == 0
    result = runner.invoke(cli, ["train", "--savedir", str(tmp_path), "--stages", "a-b"])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_eval_checkpoint_converted_and_onnx_agree(cli_run, runner, data_dir: Path, tmp_path: Path) -> None:
    savedir, _ = cli_run
    models = savedir / "save_models"
    outputs = {}
    for name in ("model_best.pth.tar", "converted_model_best.pth.tar"):
        result = runner.invoke(cli, ["eval", str(models / name), "--data", "cifar10", "--data-dir",
                                     str(data_dir), "-b", "16"])
        assert result.exit_code == 0, result.output
        outputs[name] = result.output.strip().splitlines()[-1]
        assert "over 50 images" in outputs[name]
    from condense_deploy.checkpoint import load_model

    converted = load_model(models / "converted_model_best.pth.tar").model
    onnx_path = tmp_path / "converted.onnx"
    torch.onnx.export(converted, torch.randn(1, 3, 32, 32), str(onnx_path), dynamo=False,
                      input_names=["input"], output_names=["logits"])  # fixed batch 1: padded path
    result = runner.invoke(cli, ["eval", str(onnx_path), "--data", "cifar10", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert "(onnxruntime)" in line and "over 50 images" in line
    figures = outputs["converted_model_best.pth.tar"].split(" on cifar10: ")[1].split(" over")[0]
    assert figures in line  # the same top-1/top-5 errors as the PyTorch converted model
    # error paths: one line, no traceback
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"garbage")
    for args in (["eval", str(bad), "--data", "cifar10", "--data-dir", str(data_dir)],
                 ["eval", str(onnx_path), "--data-dir", str(data_dir)],
                 ["eval", str(models / "model_best.pth.tar"), "--data", "cifar100", "--data-dir",
                  str(data_dir)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1 and len(_errors(result.output)) == 1, result.output


def _image_folder(root: Path) -> Path:
    """A tiny ImageFolder tree of JPEGs of varied sizes: reddish class0, bluish class1."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 3)):
        for k, colour in enumerate(((200, 30, 30), (30, 30, 200))):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(count):
                jitter = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)
                Image.new("RGB", (60 + 5 * i, 50 + 3 * i), jitter).save(folder / f"{i}.jpg")
    return root


def test_image_folder_train_eval_and_export_end_to_end(runner, tmp_path: Path) -> None:
    """The ImageNet path on real JPEG files: train (ImageNet-style model, 224x224 crops) until
    condensing ends, evaluate the checkpoint, export the converted model, evaluate the ONNX file."""
    data = _image_folder(tmp_path / "data")
    savedir = tmp_path / "run"
    result = runner.invoke(cli, ["train", "--data", "imagefolder", "--data-dir", str(data), "--savedir",
                                 str(savedir), "--arch", "condensenet74_c4g4", "--stages", "1-1-1-1-1",
                                 "--growth", "8-8-8-8-8", "--epochs", "2", "-b", "4", "-j", "1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "on imagefolder (12 train / 6 val images" in result.output and "'num_classes': 2" in result.output
    converted = savedir / "save_models" / "converted_model_best.pth.tar"
    assert converted.is_file()
    onnx_path = tmp_path / "m.onnx"
    result = runner.invoke(cli, ["export", str(converted), "-o", str(onnx_path)])
    assert result.exit_code == 0, result.output
    lines = {}
    for model in (savedir / "save_models" / "model_best.pth.tar", converted, onnx_path):
        result = runner.invoke(cli, ["eval", str(model), "--data", "imagefolder", "--data-dir", str(data),
                                     "-j", "1"])
        assert result.exit_code == 0, result.output
        lines[model.name] = result.output.strip().splitlines()[-1]
        assert "over 6 images" in lines[model.name]
    figures = lines[converted.name].split(" on imagefolder: ")[1].split(" over")[0]
    assert figures in lines[onnx_path.name]  # ONNX agrees with the converted PyTorch model
    # the trained model carries its class folder names into the export: predict names them
    result = runner.invoke(cli, ["predict", str(onnx_path), str(data / "val" / "class1"), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "class0 (0)" in result.output and "class1 (1)" in result.output


def test_trained_cifar_model_exports_its_class_names(cli_run, runner, data_dir: Path, tmp_path: Path) -> None:
    """train -> converted checkpoint -> export: the CIFAR-10 names in the file's metadata, and eval of the
    file needs no --data (its metadata names the data set)."""
    from condense_deploy.classnames import CLASSES_KEY, dataset_class_names
    from condense_deploy.graph.metadata import read_metadata

    savedir, _ = cli_run
    onnx_path = tmp_path / "trained.onnx"
    result = runner.invoke(cli, ["export", str(savedir / "save_models" / "converted_model_best.pth.tar"),
                                 "-o", str(onnx_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(read_metadata(onnx_path)[CLASSES_KEY]) == dataset_class_names("cifar10")
    result = runner.invoke(cli, ["eval", str(onnx_path), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "on cifar10:" in result.output and "over 50 images" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_agrees_with_itself(data_dir: Path, tmp_path: Path) -> None:
    """torchrun, 2 CPU processes: pruning decisions and weights identical on both ranks, rank 0 writes."""
    savedir = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", "-m", "condense_deploy.train", "--data", "cifar10",
               "--data-dir", str(data_dir), "--savedir", str(savedir), *SMALL, "--epochs", "2", "-b", "20",
               "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    log = (savedir / "train.log").read_text().splitlines()
    events = [line for line in log if line.startswith("condensing:")]
    assert len(events) == 3 and all("masks identical on all 2 ranks" in line for line in events)
    assert [line.split()[1] for line in log if line.startswith("epoch ")] == ["1/2", "2/2"]  # rank 0 only
    assert "2 process(es)" in log[0]
    assert proc.stdout.count("converted:") == 1  # the summary comes from rank 0 alone
    state = torch.load(savedir / "save_models" / "checkpoint_001.pth.tar", weights_only=True)
    from condense_deploy.checkpoint import load_model

    model = load_model(savedir / "save_models" / "checkpoint_001.pth.tar").model
    assert all(m.stage == 3 for m in learned_group_convs(model))
    assert state["train_options"]["batch_size"] == 20
    assert sorted(p.name for p in (savedir / "save_models").iterdir() if p.name.startswith(".")) == []


def test_resuming_a_finished_run_changes_nothing(cli_run, runner, data_dir: Path) -> None:
    savedir, first = cli_run
    assert first.exit_code == 0, first.output
    converted = savedir / "save_models" / "converted_model_best.pth.tar"
    before = {p: p.read_bytes() for p in [converted, savedir / "train.log"]}
    result = runner.invoke(cli, ["train", "--resume", "--savedir", str(savedir), "--data", "cifar10",
                                 "--data-dir", str(data_dir), "--no-progress"])
    assert result.exit_code == 1 and len(_errors(result.output)) == 1, result.output
    assert "already finished its 1 epochs" in result.output and "resumed" not in result.output
    assert {p: p.read_bytes() for p in before} == before


def test_new_run_does_not_append_to_a_killed_runs_log(runner, data_dir: Path, tmp_path: Path) -> None:
    savedir = tmp_path / "run"
    savedir.mkdir()
    (savedir / "train.log").write_text("a run killed before its first checkpoint\n")
    result = runner.invoke(cli, ["train", "--data", "cifar10", "--data-dir", str(data_dir), "--savedir",
                                 str(savedir), *SMALL, "--epochs", "1", "-b", "20", "--no-progress"])
    assert result.exit_code == 0, result.output
    log = (savedir / "train.log").read_text()
    assert "killed" not in log and log.startswith("training ")
