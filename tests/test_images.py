"""images: the one image reader of train, eval and quantize (ImageFolder listing, decoding, the
evaluation crop, CIFAR batches), and it works without torch or onnx, as a board has neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from condense_deploy.errors import CondenseDeployError
from condense_deploy.images import class_folders, decode_rgb, image_files, load_images
from condense_deploy.train.synthetic import write_cifar_archive

PACKAGE = Path(__file__).resolve().parents[1] / "condense_deploy"


def _folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3) -> None:
    from PIL import Image

    for k, name in enumerate(classes):
        (root / name / "sub").mkdir(parents=True)
        for i in range(per_class):
            where = root / name / ("sub" if i == 0 else "")
            Image.new("RGB", (50, 40), (k * 100, i * 50, 10)).save(where / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image")


def test_class_folders_label_by_sorted_name_and_recurse(tmp_path: Path) -> None:
    _folder(tmp_path, ("dog", "cat"))
    classes, samples = class_folders(tmp_path)
    assert classes == ["cat", "dog"]
    assert [label for _, label in samples] == [0, 0, 0, 1, 1, 1]
    assert all(path.suffix == ".png" for path, _ in samples)
    assert class_folders(tmp_path / "cat" / "sub") == ([], [])
    assert [p.name for p in image_files(tmp_path / "cat")] == ["1.png", "2.png"]


def test_undecodable_image_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(CondenseDeployError, match=r"bad\.jpg: cannot decode the image"):
        decode_rgb(bad)


def test_load_images_crops_and_normalises(tmp_path: Path) -> None:
    _folder(tmp_path)
    x, labels = load_images(tmp_path, 32, 4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32
    assert labels is not None and labels.tolist() == [0, 0, 0, 1]
    assert np.allclose(x[3, 0], 100 / 255)  # the first dog image: red 100 everywhere


def test_reads_images_without_torch_or_onnx(tmp_path: Path) -> None:
    """ImageFolder and CIFAR through ``load_images`` in a process where torch and onnx cannot load."""
    _folder(tmp_path / "folder")
    write_cifar_archive(tmp_path / "cifar", train_per_class=1, test_per_class=2)
    code = (
        "import sys\n"
        "for name in ('torch', 'torchvision', 'onnx', 'onnxruntime'):\n"
        "    sys.modules[name] = None\n"
        "from condense_deploy.images import load_images\n"
        f"x, y = load_images({str(tmp_path / 'folder')!r}, 24, 6)\n"
        "assert x.shape == (6, 3, 24, 24) and y.tolist() == [0, 0, 0, 1, 1, 1], (x.shape, y)\n"
        f"x, y = load_images({str(tmp_path / 'cifar')!r}, 32, 20)\n"
        "assert x.shape == (20, 3, 32, 32) and len(y) == 20, x.shape\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_graph_package_decodes_no_images() -> None:
    """graph/ is onnx + numpy: image reading (Pillow) lives in images.py alone."""
    offenders = []
    for path in (PACKAGE / "graph").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "PIL" for n in names):
                offenders.append(path.name)
    assert offenders == []
