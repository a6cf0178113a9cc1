"""Classify image files with an exported model: ``condense-deploy predict``. onnxruntime, numpy and
Pillow only (no torch, no onnx), so it runs on a board's runtime install, native models included.

Each image is decoded and prepared by ``images.model_input`` (the preprocessing ``eval`` uses) with
the size, mean, std and data set the model's metadata records; batches of ``batch`` images go
through one session; the top-k classes come with softmax probabilities and the class names from
``--labels``, the model's metadata, or its data set's shipped list (indices when there are none).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .classnames import dataset_class_names, metadata_class_names
from .errors import CondenseDeployError
from .graph.metadata import META
from .images import IMAGE_SUFFIXES, model_input

__all__ = ["ImageModel", "Prediction", "collect_images", "open_image_model", "predict_images"]

# mean/std of the ImageNet cards, for a model whose metadata names none
_IMAGENET_MEAN, _IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass
class Prediction:
    """The top-k of one image: (class index, name or None, probability), best first."""

    path: str
    top: list[tuple[int, str | None, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.path,
                "top": [{"index": i, "name": n, "probability": p} for i, n, p in self.top]}


@dataclass
class ImageModel:
    """An onnxruntime session of an image classifier and how to feed it (from its metadata)."""

    path: str
    session: Any
    input_name: str
    size: int
    mean: list[float]
    std: list[float]
    dataset: str | None
    fixed_batch: int | None
    class_names: list[str] | None
    notes: list[str]


def _json_list(metadata: dict[str, str], key: str) -> list[float] | None:
    try:
        value = json.loads(metadata[key])
    except (KeyError, ValueError):
        return None
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    return None


def open_image_model(path: str | Path, threads: int | None = None,
                     labels: Sequence[str] | None = None) -> ImageModel:
    """A session of ``path`` and its preprocessing; one line when it is no image classifier."""
    from .runtime.sessions import create_session

    text = str(path)
    if not Path(text).is_file():
        raise CondenseDeployError(f"{text}: no such model file")
    session = create_session(text, threads=threads,
                             load_error=f"{text}: onnxruntime cannot load it ({{reason}})")
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    channels = shape[1] if len(shape) == 4 else None
    if len(inputs) != 1 or len(shape) != 4 or (isinstance(channels, int) and channels != 3) \
            or "float" not in str(inputs[0].type):
        described = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs) or "no inputs"
        raise CondenseDeployError(f"{text}: not an image classifier: it takes {described}; predict needs one "
                                  "float image input [N, 3, H, W]")
    outputs = session.get_outputs()
    if len(outputs[0].shape) not in (0, 2) and outputs[0].shape:
        raise CondenseDeployError(f"{text}: its first output has shape {list(outputs[0].shape)}; "
                                  "predict needs class scores [N, classes]")
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    notes: list[str] = []
    size = shape[3] if isinstance(shape[3], int) else None
    if size is None:
        stored = _json_list(metadata, META + "input_size")
        size = int(stored[-1]) if stored else None
    if size is None:
        raise CondenseDeployError(f"{text}: its input size is symbolic and its metadata names none")
    if isinstance(shape[2], int) and shape[2] != size:
        raise CondenseDeployError(f"{text}: takes {shape[2]}x{size} images; predict crops square images")
    mean, std = _json_list(metadata, META + "mean"), _json_list(metadata, META + "std")
    if mean is None or std is None:
        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
        notes.append("its metadata has no mean/std: normalising with ImageNet's")
    dataset = metadata.get(META + "dataset") or None
    names = list(labels) if labels is not None else metadata_class_names(metadata)
    if names is None:
        classes = outputs[0].shape[1] if len(outputs[0].shape) == 2 else None
        names = dataset_class_names(dataset, classes if isinstance(classes, int) else None)
    fixed = shape[0] if isinstance(shape[0], int) else None
    return ImageModel(text, session, inputs[0].name, int(size), mean, std, dataset, fixed, names, notes)


def collect_images(sources: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders as the image files under them (sorted, recursive, by suffix)."""
    found: list[Path] = []
    for source in sources:
        p = Path(source)
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
                raise CondenseDeployError(f"{p}: no image files in this folder ({suffixes})")
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        else:
            raise CondenseDeployError(f"{p}: no such file or folder")
    return found


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _batches(paths: Sequence[Path], batch: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), batch):
        yield list(paths[start:start + batch])


def predict_images(model: ImageModel, paths: Sequence[Path], top_k: int = 5, batch: int = 8,
                   progress: Callable[[int, int], None] | None = None) -> list[Prediction]:
    """The top ``top_k`` classes of every image, ``batch`` images per run (the model's fixed batch if it
    has one); ``progress(done, total)`` after each batch."""
    if top_k < 1:
        raise CondenseDeployError(f"-k {top_k}: must be >= 1")
    step = model.fixed_batch or max(1, batch)
    results: list[Prediction] = []
    for chunk in _batches(paths, step):
        x = np.stack([model_input(p, model.size, model.mean, model.std, model.dataset) for p in chunk])
        if model.fixed_batch is not None and len(chunk) < model.fixed_batch:
            x = np.concatenate([x, np.zeros((model.fixed_batch - len(chunk), *x.shape[1:]), x.dtype)])
        try:
            logits = np.asarray(model.session.run(None, {model.input_name: x})[0])
        except Exception as e:  # onnxruntime's own error types
            from .runtime.sessions import first_line

            raise CondenseDeployError(
                f"{model.path}: onnxruntime failed on {chunk[0]}: {first_line(e)}") from e
        logits = logits.reshape(logits.shape[0], -1)[:len(chunk)]
        classes = logits.shape[1]
        if model.class_names is not None and len(model.class_names) != classes:
            raise CondenseDeployError(f"{model.path}: {classes} classes, but {len(model.class_names)} class "
                                      "names were given")
        probabilities = _softmax(logits)
        k = min(top_k, classes)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        for path, row, probs in zip(chunk, order, probabilities, strict=True):
            results.append(Prediction(str(path), [
                (int(i), model.class_names[i] if model.class_names else None, float(probs[i])) for i in row]))
        if progress is not None:
            progress(len(results), len(paths))
    return results
