"""quantize: calibration readers (CIFAR batch, ImageFolder) and the quantize command."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import pytest
from test_onnx_passes import export, random_converted

from condense_deploy.cli import cli
from condense_deploy.images import load_images

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
    x, labels = load_images(cifar_dir, 32, 10, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.1))
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.float32 and list(labels) == list(range(10))
    raw = pickle.loads((cifar_dir / "cifar-10-batches-py" / "test_batch").read_bytes())[b"data"][:10]
    expected = raw.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    expected = (expected - np.array([0.5, 0.4, 0.3], np.float32)[:, None, None]) / np.array(
        [0.25, 0.2, 0.1], np.float32)[:, None, None]
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-5)  # channel order, scale, mean and std


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
    _check_printed_figures(result.output, model_file, target, cifar_dir)
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "Error:" in again.output and "Traceback" not in again.output


def test_quantize_without_images(model_file, tmp_path, runner):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["quantize", str(model_file), "-o", str(tmp_path / "q.onnx"),
                                 "--calibration-data", str(empty)])
    assert result.exit_code == 1 and "no JPEG/PNG images" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "q.onnx").exists()


def _check_printed_figures(output: str, fp32_path, int8_path, cifar_dir) -> None:
    """Recompute what quantize printed, independently: the same 16 evaluation images (after the 8
    calibration ones) through both files in onnxruntime; int8 logits close to fp32's, agreement and
    top-1 exactly as printed."""
    import re

    import onnxruntime as ort

    from condense_deploy.architectures.registry import dataset_preprocessing

    mean, std = dataset_preprocessing("cifar10")
    x, labels = load_images(cifar_dir, 32, 24, mean=tuple(mean), std=tuple(std))
    x, labels = x[8:], labels[8:]
    logits = []
    for path in (fp32_path, int8_path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        logits.append(np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]))
    fp32, int8 = logits
    relative = float(np.linalg.norm(int8 - fp32) / np.linalg.norm(fp32))
    assert relative < 0.1, f"int8 logits differ from fp32's by {relative:.1%} (relative L2)"
    assert float(np.corrcoef(int8.ravel(), fp32.ravel())[0, 1]) > 0.99
    agreement = float(np.mean(fp32.argmax(1) == int8.argmax(1)))
    top1 = float(np.mean(fp32.argmax(1) == labels)), float(np.mean(int8.argmax(1) == labels))
    printed = re.search(r"agreement int8 vs fp32: ([\d.]+)%", output)
    assert printed and abs(float(printed.group(1)) / 100 - agreement) < 1e-3, (output, agreement)
    assert agreement >= 0.75, f"int8 agrees with fp32 on only {agreement:.0%}"
    printed_top1 = re.search(r"fp32 ([\d.]+)%, int8 ([\d.]+)%", output)
    assert printed_top1, output
    assert abs(float(printed_top1.group(1)) / 100 - top1[0]) < 1e-3
    assert abs(float(printed_top1.group(2)) / 100 - top1[1]) < 1e-3
