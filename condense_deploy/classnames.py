"""Class names of a classifier: shipped lists for the zoo's data sets, a model's own metadata, or a
labels file. Standard library only (a board needs them without torch).

The CIFAR-10, CIFAR-100 and ImageNet (ILSVRC-2012, the usual short names, in class-index order) lists
ship as package data in ``condense_deploy/data/``; nothing is downloaded. ``export`` writes a model's
names into its metadata under ``CLASSES_KEY`` (a JSON list), ``predict`` reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from .errors import CondenseDeployError
from .graph.metadata import META

__all__ = ["CLASSES_KEY", "dataset_class_names", "labels_file", "metadata_class_names"]

CLASSES_KEY = META + "classes"
_SHIPPED = {"cifar10": ("cifar10.txt", 10), "cifar100": ("cifar100.txt", 100),
            "imagenet": ("imagenet.txt", 1000)}


def dataset_class_names(dataset: str | None, num_classes: int | None = None) -> list[str] | None:
    """The shipped names of ``dataset`` (``cifar10``, ``cifar100``, ``imagenet``; ``cifar`` picks by
    ``num_classes``), or None when none fit (an unknown data set, or another class count)."""
    if dataset == "cifar" and num_classes in (10, 100):
        dataset = f"cifar{num_classes}"
    if dataset == "cifar10" and num_classes == 100:  # a CIFAR card trained with --num-classes 100
        dataset = "cifar100"
    entry = _SHIPPED.get(dataset or "")
    if entry is None or (num_classes is not None and num_classes != entry[1]):
        return None
    text = resources.files("condense_deploy.data").joinpath(entry[0]).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def metadata_class_names(metadata: Mapping[str, str]) -> list[str] | None:
    """The class names a model's metadata holds; None when it has none (or unreadable ones)."""
    text = metadata.get(CLASSES_KEY)
    if not text:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


def labels_file(path: str | Path) -> list[str]:
    """Class names from a text file, one per line in class-index order (blank lines and lines starting
    with ``#`` skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise CondenseDeployError(f"{path}: no such labels file") from e
    except UnicodeDecodeError as e:
        raise CondenseDeployError(f"{path}: not a UTF-8 text file of class names") from e
    except OSError as e:
        raise CondenseDeployError(f"{path}: cannot read the labels file ({e.strerror})") from e
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not names:
        raise CondenseDeployError(f"{path}: no class names in it (expected one name per line)")
    return names
