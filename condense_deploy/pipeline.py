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
from .architectures.config import CLASSIFIER_MODES
from .architectures.registry import get_card
from .checkpoint import load_model, save_converted
from .classnames import CLASSES_KEY, dataset_class_names
from .convert import ClassifierReport, check_equivalence, classifier_report, convert_model
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
from .native.precision import uses_fp16

__all__ = [
    "Conversion",
    "ConvertResult",
    "Verification",
    "classifier_form",
    "convert_and_save",
    "convert_checked",
    "convert_checkpoint",
    "deployable",
    "classifier_metadata",
    "describe_model",
    "export_source",
    "load_for_conversion",
    "recorded_mode",
    "verify_source",
]


@dataclass
class Conversion:
    """A converted model, the proof its learned group convs are exact, what its classifier keeps, and
    its counts (of what is deployed)."""

    model: CondenseNet
    max_abs_diff: float
    classifier: ClassifierReport
    flops: int
    params: int


def classifier_form(mode: str) -> str:
    """The converted classifier a ``CLASSIFIER_MODES`` choice deploys: ``"full"`` or ``"half"``."""
    if mode not in CLASSIFIER_MODES:
        raise CondenseDeployError(f"--classifier {mode!r}: use one of {', '.join(CLASSIFIER_MODES)}")
    return "full" if mode == "full" else "half"


def convert_checked(
    model: CondenseNet, input_size: tuple[int, int, int], classifier: str = "half",
) -> Conversion:
    """Convert a condensed training-form CondenseNet with its classifier in ``classifier`` form
    (``"half"``, ``"full"``), prove the learned group convs exact, report the classifier, count."""
    converted = convert_model(model, classifier)
    diff = check_equivalence(model, converted, input_size)
    report = classifier_report(model, converted, input_size)
    flops, params = count_model(converted, input_size)
    return Conversion(converted, diff, report, flops, params)


def convert_and_save(model: CondenseNet, input_size: tuple[int, int, int], output: str | os.PathLike[str],
                     force: bool = False, classifier: str = "half",
                     classes: list[str] | None = None) -> Conversion:
    """``convert_checked``, then save in the original converted format (a full classifier: ours)."""
    conversion = convert_checked(model, input_size, classifier)
    deploy = None if classifier == "half" else {"classifier": "full"}
    save_converted(conversion.model, output, force=force, deploy=deploy, classes=classes)
    return conversion


@dataclass
class ConvertResult:
    """What ``convert`` did: the files, the equivalence figure, the classifier and the counts; with
    data, the trained and deployed validation errors (``gap``) and the warning when they differ."""

    source: str
    output: str
    name: str | None
    max_abs_diff: float
    flops: int
    params: int
    mode: str = "half"
    classifier: ClassifierReport | None = None
    gap: Any = None  # train.deploy.DeployGap when data was given
    warning: str | None = None


def load_for_conversion(
    source: str | os.PathLike[str], arch: str | None, trust_checkpoint: bool, classifier: str | None,
) -> tuple[Any, str]:
    """The training-form CondenseNet in ``source`` and the classifier mode to convert it with: the
    one asked for, else the one the checkpoint records (``half``, the original's, for other files)."""
    loaded = load_model(source, arch=arch, trust_checkpoint=trust_checkpoint)
    if loaded.family != "condensenet":
        raise CondenseDeployError(f"{source}: a {loaded.family} model has nothing to convert")
    if loaded.form != "training":
        raise CondenseDeployError(f"{source}: already in {loaded.form} form; nothing to convert")
    mode = classifier or recorded_mode(loaded)
    classifier_form(mode)  # validates the name
    return loaded, mode


def recorded_mode(loaded: Any) -> str:
    """The checkpoint's classifier choice as a conversion mode (``condense`` converts as ``half``)."""
    mode = str(loaded.deploy.get("classifier", "half"))
    if mode not in CLASSIFIER_MODES:
        return "half"
    return "half" if mode == "condense" else mode


def convert_checkpoint(
    source: str | os.PathLike[str], output: str | os.PathLike[str], arch: str | None = None,
    trust_checkpoint: bool = False, force: bool = False, classifier: str | None = None,
) -> ConvertResult:
    """Load a training checkpoint, convert it, prove the learned group convs exact, report what the
    classifier keeps, save (``half``: the original converted format). ``finetune`` needs data: see
    ``train.deploy.convert_on_data``."""
    check_writable(output, force, inputs=[source])
    loaded, mode = load_for_conversion(source, arch, trust_checkpoint, classifier)
    if mode == "finetune":
        raise CondenseDeployError(
            f"{source}: --classifier finetune retrains the kept classifier on data: give --data and "
            "--data-dir (or --classifier half or full)")
    model = cast(CondenseNet, loaded.model)  # the family was checked above
    done = convert_and_save(model, loaded.input_size, output, force=force, classifier=classifier_form(mode),
                            classes=loaded.classes)
    return ConvertResult(str(source), str(output), loaded.name, done.max_abs_diff, done.flops, done.params,
                         mode, done.classifier)


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
    info: dict[str, Any] = {
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
    classifier = classifier_metadata(loaded)
    if classifier is not None:
        info["classifier"] = classifier
    elif loaded.deploy.get("classifier"):
        info["classifier"] = {"mode": loaded.deploy["classifier"]}
    return info


def deployable(source: str | os.PathLike[str], arch: str | None, trust_checkpoint: bool,
                num_classes: int | None) -> Any:
    """Load ``source`` and bring a training-form CondenseNet to its converted (deployed) form, with
    the classifier the checkpoint records (the original's half classifier for other files)."""
    loaded = load_model(source, arch=arch, trust_checkpoint=trust_checkpoint, num_classes=num_classes)
    if loaded.family == "condensenet" and loaded.form == "training":
        mode = recorded_mode(loaded)
        if mode == "finetune":
            raise CondenseDeployError(
                f"{source}: its run deploys with --classifier finetune, which needs data; export the "
                "converted file the trainer wrote (save_models/converted_model_best.pth.tar), or "
                f"condense-deploy convert {os.path.basename(os.fspath(source))} --classifier finetune "
                "--data ... first")
        loaded.model = convert_model(cast(CondenseNet, loaded.model), classifier_form(mode)).eval()
        loaded.form = "converted"
        loaded.deploy = {**loaded.deploy, "classifier": mode}
    return loaded


def classifier_metadata(loaded: Any) -> dict[str, Any] | None:
    """What the deployed classifier keeps and how it got there (``META + "classifier"``): inputs kept
    of all, the mode, and the trained / deployed errors when the file records them."""
    model = loaded.model
    if not isinstance(model, CondenseNet) or not model.converted:
        return None
    features = model.cfg.num_features
    kept = features if model.classifier_form == "full" else int(features * 0.5)
    record: dict[str, Any] = {"form": model.classifier_form, "kept": kept, "features": features}
    mode = loaded.deploy.get("classifier")
    record["mode"] = mode if isinstance(mode, str) else model.classifier_form
    for key in ("data", "trained_err1", "deployed_err1"):
        if key in loaded.deploy:
            record[key] = loaded.deploy[key]
    return record


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
    classifier = classifier_metadata(loaded)
    if classifier is not None:
        meta[META + "classifier"] = classifier
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
    precision: str = "fp32",
) -> ExportResult:
    """``condense-deploy export``: a checkpoint (any format ``load_model`` reads) or a zoo name to a
    verified ONNX file. A training-form CondenseNet is converted first (refused if not condensed).
    ``opset`` defaults to the model card's, and the validation uses the card's atol
    (``export_config``)."""
    check_options(SPEC.opset if opset is None else opset, batch, exporter, optimize, precision)
    check_writable(output, force, inputs=[source])  # fail before minutes of work
    step = on_step or (lambda _message: None)
    step(f"loading {source}")
    loaded = deployable(source, arch, trust_checkpoint, num_classes)
    card_opset, atol = export_config(loaded.name)
    if opset is None:
        opset = card_opset
        check_options(opset, batch, exporter, optimize, precision)
    flops, params = count_model(loaded.model, loaded.input_size)
    metadata = _source_metadata(source, loaded, flops, params)
    return export_onnx(loaded.model, output, input_size=loaded.input_size, opset=opset, batch=batch,
                       simplify=simplify, exporter=exporter, optimize=optimize, metadata=metadata,
                       force=force, atol=atol, on_step=on_step, on_progress=on_progress,
                       precision=precision)


@dataclass
class Verification:
    """What ``verify`` found: the largest absolute difference per batch size, within ``atol``."""

    max_abs_diff: dict[int, float]
    atol: float
    fp16: dict[str, Any] | None = None  # an fp16 file: verified at fp32; fp16 vs PyTorch, or why not run


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
        if not uses_fp16(path.read_bytes()):
            return Verification(validate_onnx(path, loaded.model, loaded.input_size, atol), atol)
        return _verify_fp16(path, loaded, atol)
    except CondenseDeployError as e:
        exported_from = _metadata_or_empty(path).get(META + "architecture")
        ours = loaded.name or loaded.family
        if exported_from and exported_from != ours:
            raise CondenseDeployError(f"{e} (the file was exported from {exported_from}, not {ours})") from e
        raise


def _verify_fp16(path: Path, loaded: Any, atol: float) -> Verification:
    """An fp16 file: its graph at fp32 within ``atol``, then its fp16 blocks where this CPU runs them."""
    import onnx

    from .export import compare_fp16_with_torch
    from .graph.native import with_precision

    proto = onnx.load(str(path))
    diffs = validate_onnx(with_precision(proto, "fp32").SerializeToString(), loaded.model, loaded.input_size,
                          atol, label=f"{path} (at fp32)")
    fp16 = compare_fp16_with_torch(proto, loaded.model, loaded.input_size, max(diffs), path)
    return Verification(diffs, atol, fp16)


def _metadata_or_empty(path: Path) -> dict[str, str]:
    try:
        return read_metadata(path)
    except Exception:  # a file onnxruntime could not load already failed above with its own message
        return {}
