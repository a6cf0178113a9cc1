"""The validation split as numpy batches, for evaluating an exported model without torch.

The same files and the same preprocessing as the trainer's validation (``train.data``): the CIFAR
test batch normalised, ImageFolder ``val/CLASS/*`` through ``images.model_input`` (shorter side to
256/224 of the size, centre crop, normalise). numpy and Pillow only; images are decoded by a small
thread pool (Pillow releases the GIL while decoding and resizing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CondenseDeployError
from .images import (
    cifar_arrays,
    cifar_files,
    class_folders,
    model_input,
    normalize,
    read_cifar,
    unpickle_cifar_batch,
)

__all__ = ["ValidationSet", "open_validation"]


@dataclass
class ValidationSet:
    """``size`` labelled images of ``num_classes`` classes, read in batches of float32 NCHW."""

    name: str
    num_classes: int
    size: int
    _cifar: tuple[np.ndarray, np.ndarray] | None
    _files: list[tuple[Path, int]]
    _prepare: Any
    workers: int

    def batches(self, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._cifar is not None:
            images, labels = self._cifar
            for start in range(0, self.size, batch):
                yield self._prepare(images[start:start + batch]), labels[start:start + batch]
            return
        with ThreadPoolExecutor(max(1, self.workers)) as pool:
            for start in range(0, self.size, batch):
                chunk = self._files[start:start + batch]
                x = np.stack(list(pool.map(self._prepare, [p for p, _ in chunk])))
                yield x, np.asarray([label for _, label in chunk], np.int64)


def _cifar(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    members = read_cifar(name, data_dir, train=False)
    [test_file] = cifar_files(name, False, True)
    where = f"{data_dir}: {test_file}"
    return cifar_arrays(unpickle_cifar_batch(members[test_file], where), where)


def open_validation(name: str, data_dir: str | Path, image_size: int, mean: Sequence[float],
                    std: Sequence[float], workers: int = 2) -> ValidationSet:
    """The validation split of ``cifar10``, ``cifar100`` or ``imagefolder`` in ``data_dir``."""
    root = Path(data_dir)
    if name in ("cifar10", "cifar100"):
        if image_size != 32:
            raise CondenseDeployError(f"the model takes {image_size}x{image_size} images; {name} has 32x32")
        images, labels = _cifar(name, root)
        classes = 10 if name == "cifar10" else 100
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise CondenseDeployError(f"{root}: test label {int(labels.max())} outside 0..{classes - 1}")
        return ValidationSet(name, classes, len(labels), (images, labels), [],
                             lambda x: normalize(x, mean, std), workers)
    if name == "imagefolder":
        if not (root / "val").is_dir():
            raise CondenseDeployError(f"imagefolder: no val/ folder in {root}: put the images as "
                                      f"{root}/val/CLASS/*.jpg; nothing is downloaded")
        folders, files = class_folders(root / "val")
        if not files:
            raise CondenseDeployError(f"imagefolder: {root}: 0 val images found")
        return ValidationSet(name, len(folders), len(files), None, files,
                             lambda p: model_input(p, image_size, mean, std), workers)
    raise CondenseDeployError(f"unknown data set {name!r}; use cifar10, cifar100 or imagefolder")
