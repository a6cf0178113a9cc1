"""The ``train`` command line the tests run on a synthetic CIFAR-10 folder (``write_cifar_archive``)."""

from __future__ import annotations

from pathlib import Path


def train_args(data_dir: Path, savedir: Path, *extra: str) -> list[str]:
    """``train`` on the CIFAR-10 data in ``data_dir`` into ``savedir``, then ``extra``."""
    return ["train", "--data", "cifar10", "--data-dir", str(data_dir), "--savedir", str(savedir), *extra]
