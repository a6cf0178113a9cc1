"""The board-side commands: `info`, `predict`, `eval FILE.onnx` from its metadata, the kernel library's
errors (missing, another architecture), and all of them with torch and matplotlib unimportable."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _blocked_imports import run_cli_without
from _clean import assert_clean_error
from _onnx_models import conv_net, table_stand_in
from PIL import Image

from condense_deploy.classnames import CLASSES_KEY, dataset_class_names
from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError
from condense_deploy.graph.metadata import META
from condense_deploy.images import decode_rgb, model_input
from condense_deploy.libcheck import elf_machine, host_machine, library_problem
from condense_deploy.native import library as kernels
from condense_deploy.train.synthetic import write_cifar_archive

REPO = Path(__file__).resolve().parent.parent
CIFAR_META = {META + "dataset": "cifar10", META + "mean": "[0.4914, 0.4824, 0.4467]",
              META + "std": "[0.2471, 0.2435, 0.2616]", META + "input_size": "[3, 32, 32]"}


def _elf(path: Path, machine: int) -> Path:
    """A file with a 64-bit little-endian ELF header for ``machine`` (e_machine) and nothing else."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5], header[6] = 2, 1, 1
    header[16:18] = (3).to_bytes(2, "little")  # ET_DYN
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))
    return path


def _other_arch() -> tuple[int, str]:
    return (183, "aarch64") if host_machine() != "aarch64" else (62, "x86_64")


def test_elf_header_names_the_architecture(tmp_path: Path) -> None:
    assert elf_machine(_elf(tmp_path / "a.so", 183)) == "aarch64"
    assert elf_machine(_elf(tmp_path / "b.so", 62)) == "x86_64"
    (tmp_path / "text.so").write_text("not a library")
    assert elf_machine(tmp_path / "text.so") is None
    assert "no ELF header" in str(library_problem(tmp_path / "text.so"))
    assert "is missing" in str(library_problem(tmp_path / "none.so"))


def test_wrong_architecture_library_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner) -> None:
    number, name = _other_arch()
    lib = _elf(tmp_path / "libcondense_deploy_ops.so", number)
    monkeypatch.setenv(kernels.ENV_VAR, str(lib))
    assert not kernels.is_available()
    with pytest.raises(CondenseDeployError) as error:
        kernels.library_path()
    text = str(error.value)
    assert f"built for {name}, this machine is {host_machine()}" in text
    assert "condense-deploy info" in text and "build-wheel.sh --arch aarch64" in text
    assert "CONDENSE_DEPLOY_KERNELS" in text and "No such file" not in text
    result = runner.invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    assert f"not usable: {lib} is built for {name}" in result.output


def test_missing_kernels_point_at_info_and_the_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      runner) -> None:
    monkeypatch.setenv(kernels.ENV_VAR, str(tmp_path / "absent.so"))
    with pytest.raises(CondenseDeployError, match="is missing.*condense-deploy info.*g\\+\\+.*aarch64 wheel"):
        kernels.library_path()
    result = runner.invoke(cli, ["info"])
    assert "kernels:      not usable" in result.output
    assert "no   native models" in result.output


@pytest.mark.skipif(not kernels.is_available(), reason="the native kernels are not built (make kernels)")
def test_info_reports_the_built_library(runner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["info", "--json", str(tmp_path / "info.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "info.json").read_text())
    assert report["kernels"]["usable"] and report["kernels"]["built_for"] == host_machine()
    assert report["kernels"]["isa"] in report["kernels"]["isas"]
    assert isinstance(report["kernels"]["api_version"], int)
    assert report["custom_op_api_offered"] >= report["kernels"]["api_version"]
    assert f"ISA here: {report['kernels']['isa']}" in result.output
    again = runner.invoke(cli, ["info", "--json", str(tmp_path / "info.json")])
    assert_clean_error(again, 1, "info.json")


def test_shipped_class_names() -> None:
    assert dataset_class_names("cifar10") == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                              "horse", "ship", "truck"]
    imagenet = dataset_class_names("imagenet", 1000)
    assert imagenet is not None and imagenet[0] == "tench" and imagenet[281] == "tabby"
    assert dataset_class_names("cifar", 100) == dataset_class_names("cifar100")
    assert dataset_class_names("imagenet", 10) is None and dataset_class_names("unknown") is None


# ------------------------------------------------------------------------------------------ images


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    rgb = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    out = {"jpeg": folder / "a.jpg", "png": folder / "b.png", "grey": folder / "c.png",
           "cmyk": tmp_path / "cmyk.jpg", "deep": tmp_path / "deep.png", "truncated": tmp_path / "cut.jpg",
           "text": tmp_path / "notes.jpg", "folder": folder}
    rgb.save(out["jpeg"], quality=95)
    rgb.save(out["png"])
    rgb.convert("L").save(out["grey"])
    rgb.convert("CMYK").save(out["cmyk"])
    Image.fromarray((rng.integers(0, 65535, (20, 20))).astype(np.uint16)).save(out["deep"])
    out["truncated"].write_bytes(out["jpeg"].read_bytes()[:600])
    out["text"].write_text("not an image\n")
    return out


def test_decode_policy(images: dict[str, Path]) -> None:
    assert decode_rgb(images["grey"]).mode == "RGB"  # grey: copied into the three channels
    grey = np.asarray(decode_rgb(images["grey"]))
    assert (grey[..., 0] == grey[..., 2]).all()
    assert decode_rgb(images["cmyk"]).mode == "RGB"  # CMYK: converted
    for key, words in (("deep", "save it as 8-bit"), ("truncated", "cannot decode"),
                       ("text", "not an image")):
        with pytest.raises(CondenseDeployError, match=words) as error:
            decode_rgb(images[key])
        assert str(images[key]) in str(error.value) and "\n" not in str(error.value)


def test_model_input_is_the_eval_preprocessing(images: dict[str, Path]) -> None:
    """A 40x60 image for a 32x32 CIFAR model: shorter side to 32, centre crop, normalised in float32."""
    x = model_input(images["png"], 32, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], "cifar10")
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    image = Image.open(images["png"]).convert("RGB").resize((48, 32), Image.Resampling.BILINEAR)
    want = (np.asarray(image.crop((8, 0, 40, 32)), np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x, want, atol=1e-6)
    x224 = model_input(images["png"], 24, [0, 0, 0], [1, 1, 1], "imagenet")  # 24 * 256/224 = 27 first
    assert x224.shape == (3, 24, 24)


# ----------------------------------------------------------------------------------------- predict


def test_predict_names_and_probabilities(tmp_path: Path, images: dict[str, Path], runner) -> None:
    model = conv_net(tmp_path / "m.onnx", size=32, metadata=CIFAR_META)
    out = tmp_path / "p.json"
    result = runner.invoke(cli, ["predict", str(model), str(images["folder"]), str(images["cmyk"]), "-k", "3",
                                 "-b", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [Path(p["image"]).name for p in report["predictions"]] == ["a.jpg", "b.png", "c.png", "cmyk.jpg"]
    names = dataset_class_names("cifar10")
    for p in report["predictions"]:
        top = p["top"]
        assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
        assert all(t["name"] == names[t["index"]] for t in top)
        assert f"{100 * top[0]['probability']:6.2f} %  {top[0]['name']} ({top[0]['index']})" in result.output
    # the same images one at a time give the same answer as in batches of 2
    single = runner.invoke(cli, ["predict", str(model), str(images["png"]), "-k", "3"])
    lines = result.output.splitlines()
    at = lines.index(str(images["png"]))
    assert single.output.splitlines() == lines[at:at + 4]


def test_predict_labels_file_metadata_names_and_indices(tmp_path: Path, images: dict[str, Path],
                                                       runner) -> None:
    own = {**CIFAR_META, CLASSES_KEY: json.dumps([f"thing {i}" for i in range(10)])}
    model = conv_net(tmp_path / "own.onnx", size=32, metadata=own)
    result = runner.invoke(cli, ["predict", str(model), str(images["jpeg"]), "-k", "1"])
    assert "thing " in result.output
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"label{i}\n" for i in range(10)))
    result = runner.invoke(cli, ["predict", str(model), str(images["jpeg"]), "--labels", str(labels)])
    assert result.exit_code == 0 and "label" in result.output and "thing" not in result.output
    bare = conv_net(tmp_path / "bare.onnx", size=32, classes=7)
    result = runner.invoke(cli, ["predict", str(bare), str(images["jpeg"]), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "class " in result.output and "no mean/std" in result.output
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    result = runner.invoke(cli, ["predict", str(model), str(images["jpeg"]), "--labels", str(short)])
    assert_clean_error(result, 1, "10 classes, but 2 class names")


def test_predict_bad_inputs_are_one_line(tmp_path: Path, images: dict[str, Path], runner) -> None:
    model = conv_net(tmp_path / "m.onnx", size=32, metadata=CIFAR_META)
    for key, words in (("deep", "save it as 8-bit"), ("truncated", "cannot decode"),
                       ("text", "not an image")):
        assert_clean_error(runner.invoke(cli, ["predict", str(model), str(images[key])]), 1, str(images[key]),
                           words)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(runner.invoke(cli, ["predict", str(model), str(empty)]), 1, "no image files")
    assert_clean_error(runner.invoke(cli, ["predict", str(model), str(tmp_path / "nope.jpg")]), 1,
                       "no such file")
    flat = _flat_input_model(tmp_path / "flat.onnx")
    assert_clean_error(runner.invoke(cli, ["predict", str(flat), str(images["jpeg"])]), 1,
                       "not an image classifier")
    notonnx = tmp_path / "x.onnx"
    notonnx.write_text("junk")
    assert_clean_error(runner.invoke(cli, ["predict", str(notonnx), str(images["jpeg"])]), 1, "x.onnx")
    assert_clean_error(runner.invoke(cli, ["predict", str(model), str(images["jpeg"]), "-k", "0"]), 2)


def _flat_input_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "flat",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


# -------------------------------------------------------------------------------------------- eval


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_archive(root, train_per_class=1, test_per_class=3, seed=1, extracted=True)
    return root


def test_eval_onnx_takes_the_data_set_from_its_metadata(tmp_path: Path, cifar_dir: Path, runner) -> None:
    model = conv_net(tmp_path / "m.onnx", size=32, metadata=CIFAR_META)
    result = runner.invoke(cli, ["eval", str(model), "--data-dir", str(cifar_dir)])
    assert result.exit_code == 0, result.output
    assert "(onnxruntime) on cifar10:" in result.output and "over 30 images" in result.output
    bare = conv_net(tmp_path / "bare.onnx", size=32)
    result = runner.invoke(cli, ["eval", str(bare), "--data-dir", str(cifar_dir)])
    assert_clean_error(result, 1, "give --data")


# -------------------------------------------------------------------------------- without torch


def _board(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as on a board's install: torch, matplotlib, onnxsim and torchvision unimportable."""
    return run_cli_without(tmp_path, ["matplotlib", "onnxsim", "torch", "torchvision"], *args)


def test_board_commands_run_without_torch(tmp_path: Path, images: dict[str, Path], cifar_dir: Path) -> None:
    model = conv_net(tmp_path / "m.onnx", size=32, metadata=CIFAR_META)
    done = _board(tmp_path, "info")
    assert done.returncode == 0, done.stderr
    assert "torch:        not installed" in done.stdout and "no   export" in done.stdout
    done = _board(tmp_path, "predict", str(model), str(images["folder"]), "-k", "2")
    assert done.returncode == 0, done.stderr
    assert "a.jpg" in done.stdout and "%" in done.stdout
    done = _board(tmp_path, "eval", str(model), "--data-dir", str(cifar_dir))
    assert done.returncode == 0, done.stderr
    assert "on cifar10" in done.stdout
    done = _board(tmp_path, "table", "--onnx-dir", str(tmp_path / "none"), "--models", "mobilenet_v1",
                  "--out-dir", str(tmp_path / "out"), "--no-native")
    line = assert_clean_error(done, 1, "mobilenet_v1.fast.onnx", "torch")
    assert "matplotlib" not in line
    # exported files copied to the board: timed as they are (their age cannot be held against them
    # without torch to export again), the table written without its plot
    exported = tmp_path / "exported"
    exported.mkdir()
    for name in ("mobilenet_v1", "resnet18"):
        stand_in = table_stand_in(exported / f"{name}.fast.onnx", name, flops=1000, params=10)
        os.utime(stand_in, (0, 0))
    done = _board(tmp_path, "table", "--onnx-dir", str(exported), "--models", "mobilenet_v1,resnet18",
                  "--out-dir", str(tmp_path / "out"), "--no-native", "--runs", "2", "--warmup", "0",
                  "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "without its plot" in done.stderr and "exporting" not in done.stderr
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".csv", ".json", ".md"]
