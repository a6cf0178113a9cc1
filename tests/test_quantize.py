"""quantize: calibration readers (CIFAR batch, ImageFolder) and the quantize command."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import pytest
from test_onnx_passes import export, random_converted

from condense_deploy.cli import cli
from condense_deploy.graph.quantize import load_images

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model, _, _ = random_converted(4, 4, seed=7)
    path = tmp_path_factory.mktemp("q") / "m.onnx"
    onnx.save(export(model, path), str(path))
    return path


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 255, (40, 3072), dtype=np.uint8),
             b"labels": [i % 10 for i in range(40)]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    return root


def test_cifar_reader(cifar_dir):
    x, labels = load_images(cifar_dir, 32, 10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.float32 and list(labels) == list(range(10))
    assert -2.01 <= x.min() and x.max() <= 2.01


def test_image_folder_reader(tmp_path):
    from PIL import Image

    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (50, 40), (k * 100, i * 50, 10)).save(tmp_path / name / f"{i}.png")
    x, labels = load_images(tmp_path, 32, 100)
    assert x.shape == (6, 3, 32, 32) and list(labels) == [0, 0, 0, 1, 1, 1]


def test_quantize_command(model_file, cifar_dir, tmp_path, runner):
    target = tmp_path / "int8.onnx"
    args = ["quantize", str(model_file), "-o", str(target), "--calibration-data", str(cifar_dir),
            "--calibration-size", "8", "--eval-size", "16"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "agreement" in result.output and "top-1 on 16 images" in result.output
    quantized = onnx.load(str(target))
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "Error:" in again.output and "Traceback" not in again.output


def test_quantize_without_images(model_file, tmp_path, runner):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["quantize", str(model_file), "-o", str(tmp_path / "q.onnx"),
                                 "--calibration-data", str(empty)])
    assert result.exit_code == 1 and "no JPEG/PNG images" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "q.onnx").exists()
