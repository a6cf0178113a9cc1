"""A small, learnable data set written in the CIFAR python-archive format, for tests and smoke runs.

Class k is a colour (ten well-separated ones) under per-pixel noise and a random brightness shift, so
a tiny CondenseNet learns it in a few epochs while every code path (archive reading, augmentation,
condensing, conversion) runs on real files.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

__all__ = ["write_cifar10", "write_cifar_archive"]

_PALETTE = np.array([
    [230, 25, 25], [25, 200, 25], [25, 25, 230], [230, 230, 25], [230, 25, 230],
    [25, 230, 230], [240, 240, 240], [20, 20, 20], [240, 130, 20], [128, 128, 128],
], dtype=np.float32)


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = _PALETTE[labels % len(_PALETTE)][:, :, None, None]
    shift = rng.normal(0, 15, (len(labels), 1, 1, 1))
    noise = rng.normal(0, 40, (len(labels), 3, 32, 32))
    return np.clip(base + shift + noise, 0, 255).astype(np.uint8)


def _batch(images: np.ndarray, labels: np.ndarray, name: str) -> bytes:
    data = {"batch_label": name, "labels": [int(v) for v in labels],
            "data": images.reshape(len(labels), 3072),
            "filenames": [f"{name}_{i}.png" for i in range(len(labels))]}
    return pickle.dumps(data, protocol=2)


def write_cifar_archive(
    target: str | os.PathLike[str], train_per_class: int = 50, test_per_class: int = 20, seed: int = 0,
    extracted: bool = False,
) -> Path:
    """Write ``cifar-10-python.tar.gz`` (or the extracted ``cifar-10-batches-py/``) into ``target``.

    Five training batches, ``test_batch`` and ``batches.meta``, as in the real archive.
    """
    rng = np.random.default_rng(seed)
    train_labels = rng.permutation(np.repeat(np.arange(10), train_per_class))
    test_labels = rng.permutation(np.repeat(np.arange(10), test_per_class))
    parts = [(_images(part, rng), part) for part in np.array_split(train_labels, 5)]
    test = (_images(test_labels, rng), test_labels)
    return write_cifar10(target, parts, test, [f"colour_{k}" for k in range(10)], extracted)


def write_cifar10(
    target: str | os.PathLike[str], train: list[tuple[np.ndarray, np.ndarray]],
    test: tuple[np.ndarray, np.ndarray], label_names: list[str], extracted: bool = False,
) -> Path:
    """Write images (uint8 [N, 3, 32, 32]) and labels as the CIFAR-10 python archive (or its extracted
    folder): ``train`` is the five training batches, ``test`` the test batch."""
    root = Path(target)
    root.mkdir(parents=True, exist_ok=True)
    files = {f"data_batch_{i + 1}": _batch(images, labels, f"training batch {i + 1} of {len(train)}")
             for i, (images, labels) in enumerate(train)}
    files["test_batch"] = _batch(*test, "testing batch 1 of 1")
    files["batches.meta"] = pickle.dumps({"label_names": label_names,
                                          "num_cases_per_batch": len(train[0][1]), "num_vis": 3072},
                                         protocol=2)
    if extracted:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(exist_ok=True)
        for name, raw in files.items():
            (folder / name).write_bytes(raw)
        return folder
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return archive
