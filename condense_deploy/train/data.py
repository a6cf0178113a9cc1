"""Training and validation data without torchvision: the CIFAR python archives and ImageFolder trees.

Batches come from ``epoch_batches(epoch, ...)``, whose sample order and augmentation depend only on
(seed, epoch, rank, world size). That is what lets an interrupted run resume at an epoch boundary and
end with exactly the weights of an uninterrupted one: no RNG state has to be saved.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..architectures.registry import dataset_preprocessing
from ..errors import CondenseDeployError
from ..images import (
    cifar_arrays,
    cifar_files,
    class_folders,
    decode_rgb,
    eval_crop,
    read_cifar,
    unpickle_cifar_batch,
)

__all__ = [
    "DATASETS",
    "CifarData",
    "DataSpec",
    "ImageFolderData",
    "TrainData",
    "epoch_generator",
    "open_dataset",
]


@dataclass(frozen=True)
class DataSpec:
    """What the original code fixed per data set: preprocessing and training defaults."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    epochs: int
    batch_size: int
    group_lasso_lambda: float
    archive: str = ""
    folder: str = ""


def _card_stats(dataset: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The mean/std of the model cards of ``dataset`` (CIFAR-100 has no card: its figures stay here)."""
    mean, std = dataset_preprocessing(dataset)
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


DATASETS: dict[str, DataSpec] = {
    "cifar10": DataSpec("cifar10", *_card_stats("cifar10"), 32, 300, 64, 0.0,
                        "cifar-10-python.tar.gz", "cifar-10-batches-py"),
    "cifar100": DataSpec("cifar100", (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761), 32, 300, 64, 0.0,
                         "cifar-100-python.tar.gz", "cifar-100-python"),
    "imagefolder": DataSpec("imagefolder", *_card_stats("imagenet"), 224, 120, 256, 1e-5),
}



def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A torch generator determined by (seed, epoch, stream) alone."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch * 7_919 + stream) % (2**63))
    return generator


def _shard(order: torch.Tensor, rank: int, world: int, pad: bool) -> torch.Tensor:
    """This rank's share, as DistributedSampler does it: padded so every rank gets as many samples."""
    if world == 1:
        return order
    if pad:
        total = math.ceil(len(order) / world) * world
        if total > len(order):
            order = torch.cat([order, order[: total - len(order)]])
    return order[rank::world]


class TrainData:
    """A data set split in train/val with the batching the trainer needs."""

    spec: DataSpec
    num_classes: int
    train_size: int
    val_size: int

    def batches_per_epoch(self, batch_size: int, world: int = 1) -> int:
        """Iterations per epoch; ``batch_size`` is the global batch, split over ``world`` ranks."""
        per_rank = math.ceil(self.train_size / world)
        return math.ceil(per_rank / max(1, batch_size // world))

    def epoch_batches(
        self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def val_batches(
        self, batch_size: int, rank: int = 0, world: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float, scaled to [0, 1] and normalised with the data set's mean/std."""
        mean = torch.tensor(self.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std).view(1, 3, 1, 1)
        return (x.float().div_(255) - mean) / std


# --------------------------------------------------------------------------------------- CIFAR


def _decode_cifar(batches: list[dict[str, Any]], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    arrays = [cifar_arrays(batch, where) for batch in batches]
    return (torch.cat([torch.from_numpy(x) for x, _ in arrays]),
            torch.cat([torch.from_numpy(y) for _, y in arrays]))


class CifarData(TrainData):
    """CIFAR-10/100 held in memory as uint8; augmented per batch with torch ops (crop 32 pad 4, flip)."""

    def __init__(self, name: str, data_dir: str | Path, train: bool = True) -> None:
        self.spec = DATASETS[name]
        data_dir = Path(data_dir)
        members = read_cifar(name, data_dir, train=train)
        batches = [unpickle_cifar_batch(members[f], f"{data_dir}: {f}")
                   for f in cifar_files(name, train, False)]
        test = [unpickle_cifar_batch(members[f], f"{data_dir}: {f}") for f in cifar_files(name, False, True)]
        if batches:
            self.train_x, self.train_y = _decode_cifar(batches, str(data_dir))
        else:  # eval: the test batch only
            self.train_x = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
            self.train_y = torch.zeros(0, dtype=torch.long)
        self.val_x, self.val_y = _decode_cifar(test, str(data_dir))
        self.num_classes = 10 if name == "cifar10" else 100
        for labels, split in ((self.train_y, "train"), (self.val_y, "test")):
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise CondenseDeployError(
                    f"{data_dir}: {split} label {int(labels.max())} outside 0..{self.num_classes - 1}")
        self.train_size = len(self.train_y)
        self.val_size = len(self.val_y)

    def epoch_batches(
        self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.train_size, generator=epoch_generator(seed, epoch, 0))
        mine = _shard(order, rank, world, pad=True)
        aug = epoch_generator(seed, epoch, 1 + rank)
        offsets = torch.randint(0, 9, (len(mine), 2), generator=aug)
        flips = torch.rand(len(mine), generator=aug) < 0.5
        per_rank = max(1, batch_size // world)
        for start in range(0, len(mine), per_rank):
            index = mine[start:start + per_rank]
            chunk = slice(start, start + per_rank)
            x = _crop_flip(self.train_x[index], offsets[chunk], flips[chunk])
            yield self.normalize(x), self.train_y[index]

    def val_batches(
        self, batch_size: int, rank: int = 0, world: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mine = _shard(torch.arange(self.val_size), rank, world, pad=False)
        for start in range(0, len(mine), batch_size):
            index = mine[start:start + batch_size]
            yield self.normalize(self.val_x[index]), self.val_y[index]


def _crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """RandomCrop(32, padding=4) with zero (black) padding, then RandomHorizontalFlip, per sample."""
    size = x.shape[-1]
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    out = torch.empty_like(x)
    for k in range(len(x)):
        top, left = int(offsets[k, 0]), int(offsets[k, 1])
        crop = padded[k, :, top:top + size, left:left + size]
        out[k] = crop.flip(-1) if flips[k] else crop
    return out


# --------------------------------------------------------------------------------- ImageFolder


def _to_uint8(image: Any) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def random_resized_crop(image: Any, size: int, rng: random.Random) -> Any:
    """RandomResizedCrop(size): area 8-100 %, aspect 3/4-4/3, ten tries, then a centre crop."""
    from PIL import Image

    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


class _FolderSet(torch.utils.data.Dataset):
    """One split; a sample's augmentation is seeded by (seed, epoch, index), so workers don't matter."""

    def __init__(self, samples: list[tuple[Path, int]], train: bool, size: int) -> None:
        self.samples = samples
        self.train = train
        self.size = size
        self.seed = 0
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = decode_rgb(path)
        if self.train:
            rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
            image = random_resized_crop(image, self.size, rng)
            if rng.random() < 0.5:
                from PIL import Image

                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:  # the one evaluation crop, as eval of an .onnx file and predict take it
            image = eval_crop(image, self.size)
        return _to_uint8(image), label


class ImageFolderData(TrainData):
    """``train/CLASS/*.jpg`` and ``val/CLASS/*.jpg``, decoded with Pillow in DataLoader workers."""

    def __init__(self, data_dir: str | Path, workers: int = 2, image_size: int = 224,
                 train: bool = True) -> None:
        self.spec = DATASETS["imagefolder"]
        root = Path(data_dir)
        for split in ("train", "val") if train else ("val",):
            if not (root / split).is_dir():
                layout = f"{root}/val/CLASS/*.jpg"
                if train:
                    layout = f"{root}/train/CLASS/*.jpg and {layout}"
                raise CondenseDeployError(f"imagefolder: no {split}/ folder in {root}: put the images as "
                                          f"{layout}; nothing is downloaded")
        val_classes, val = class_folders(root / "val")
        classes, train_samples = class_folders(root / "train") if train else (val_classes, [])
        if (train and not train_samples) or not val:
            raise CondenseDeployError(
                f"imagefolder: {root}: {len(train_samples)} train and {len(val)} val images found")
        if val_classes != classes:
            raise CondenseDeployError(
                f"imagefolder: {root}: train has {len(classes)} class folders, val has {len(val_classes)} "
                "(they must have the same names)")
        self.classes = classes
        self.num_classes = len(classes)
        self.workers = workers
        self.train_set = _FolderSet(train_samples, True, image_size)
        self.val_set = _FolderSet(val, False, image_size)
        self.train_size = len(train_samples)
        self.val_size = len(val)

    def _loader(self, dataset: _FolderSet, indices: list[int], batch: int) -> Iterator[Any]:
        batches = [indices[i:i + batch] for i in range(0, len(indices), batch)]
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=self.workers,
                                             collate_fn=_collate)
        try:
            yield from loader
        except CondenseDeployError as e:  # a worker's error comes back with its traceback in the text
            last = str(e).strip().splitlines()[-1]
            raise CondenseDeployError(last.split("CondenseDeployError: ", 1)[-1]) from None

    def epoch_batches(
        self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.train_set.seed, self.train_set.epoch = seed, epoch
        order = torch.randperm(self.train_size, generator=epoch_generator(seed, epoch, 0))
        mine = _shard(order, rank, world, pad=True).tolist()
        for x, y in self._loader(self.train_set, mine, max(1, batch_size // world)):
            yield self.normalize(x), y

    def val_batches(
        self, batch_size: int, rank: int = 0, world: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mine = _shard(torch.arange(self.val_size), rank, world, pad=False).tolist()
        for x, y in self._loader(self.val_set, mine, batch_size):
            yield self.normalize(x), y


def _collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)


def open_dataset(
    name: str, data_dir: str | Path, workers: int = 2, image_size: int | None = None, train: bool = True,
) -> TrainData:
    """``cifar10``, ``cifar100`` or ``imagefolder`` from ``data_dir``; a missing set says where to put it.
    ``train=False`` (eval) reads only the validation split, so only that split has to be there."""
    if name in ("cifar10", "cifar100"):
        return CifarData(name, data_dir, train)
    if name == "imagefolder":
        return ImageFolderData(data_dir, workers, image_size or 224, train)
    raise CondenseDeployError(f"unknown data set {name!r}; use cifar10, cifar100 or imagefolder")
