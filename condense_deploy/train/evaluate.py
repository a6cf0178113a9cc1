"""Top-1/top-5 validation error of a checkpoint (PyTorch) or an .onnx file (onnxruntime).

Both read the validation split with the trainer's own preprocessing (CIFAR: normalise only;
ImageFolder: resize 256, centre crop 224, normalise), so the figures compare with the training log.
An .onnx file is evaluated without torch (``valdata``), normalised with the mean/std its metadata
records, on the data set its metadata names unless ``data`` is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CondenseDeployError
from ..graph.metadata import META

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """Errors in percent over ``images`` validation images."""

    source: str
    runtime: str
    data: str
    images: int
    top1_err: float
    top5_err: float
    seconds: float
    model: str = ""
    # a condensed training checkpoint is also converted (with the classifier its run chose) and
    # evaluated on the same images: what deploying it gives
    deployed_top1_err: float | None = None
    deployed_top5_err: float | None = None
    classifier: str | None = None
    # a converted checkpoint or .onnx file that records the error of the model it was converted from
    recorded: dict[str, Any] | None = None


def _counts(logits: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    hits = top == target[:, None]
    return int(hits[:, 0].sum()), int(hits.any(axis=1).sum())


def _onnx_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], int | None, int | None,
                                      dict[str, str], int | None]:
    """A function batch -> logits, the fixed batch size (None if dynamic), the image size, the file's
    metadata and its class count (None if symbolic)."""
    from ..runtime.sessions import create_session, run_session

    # onnxruntime's own thread count; log level 3: exporters' stale fixed output shapes only warn
    session = create_session(path, threads=None,
                             load_error=f"{path}: onnxruntime cannot load it ({{reason}})")
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise CondenseDeployError(f"{path}: has {len(inputs)} inputs; expected one image input")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise CondenseDeployError(f"{path}: input {inputs[0].name} has rank {len(shape)}; expected NCHW (4)")
    fixed_batch = shape[0] if isinstance(shape[0], int) else None
    size = shape[3] if isinstance(shape[3], int) else None
    name = inputs[0].name
    output = session.get_outputs()[0].shape
    classes = output[1] if len(output) == 2 and isinstance(output[1], int) else None

    def run(x: np.ndarray) -> np.ndarray:
        return run_session(session, {name: x.astype(np.float32)}, str(path))[0]

    return run, fixed_batch, size, dict(session.get_modelmeta().custom_metadata_map), classes


def _recorded(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The classifier record ``export`` stores (``condense_deploy.classifier``), if it has errors."""
    import json

    try:
        record = json.loads(metadata.get(META + "classifier", ""))
    except ValueError:
        return None
    return record if isinstance(record, dict) and "trained_err1" in record else None


def _metadata_data(path: Path, metadata: dict[str, str], classes: int | None) -> str:
    """The data set an exported file was trained on, from its metadata (``imagenet`` -> imagefolder)."""
    dataset = metadata.get(META + "dataset", "")
    if dataset == "cifar" and classes in (10, 100):  # a model trained by `train` records its kind
        dataset = f"cifar{classes}"
    if dataset in ("cifar10", "cifar100"):
        return dataset
    if dataset == "imagenet":
        return "imagefolder"
    raise CondenseDeployError(f"{path}: give --data (cifar10, cifar100 or imagefolder): its metadata names "
                              f"{'no data set' if not dataset else f'data set {dataset!r}'}")


def _metadata_stats(path: Path, metadata: dict[str, str], data: str) -> tuple[list[float], list[float]]:
    """The mean/std the file's metadata records, else the zoo cards' for ``data``."""
    import json

    try:
        mean, std = json.loads(metadata[META + "mean"]), json.loads(metadata[META + "std"])
        if len(mean) == 3 and len(std) == 3:
            return [float(v) for v in mean], [float(v) for v in std]
    except (KeyError, ValueError, TypeError):
        pass
    from ..architectures.registry import dataset_preprocessing

    if data == "cifar100":
        raise CondenseDeployError(f"{path}: its metadata has no mean/std (not exported by condense-deploy)")
    return dataset_preprocessing("cifar10" if data == "cifar10" else "imagenet")


def _evaluate_onnx(path: Path, data: str | None, data_dir: str | Path, batch_size: int, workers: int,
                   progress: Callable[[int, int], None] | None) -> EvalResult:
    """An .onnx file on the validation split, with onnxruntime and numpy only."""
    from ..valdata import open_validation

    run, fixed, size, metadata, classes = _onnx_runner(path)
    data = data or _metadata_data(path, metadata, classes)
    if size is None:
        size = 32 if data.startswith("cifar") else 224
    if data.startswith("cifar") and size != 32:
        raise CondenseDeployError(f"{path}: takes {size}x{size} images; {data} has 32x32")
    mean, std = _metadata_stats(path, metadata, data)
    dataset = open_validation(data, data_dir, size, mean, std, workers)
    if fixed is not None:
        batch_size = fixed
    _check_batch_fits(batch_size, fixed, dataset.size, size)
    top1 = top5 = seen = 0
    start = time.perf_counter()
    steps = math.ceil(dataset.size / batch_size)
    for step, (x, y) in enumerate(dataset.batches(batch_size), start=1):
        n = len(y)
        if fixed is not None and n < fixed:
            x = np.concatenate([x, np.zeros((fixed - n, *x.shape[1:]), x.dtype)])
        logits = run(x)[:n]
        if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
            raise CondenseDeployError(
                f"{path}: outputs shape {tuple(logits.shape)}; {data} has {dataset.num_classes} classes")
        c1, c5 = _counts(logits, y)
        top1, top5, seen = top1 + c1, top5 + c5, seen + n
        if progress is not None:
            progress(step, steps)
    return EvalResult(str(path), "onnxruntime", data, seen, 100 * (1 - top1 / seen), 100 * (1 - top5 / seen),
                      time.perf_counter() - start, path.stem, recorded=_recorded(metadata))


def _check_batch_fits(batch_size: int, fixed: int | None, available: int, size: int) -> None:
    """A batch is read as float32 and run through the model, whose activations are several times it."""
    from ..runtime.memory import check_fits

    images = min(batch_size, max(available, 1)) if fixed is None else batch_size
    check_fits(8 * images * 3 * size * size * 4, f"--batch-size {batch_size} of {size}x{size} images",
               "use a smaller --batch-size")


def _torch_runner(
    source: Path, arch: str | None, trust_checkpoint: bool, device: str,
) -> tuple[Callable[[np.ndarray], np.ndarray], Any, Callable[[np.ndarray], np.ndarray] | None, str | None]:
    """The model's runner, what was loaded, and for a condensed training checkpoint the runner of
    its converted form (with the classifier mode it was converted with)."""
    import torch

    from ..checkpoint import load_model

    loaded = load_model(source, arch=arch, trust_checkpoint=trust_checkpoint)
    if device == "cuda" and not torch.cuda.is_available():
        raise CondenseDeployError("--device cuda: no CUDA device is available to torch here")
    model = loaded.model.to(device).eval()
    deployed, mode = _deployed_form(loaded)

    def runner(net: Any) -> Callable[[np.ndarray], np.ndarray]:
        @torch.no_grad()
        def run(x: np.ndarray) -> np.ndarray:
            return net(torch.from_numpy(x).to(device)).float().cpu().numpy()

        return run

    return runner(model), loaded, None if deployed is None else runner(deployed.to(device).eval()), mode


def _deployed_form(loaded: Any) -> tuple[Any, str | None]:
    """A fully condensed training-form CondenseNet converted as its run chose (``finetune`` needs the
    training data, so it is not redone here), else None."""
    if loaded.family != "condensenet" or loaded.form != "training":
        return None, None
    from ..architectures.condensenet import learned_group_convs
    from ..convert import convert_model
    from ..pipeline import classifier_form, recorded_mode

    if any(m.stage != m.final_stage for m in learned_group_convs(loaded.model)):
        return None, None
    mode = recorded_mode(loaded)
    if mode == "finetune":
        return None, mode
    return convert_model(loaded.model, classifier_form(mode)), mode


def _default_data(loaded: Any) -> str:
    from ..architectures.registry import get_card

    name = getattr(loaded, "name", None)
    if name:
        try:
            dataset = get_card(name)["dataset"]
        except CondenseDeployError:
            dataset = None
        if dataset:
            return dataset if dataset.startswith("cifar") else "imagefolder"
    raise CondenseDeployError("give --data (cifar10, cifar100 or imagefolder): the model names no data set")


def _padded(
    batches: Iterator[tuple[Any, Any]], fixed: int | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """numpy batches; with a fixed model batch size the last one is zero-padded up to it."""
    for x, y in batches:
        xs, ys, n = x.numpy(), y.numpy(), len(y)
        if fixed is not None and n < fixed:
            xs = np.concatenate([xs, np.zeros((fixed - n, *xs.shape[1:]), xs.dtype)])
        yield xs, ys, n


def evaluate(
    source: str | Path, data: str | None, data_dir: str | Path, batch_size: int = 64, arch: str | None = None,
    trust_checkpoint: bool = False, device: str = "cpu", workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Validation error of ``source`` (a checkpoint, or an ``.onnx`` file) on ``data`` in ``data_dir``;
    ``progress(done, total)`` after every batch. An ``.onnx`` file needs no torch."""
    path = Path(source)
    if not path.is_file():
        raise CondenseDeployError(f"{path}: no such file")
    if batch_size < 1:
        raise CondenseDeployError(f"--batch-size {batch_size} must be >= 1")
    if path.suffix.lower() == ".onnx":
        return _evaluate_onnx(path, data, data_dir, batch_size, workers, progress)
    from .data import open_dataset

    run, loaded, deploy, mode = _torch_runner(path, arch, trust_checkpoint, device)
    recorded = loaded.deploy if "trained_err1" in loaded.deploy else None
    data = data or _default_data(loaded)
    fixed, size = None, int(loaded.input_size[-1])
    runtime, model_name = "pytorch", str(loaded.name or "")
    dataset = open_dataset(data, data_dir, workers, image_size=size, train=False)
    if data.startswith("cifar") and size != 32:
        raise CondenseDeployError(f"{path}: takes {size}x{size} images; {data} has 32x32")
    if fixed is not None:
        batch_size = fixed
    _check_batch_fits(batch_size, fixed, dataset.val_size, size)
    top1 = top5 = seen = 0
    deployed = [0, 0]
    start = time.perf_counter()
    steps = math.ceil(dataset.val_size / batch_size)
    batches = _padded(dataset.val_batches(batch_size), fixed)
    for step, (x, y, n) in enumerate(batches, start=1):
        logits = run(x)[:n]
        if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
            raise CondenseDeployError(
                f"{path}: outputs shape {tuple(logits.shape)}; {data} has {dataset.num_classes} classes")
        c1, c5 = _counts(logits, y[:n])
        top1, top5, seen = top1 + c1, top5 + c5, seen + n
        if deploy is not None:
            d1, d5 = _counts(deploy(x)[:n], y[:n])
            deployed = [deployed[0] + d1, deployed[1] + d5]
        if progress is not None:
            progress(step, steps)
    result = EvalResult(str(path), runtime, data, seen, 100 * (1 - top1 / seen), 100 * (1 - top5 / seen),
                        time.perf_counter() - start, model_name, classifier=mode, recorded=recorded)
    if deploy is not None:
        result.deployed_top1_err = 100 * (1 - deployed[0] / seen)
        result.deployed_top5_err = 100 * (1 - deployed[1] / seen)
    return result
