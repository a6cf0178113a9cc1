"""The trainer's data readers and schedules: CIFAR archives, ImageFolder, determinism, sharding."""

from __future__ import annotations

import math
import pickle
import tarfile
from pathlib import Path

import pytest
import torch

from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError
from condense_deploy.train.data import CifarData, ImageFolderData, _crop_flip, open_dataset
from condense_deploy.train.schedule import learning_rate, progress
from condense_deploy.train.synthetic import write_cifar_archive


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_archive(root, train_per_class=6, test_per_class=3, seed=1)
    return root


def test_tar_gz_and_extracted_folder_read_the_same(archive_dir: Path, tmp_path: Path) -> None:
    write_cifar_archive(tmp_path, train_per_class=6, test_per_class=3, seed=1, extracted=True)
    a, b = CifarData("cifar10", archive_dir), CifarData("cifar10", tmp_path)
    assert a.train_x.shape == (60, 3, 32, 32) and a.val_x.shape == (30, 3, 32, 32)
    assert a.train_x.dtype == torch.uint8
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert sorted(a.train_y.bincount().tolist()) == [6] * 10
    # the archive path itself and the extracted folder itself work too
    assert CifarData("cifar10", archive_dir / "cifar-10-python.tar.gz").train_size == 60
    assert CifarData("cifar10", tmp_path / "cifar-10-batches-py").val_size == 30


def test_missing_data_set_says_where_to_put_it(tmp_path: Path, runner) -> None:
    with pytest.raises(CondenseDeployError, match=r"put cifar-100-python.tar.gz .* cifar-100-python/"):
        open_dataset("cifar100", tmp_path)
    result = runner.invoke(cli, ["train", "--data", "cifar10", "--data-dir", str(tmp_path),
                                 "--savedir", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "cifar-10-python.tar.gz" in errors[0] and "nothing is downloaded" in errors[0]
    assert not (tmp_path / "run" / "save_models").exists()


def test_corrupt_or_hostile_archive_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"data": Evil(), "labels": [0]}))
    with pytest.raises(CondenseDeployError, match="builtins.print is not allowed"):
        CifarData("cifar10", tmp_path)
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "cifar-10-python.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(CondenseDeployError, match="cannot read the archive"):
        CifarData("cifar10", broken)
    partial = tmp_path / "p"
    partial.mkdir()
    with tarfile.open(partial / "cifar-10-python.tar.gz", "w:gz"):
        pass
    with pytest.raises(CondenseDeployError, match="6 batch file"):
        CifarData("cifar10", partial)


def test_epoch_order_depends_only_on_seed_and_epoch(archive_dir: Path) -> None:
    data = CifarData("cifar10", archive_dir)
    first = list(data.epoch_batches(3, 16, seed=7))
    again = list(data.epoch_batches(3, 16, seed=7))
    other = list(data.epoch_batches(4, 16, seed=7))
    assert len(first) == data.batches_per_epoch(16) == math.ceil(60 / 16)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], other[0][0])
    # normalised with the CIFAR-10 mean/std: padding (black) becomes -mean/std
    assert first[0][0].dtype == torch.float32 and first[0][0].shape[1:] == (3, 32, 32)


def test_two_ranks_split_the_epoch(archive_dir: Path) -> None:
    data = CifarData("cifar10", archive_dir)
    labels = [torch.cat([y for _, y in data.epoch_batches(0, 16, 0, rank, 2)]) for rank in (0, 1)]
    assert len(labels[0]) == len(labels[1]) == 30
    assert data.batches_per_epoch(16, world=2) == math.ceil(30 / 8)
    whole = torch.cat([y for _, y in data.epoch_batches(0, 60, 0)])
    assert sorted(torch.cat(labels).tolist()) == sorted(whole.tolist())
    val = [sum(len(y) for _, y in data.val_batches(7, rank, 2)) for rank in (0, 1)]
    assert val == [15, 15]


def test_crop_and_flip_match_a_padded_crop() -> None:
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    out = _crop_flip(x, torch.tensor([[0, 8], [4, 4]]), torch.tensor([True, False]))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    assert torch.equal(out[0], padded[0, :, 0:32, 8:40].flip(-1))
    assert torch.equal(out[1], x[1])
    assert out[0, :, :4].sum() == 0  # the top 4 rows come from the zero padding


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for split, count in (("train", 3), ("val", 2)):
        for k, colour in enumerate(((255, 0, 0), (0, 0, 255))):
            folder = tmp_path / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40 + 7 * i, 30), colour).save(folder / f"{i}.jpg")
    data = ImageFolderData(tmp_path, workers=1, image_size=24)
    assert data.num_classes == 2 and data.train_size == 6 and data.val_size == 4
    x, y = next(iter(data.epoch_batches(0, 4, seed=0)))
    assert x.shape == (4, 3, 24, 24)
    again, _ = next(iter(data.epoch_batches(0, 4, seed=0)))
    assert torch.equal(x, again)
    vx, vy = next(iter(data.val_batches(4)))
    assert vx.shape == (4, 3, 24, 24) and vy.tolist() == [0, 0, 1, 1]
    # red images stay red after normalisation: channel 0 above channel 2
    assert (vx[0, 0] > vx[0, 2]).all()
    (tmp_path / "val" / "class1" / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CondenseDeployError, match="cannot decode"):
        list(data.val_batches(4))
    with pytest.raises(CondenseDeployError, match="no train/ folder"):
        ImageFolderData(tmp_path / "train")


def test_schedules() -> None:
    assert learning_rate("cosine", 0.1, 0, 0, 10, 4) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 2, 0, 10, 4) == pytest.approx(0.05)
    last = learning_rate("cosine", 0.1, 3, 9, 10, 4)
    assert last == pytest.approx(0.05 * (1 + math.cos(math.pi * 39 / 40)))
    assert [learning_rate("multistep", 0.1, e, 0, 10, 300) for e in (0, 150, 225)] == pytest.approx(
        [0.1, 0.01, 0.001])
    assert learning_rate("multistep", 0.1, 65, 0, 10, 120, imagenet=True) == pytest.approx(0.001)
    assert progress(1, 5, 10, 4) == pytest.approx(15 / 40)
