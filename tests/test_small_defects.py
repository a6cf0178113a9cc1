"""Smaller bad-input cases, each through the CLI: interrupt exit 130, `list` with no
match, a bad tar in one line everywhere, one CIFAR reader for train/eval/quantize, eval needing only
val/, help texts, table's default output folder outside a checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cifar_train import train_args
from _clean import assert_clean_error, temp_files
from _onnx_models import conv_net

from condense_deploy.cli import cli
from condense_deploy.train.synthetic import write_cifar_archive

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_cifar_archive(root, train_per_class=1, test_per_class=2, seed=0)  # cifar-10-python.tar.gz
    return root


def test_interrupt_exits_130(runner, monkeypatch, tmp_path: Path) -> None:
    import condense_deploy.graph.optimize as optimize

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(optimize, "optimize_onnx", interrupted)
    source = conv_net(tmp_path / "a.onnx")
    result = runner.invoke(cli, ["optimize", str(source), "-o", str(tmp_path / "b.onnx")])
    assert_clean_error(result, 130, "interrupted")
    assert not (tmp_path / "b.onnx").exists() and temp_files(tmp_path) == []


def test_list_with_no_match(runner) -> None:
    assert_clean_error(runner.invoke(cli, ["list", "zzz*"]), 1, "no zoo model matches 'zzz*'")


def test_bad_tar_is_one_line_everywhere(runner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not a gzip stream at all")
    source = conv_net(tmp_path / "m.onnx", size=32)
    for args in (
        train_args(data, tmp_path / "run", "--no-progress"),
        ["eval", str(source), "--data", "cifar10", "--data-dir", str(data)],
        ["quantize", str(source), "-o", str(tmp_path / "q.onnx"), "--calibration-data", str(data)],
    ):
        assert_clean_error(runner.invoke(cli, args), 1, "cifar-10-python.tar.gz", "cannot read the archive")
    assert not (tmp_path / "run").exists() and not (tmp_path / "q.onnx").exists()


def test_quantize_reads_the_cifar_layouts_train_reads(runner, images, tmp_path: Path) -> None:
    """A folder holding cifar-10-python.tar.gz (train's --data-dir), the archive itself, the extracted
    folder: one reader for all; --eval-size 0 prints no nan."""
    source = conv_net(tmp_path / "m.onnx", size=32)
    extracted = tmp_path / "x"
    write_cifar_archive(extracted, train_per_class=1, test_per_class=2, seed=0, extracted=True)
    for k, data in enumerate(
        (images, images / "cifar-10-python.tar.gz", extracted, extracted / "cifar-10-batches-py")
    ):
        target = tmp_path / f"q{k}.onnx"
        result = runner.invoke(
            cli,
            [
                "quantize",
                str(source),
                "-o",
                str(target),
                "--calibration-data",
                str(data),
                "--calibration-size",
                "8",
                "--eval-size",
                "0",
            ],
        )
        assert result.exit_code == 0, (data, result.output)
        assert "calibrated on 8 images" in result.output and "nan" not in result.output
        assert "not measured (--eval-size 0)" in result.output


def test_eval_imagefolder_needs_only_val(runner, tmp_path: Path) -> None:
    from PIL import Image

    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / "data" / "val" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 40), (k * 100, i * 50, 10)).save(
                tmp_path / "data" / "val" / name / f"{i}.png"
            )
    source = conv_net(tmp_path / "m.onnx", size=32, classes=2)
    result = runner.invoke(
        cli, ["eval", str(source), "--data", "imagefolder", "--data-dir", str(tmp_path / "data"), "-j", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "over 4 images" in result.output


def test_help_texts(runner) -> None:
    eval_help = " ".join(runner.invoke(cli, ["eval", "--help"]).output.split())
    assert "Images per forward pass" in eval_help
    quantize_help = " ".join(runner.invoke(cli, ["quantize", "--help"]).output.split())
    assert "tuning" not in quantize_help and "latency comparison" in quantize_help


def test_table_default_out_dir_outside_a_checkout(runner, tmp_path: Path, monkeypatch) -> None:
    from condense_deploy.commands import table as table_command

    seen = {}

    def fake_run(**kwargs: object) -> None:
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(table_command, "_run", fake_run)
    result = runner.invoke(cli, ["table"])
    assert result.exit_code == 130
    assert seen["out_dir"] == Path("table-results")
