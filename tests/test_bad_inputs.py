"""Hostile or careless inputs through the CLI: one ``Error:`` line, the right exit code, no traceback,
nothing written. Classes 2 (ONNX files that are not what a command expects), 4 (malformed result
files), 7 (unsafe pickles) and 8 (the smaller ones) of issue 13."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest
import torch
from _clean import assert_clean_error, temp_files
from _onnx_models import conv_net, int_image_net
from onnx import TensorProto, helper, numpy_helper

from condense_deploy.cli import cli
from condense_deploy.train.synthetic import write_cifar_archive

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ------------------------------------------------------------------------------ ONNX models


def _inputless(path: Path) -> Path:
    """A valid model with no graph inputs: a constant goes straight to the output."""
    value = numpy_helper.from_array(
        onnx.numpy_helper.to_array(helper.make_tensor("c", TensorProto.FLOAT, [1, 10], [0.0] * 10)), "c"
    )
    node = helper.make_node("Constant", [], ["y"], value=value)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    model = helper.make_model(
        helper.make_graph([node], "inputless", [], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _feature_map(path: Path) -> Path:
    """Symbolic H/W and a feature-map output (N, 8, H, W), not classifier logits."""
    w = numpy_helper.from_array(torch.ones(8, 3, 1, 1).numpy(), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, "H", "W"])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "fm", [x], [y], [w]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _bad_models(root: Path) -> dict[str, Path]:
    good = conv_net(root / "good.onnx")
    truncated = root / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = root / "empty.onnx"
    empty.write_bytes(b"")
    return {
        "empty": empty,
        "truncated": truncated,
        "inputless": _inputless(root / "inputless.onnx"),
        "int64": int_image_net(root / "int64.onnx"),
    }


_EXPECTED = {
    "empty": "empty",
    "truncated": "not a readable ONNX model",
    "inputless": "has no inputs",
    "int64": "is int64; expected",
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _bad_models(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_cifar_archive(root, train_per_class=1, test_per_class=2, seed=0)  # cifar-10-python.tar.gz
    return root


@pytest.mark.parametrize("kind", list(_EXPECTED))
def test_optimize_blames_the_input(runner, bad, kind: str, tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    result = runner.invoke(cli, ["optimize", str(bad[kind]), "-o", str(target)])
    line = assert_clean_error(result, 1, str(bad[kind]), _EXPECTED[kind])
    assert "produced" not in line
    assert not target.exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("kind", [*_EXPECTED, "feature_map"])
def test_quantize_says_what_it_expected(runner, bad, images, kind: str, tmp_path: Path) -> None:
    source = _feature_map(tmp_path / "fm.onnx") if kind == "feature_map" else bad[kind]
    target = tmp_path / "out.onnx"
    result = runner.invoke(
        cli, ["quantize", str(source), "-o", str(target), "--calibration-data", str(images)]
    )
    line = assert_clean_error(result, 1, str(source))
    if kind == "feature_map":
        assert "expected one float32 input [N, 3, H, W] and logits [N, classes]" in line
    else:
        assert _EXPECTED[kind] in line
    assert not target.exists()


@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_inspect_and_bench_of_a_broken_file(runner, bad, kind: str) -> None:
    assert_clean_error(runner.invoke(cli, ["inspect", str(bad[kind])]), 1, str(bad[kind]))
    assert_clean_error(runner.invoke(cli, ["bench", str(bad[kind]), "--runs", "2"]), 1, str(bad[kind]))


def test_inspect_of_a_directory(runner, tmp_path: Path) -> None:
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    assert_clean_error(runner.invoke(cli, ["inspect", str(folder)]), 1, "is a directory")
    assert_clean_error(runner.invoke(cli, ["inspect", str(tmp_path)]), 1, "is a directory")


# ------------------------------------------------------------------------ malformed results


def test_report_of_a_string_latency(runner, tmp_path: Path) -> None:
    source = conv_net(tmp_path / "a.onnx")
    good = tmp_path / "r.json"
    assert (
        runner.invoke(
            cli, ["bench", str(source), "--runs", "3", "--warmup", "1", "--json", str(good)]
        ).exit_code
        == 0
    )
    data = json.loads(good.read_text())
    data["results"][0]["latency_p50_ms"] = "fast"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "table.md"
    result = runner.invoke(cli, ["report", str(bad), "-o", str(out)])
    assert_clean_error(result, 1, str(bad), "latency_p50_ms", "expected a number")
    assert not out.exists()


# -------------------------------------------------------------------------- unsafe pickles


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True])
def test_unsafe_pickle_never_runs_and_names_the_flag(runner, tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, evil, _use_new_zipfile_serialization=not legacy)
    before = evil.read_bytes()
    for args in (
        ["inspect", str(evil)],
        ["convert", str(evil), "-o", str(tmp_path / "c.pth.tar")],
        ["export", str(evil), "-o", str(tmp_path / "e.onnx")],
    ):
        result = runner.invoke(cli, args)
        assert_clean_error(result, 1, str(evil), "--trust-checkpoint", "refused")
    assert not marker.exists(), "the pickle's os.system ran"
    assert evil.read_bytes() == before
    assert not (tmp_path / "c.pth.tar").exists() and not (tmp_path / "e.onnx").exists()


# ---------------------------------------------------------------------------- smaller ones


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
        [
            "train",
            "--data",
            "cifar10",
            "--data-dir",
            str(data),
            "--savedir",
            str(tmp_path / "run"),
            "--no-progress",
        ],
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
