"""The multi-step workflows: each loads a checkpoint (or a zoo model), converts, checks, counts,
exports or saves, by calling the single-step modules below it.

Imports run one way: architectures/ -> convert -> checkpoint -> pipeline -> commands (and train/). Nothing
below this module imports it, so no module needs a function-level import to break a cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from torch import nn

from ._fsutil import check_writable
from .architectures.condensenet import CondenseNet
from .architectures.registry import get_card
from .checkpoint import load_model, save_converted
from .classnames import CLASSES_KEY, dataset_class_names
from .convert import check_equivalence, convert_model
from .count import count_model
from .errors import CondenseDeployError
from .export import (
    META,
    SPEC,
    ExportResult,
    Progress,
    Step,
    check_options,
    export_config,
    export_onnx,
    read_metadata,
    validate_onnx,
)

__all__ = [
    "ConvertResult",
    "Verification",
    "convert_and_save",
    "convert_checkpoint",
    "deployable",
    "describe_model",
    "export_source",
    "verify_source",
]


def convert_and_save(model: CondenseNet, input_size: tuple[int, int, int], output: str | os.PathLike[str],
                     force: bool = False,
                     classes: list[str] | None = None) -> tuple[CondenseNet, float, int, int]:
    """Convert a condensed training-form CondenseNet, prove it equivalent, count it and save it in
    the original converted format: (converted model, max abs diff, FLOPs, params)."""
    converted = convert_model(model)
    diff = check_equivalence(model, converted, input_size)
    flops, params = count_model(converted, input_size)
    save_converted(converted, output, force=force, classes=classes)
    return converted, diff, flops, params


@dataclass
class ConvertResult:
    """What ``convert`` did: the files, the equivalence figure and the converted model's counts."""

    source: str
    output: str
    name: str | None
    max_abs_diff: float
    flops: int
    params: int


def convert_checkpoint(
    source: str | os.PathLike[str], output: str | os.PathLike[str], arch: str | None = None,
    trust_checkpoint: bool = False, force: bool = False,
) -> ConvertResult:
    """Load a training checkpoint, convert it, prove equivalence, save in the original converted format."""
    check_writable(output, force)
    loaded = load_model(source, arch=arch, trust_checkpoint=trust_checkpoint)
    if loaded.family != "condensenet":
        raise CondenseDeployError(f"{source}: a {loaded.family} model has nothing to convert")
    if loaded.form != "training":
        raise CondenseDeployError(f"{source}: already in {loaded.form} form; nothing to convert")
    model = cast(CondenseNet, loaded.model)  # the family was checked above
    _, diff, flops, params = convert_and_save(model, loaded.input_size, output, force=force,
                                              classes=loaded.classes)
    return ConvertResult(str(source), str(output), loaded.name, diff, flops, params)


def describe_model(
    source: str | os.PathLike[str], form: str | None = None, arch: str | None = None,
    trust_checkpoint: bool = False, num_classes: int | None = None,
) -> dict[str, Any]:
    """What ``inspect`` prints: name, family, form, architecture, input, FLOPs and params.

    A zoo name is counted in ``form`` (CondenseNets default to converted); a checkpoint in its own form.
    """
    text = os.fspath(source)
    loaded = load_model(text, arch=arch, trust_checkpoint=trust_checkpoint, num_classes=num_classes,
                        form=form)
    flops, params = count_model(loaded.model, loaded.input_size)
    config = loaded.config.to_dict() if loaded.config is not None else None
    return {
        "source": text,
        "name": loaded.name,
        "family": loaded.family,
        "form": loaded.form,
        "source_format": loaded.source_format,
        "sha256": loaded.sha256,
        "input_size": list(loaded.input_size),
        "config": config,
        "flops": flops,
        "params": params,
    }


def deployable(source: str | os.PathLike[str], arch: str | None, trust_checkpoint: bool,
                num_classes: int | None) -> Any:
    """Load ``source`` and bring a training-form CondenseNet to its converted (deployed) form."""
    loaded = load_model(source, arch=arch, trust_checkpoint=trust_checkpoint, num_classes=num_classes)
    if loaded.family == "condensenet" and loaded.form == "training":
        loaded.model = convert_model(cast(CondenseNet, loaded.model)).eval()
        loaded.form = "converted"
    return loaded


def _source_metadata(source: str | os.PathLike[str], loaded: Any, flops: int, params: int) -> dict[str, Any]:
    """Where the weights came from and what the network is: what a board needs to use the file."""
    config = loaded.config.to_dict() if hasattr(loaded.config, "to_dict") else {}
    linears = [m for m in loaded.model.modules() if isinstance(m, nn.Linear)]
    if linears and "num_classes" not in config:
        config["num_classes"] = linears[-1].out_features
    dataset = "unknown"
    if loaded.name is not None:
        dataset = get_card(loaded.name)["dataset"]
    elif getattr(loaded.config, "kind", None):
        dataset = loaded.config.kind
    meta: dict[str, Any] = {
        META + "architecture": loaded.name or loaded.family,
        META + "family": loaded.family,
        META + "form": loaded.form,
        META + "arch_params": config,
        META + "flops": str(flops),
        META + "params": str(params),
        META + "input_size": list(loaded.input_size),
        META + "dataset": dataset,
        META + "mean": loaded.mean,
        META + "std": loaded.std,
        META + "source": os.path.basename(os.fspath(source)),
        META + "source_format": loaded.source_format,
        META + "weights": "random (zoo name, seed 0)" if loaded.sha256 is None else "checkpoint",
    }
    if loaded.sha256 is not None:
        meta[META + "source_sha256"] = loaded.sha256
    # class names for predict: the checkpoint's own (a trained model's data set), else the data set's list
    names = getattr(loaded, "classes", None) or dataset_class_names(dataset, config.get("num_classes"))
    if names:
        meta[CLASSES_KEY] = list(names)
    return meta


def export_source(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    arch: str | None = None,
    opset: int | None = None,
    batch: str | int = "dynamic",
    simplify: bool = True,
    exporter: str = "torchscript",
    optimize: str = "fast",
    force: bool = False,
    trust_checkpoint: bool = False,
    num_classes: int | None = None,
    on_step: Step | None = None,
    on_progress: Progress | None = None,
) -> ExportResult:
    """``condense-deploy export``: a checkpoint (any format ``load_model`` reads) or a zoo name to a
    verified ONNX file. A training-form CondenseNet is converted first (refused if not condensed).
    ``opset`` defaults to the model card's, and the validation uses the card's atol
    (``export_config``)."""
    check_options(SPEC.opset if opset is None else opset, batch, exporter, optimize)
    check_writable(output, force)  # fail before minutes of work
    step = on_step or (lambda _message: None)
    step(f"loading {source}")
    loaded = deployable(source, arch, trust_checkpoint, num_classes)
    card_opset, atol = export_config(loaded.name)
    if opset is None:
        opset = card_opset
        check_options(opset, batch, exporter, optimize)
    flops, params = count_model(loaded.model, loaded.input_size)
    metadata = _source_metadata(source, loaded, flops, params)
    return export_onnx(loaded.model, output, input_size=loaded.input_size, opset=opset, batch=batch,
                       simplify=simplify, exporter=exporter, optimize=optimize, metadata=metadata,
                       force=force, atol=atol, on_step=on_step, on_progress=on_progress)


@dataclass
class Verification:
    """What ``verify`` found: the largest absolute difference per batch size, within ``atol``."""

    max_abs_diff: dict[int, float]
    atol: float


def verify_source(
    onnx_path: str | os.PathLike[str],
    source: str | os.PathLike[str],
    *,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    num_classes: int | None = None,
    atol: float | None = None,
) -> Verification:
    """``condense-deploy verify``: the export's onnxruntime-vs-PyTorch check on an existing file,
    within ``atol`` (default: the model card's, ``export_config``)."""
    path = Path(onnx_path)
    if not path.is_file():
        raise CondenseDeployError(f"{path}: no such ONNX file")
    loaded = deployable(source, arch, trust_checkpoint, num_classes)
    if atol is None:
        atol = export_config(loaded.name)[1]
    try:
        return Verification(validate_onnx(path, loaded.model, loaded.input_size, atol), atol)
    except CondenseDeployError as e:
        exported_from = _metadata_or_empty(path).get(META + "architecture")
        ours = loaded.name or loaded.family
        if exported_from and exported_from != ours:
            raise CondenseDeployError(f"{e} (the file was exported from {exported_from}, not {ours})") from e
        raise


def _metadata_or_empty(path: Path) -> dict[str, str]:
    try:
        return read_metadata(path)
    except Exception:  # a file onnxruntime could not load already failed above with its own message
        return {}
