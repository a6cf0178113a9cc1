"""What you train is what you deploy: a tiny CondenseNet on a generated set where the original
classifier half-drop costs many points; the default holds the deployed error (converted checkpoint,
exported file in onnxruntime) to the trained one, and every path that has data says what deploying costs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from condense_deploy.checkpoint import load_model
from condense_deploy.cli import cli
from condense_deploy.train.loop import DEFAULT_CLASSIFIER, TrainOptions, train
from condense_deploy.train.synthetic import write_cifar_archive

# 20 classifier inputs, 10 classes: keeping 10 of the inputs untrained costs ~20 points here
TINY = {"stages": [1, 1, 1], "growth": [4, 4, 4]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar_archive(root, train_per_class=20, test_per_class=20, seed=0)
    return root


def _train(savedir: Path, data_dir: Path, classifier: str | None, lines: list[str]):
    options = TrainOptions(savedir=str(savedir), data="cifar10", data_dir=str(data_dir),
                           model_overrides=dict(TINY), epochs=6, batch_size=50, seed=3, show_progress=False,
                           classifier=classifier)
    return train(options, log=lines.append)


@pytest.fixture(scope="module")
def half_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    savedir = tmp_path_factory.mktemp("half")
    lines: list[str] = []
    return savedir, _train(savedir, data_dir, "half", lines), lines


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    savedir = tmp_path_factory.mktemp("default")
    lines: list[str] = []
    return savedir, _train(savedir, data_dir, None, lines), lines


def test_the_half_drop_hurts_here_and_the_log_says_so(half_run) -> None:
    _, result, lines = half_run
    assert result.classifier == "half"
    assert result.converted_err1 - result.converted_trained_err1 >= 5.0  # the data makes it hurt
    [line] = [line for line in lines if line.startswith("converted epoch")]
    assert "LGC conversion exact (max diff" in line
    assert "classifier: kept 50 % of inputs (10 of 20); dropped" in line
    assert f"val err {result.converted_trained_err1:.2f} -> {result.converted_err1:.2f} %" in line
    [warning] = [line for line in lines if line.startswith("warning:")]
    assert "points of top-1 error" in warning and "--classifier condense" in warning


def test_the_default_deploys_what_was_trained(default_run) -> None:
    _, result, lines = default_run
    assert result.classifier == DEFAULT_CLASSIFIER
    assert result.converted_trained_err1 is not None and result.converted_err1 is not None
    assert abs(result.converted_err1 - result.converted_trained_err1) <= 1.0
    assert not any(line.startswith("warning:") for line in lines)
    loaded = load_model(result.converted_path)
    assert loaded.deploy["classifier"] == DEFAULT_CLASSIFIER
    assert loaded.deploy["deployed_err1"] == pytest.approx(result.converted_err1, abs=1e-3)


def test_the_default_exported_scores_the_same_in_onnxruntime(default_run, data_dir: Path,
                                                            tmp_path: Path, runner) -> None:
    from condense_deploy.pipeline import export_source
    from condense_deploy.train.evaluate import evaluate

    _, result, _ = default_run
    out = tmp_path / "tiny.onnx"
    export_source(result.converted_path, out)
    scored = evaluate(out, "cifar10", data_dir)
    assert scored.runtime == "onnxruntime"
    assert scored.top1_err == pytest.approx(result.converted_err1, abs=1e-6)
    assert abs(scored.top1_err - result.converted_trained_err1) <= 1.0
    info = json.loads(runner.invoke(cli, ["inspect", str(out), "--json"]).output)
    record = json.loads(info["metadata"]["condense_deploy.classifier"])
    assert record["mode"] == DEFAULT_CLASSIFIER and record["features"] == 20
    assert record["trained_err1"] == pytest.approx(result.converted_trained_err1, abs=1e-3)
    shown = runner.invoke(cli, ["eval", str(out), "--data", "cifar10", "--data-dir", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    assert f"recorded at conversion: trained {result.converted_trained_err1:.2f} %" in shown.output


def test_convert_with_data_reports_and_warns_then_the_remedies(half_run, data_dir: Path, tmp_path: Path,
                                                              runner) -> None:
    savedir, result, _ = half_run
    best = str(savedir / "save_models" / "model_best.pth.tar")
    data = ["--data", "cifar10", "--data-dir", str(data_dir)]
    half = runner.invoke(cli, ["convert", best, "-o", str(tmp_path / "half.pth.tar"), *data])
    assert half.exit_code == 0, half.output
    assert "classifier:   kept 50 % of inputs (10 of 20)" in half.output
    assert "--classifier half" in half.output
    trained, deployed = result.converted_trained_err1, result.converted_err1
    assert f"accuracy:     val err {trained:.2f} -> {deployed:.2f} %" in half.output
    assert "warning: deploying costs" in half.output and "--classifier full" in half.output
    # the original converted format: only the state dict, half the inputs
    raw = torch.load(tmp_path / "half.pth.tar", weights_only=True)
    assert raw["state_dict"]["module.classifier.index"].shape == (10,)

    full = runner.invoke(cli, ["convert", best, "-o", str(tmp_path / "full.pth.tar"), "--classifier", "full",
                               *data])
    assert full.exit_code == 0, full.output
    assert f"val err {trained:.2f} -> {trained:.2f} %" in full.output and "warning" not in full.output
    loaded = load_model(tmp_path / "full.pth.tar")
    assert loaded.form == "converted" and loaded.model.classifier_form == "full"
    assert loaded.deploy["classifier"] == "full"
    info = json.loads(runner.invoke(cli, ["inspect", str(tmp_path / "full.pth.tar"), "--json"]).output)
    assert info["classifier"]["kept"] == info["classifier"]["features"] == 20
    half_info = json.loads(runner.invoke(cli, ["inspect", str(tmp_path / "half.pth.tar"), "--json"]).output)
    assert info["params"] - half_info["params"] == 10 * 10  # the deployed classifier is what is counted

    tuned = runner.invoke(cli, ["convert", best, "-o", str(tmp_path / "ft.pth.tar"), "--classifier",
                                "finetune", *data])
    assert tuned.exit_code == 0, tuned.output
    tuned_err = load_model(tmp_path / "ft.pth.tar").deploy["deployed_err1"]
    assert tuned_err < deployed - 5.0


def test_finetune_needs_data_and_eval_reports_both(half_run, data_dir: Path, tmp_path: Path, runner) -> None:
    savedir, result, _ = half_run
    best = str(savedir / "save_models" / "model_best.pth.tar")
    failed = runner.invoke(cli, ["convert", best, "-o", str(tmp_path / "x.pth.tar"), "--classifier",
                                 "finetune"])
    assert failed.exit_code == 1, failed.output
    assert failed.output.startswith("Error: ") and "--data" in failed.output
    assert "Traceback" not in failed.output and not (tmp_path / "x.pth.tar").exists()
    shown = runner.invoke(cli, ["eval", best, "--data", "cifar10", "--data-dir", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    trained, deployed = result.converted_trained_err1, result.converted_err1
    assert f"trained {trained:.2f} % -> deployed {deployed:.2f} % top-1 error" in shown.output
    assert "warning: deploying costs" in shown.output


def test_condense_masks_the_classifier_from_progress_half(tmp_path: Path, data_dir: Path) -> None:
    """With --classifier condense the dropped inputs' weights are exactly zero in every checkpoint
    from the last condensing stage on, the converter keeps exactly the others, and the converted
    model scores what the trained one does."""
    from condense_deploy.convert import convert_model

    lines: list[str] = []
    savedir = tmp_path / "condense"
    result = _train(savedir, data_dir, "condense", lines)
    assert result.converted_err1 == pytest.approx(result.converted_trained_err1, abs=1e-9)
    assert any("classifier keeps 10 of 20 inputs" in line for line in lines)
    for epoch in range(6):
        state = torch.load(savedir / "save_models" / f"checkpoint_{epoch:03d}.pth.tar", weights_only=True)
        weight = state["state_dict"]["module.classifier.weight"]
        zero_columns = int((weight.abs().sum(0) == 0).sum())
        assert zero_columns == (10 if epoch >= 3 else 0), epoch  # progress 0.5 is the start of epoch 4
    trained = load_model(savedir / "save_models" / "model_best.pth.tar").model
    kept = set(convert_model(trained).classifier.index.tolist())
    assert kept == set(torch.nonzero(trained.classifier.weight.abs().sum(0) > 0).flatten().tolist())
