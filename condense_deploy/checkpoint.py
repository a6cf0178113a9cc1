"""Load any CondenseNet checkpoint the original code (or pytorchcv) produced, or a zoo model; save the
converted form in the original layout.

Formats, auto-detected: the original training checkpoint (``epoch``, ``model``, ``state_dict``,
``best_prec1``, ``optimizer``; keys ``module.``-prefixed; any condensing stage), the original converted
file (``{'state_dict'}``, legacy serialization, no ``num_batches_tracked``), a bare state dict with or
without ``module.``, and pytorchcv's converted CondenseNet-74 (its key names mapped to ours). The
architecture is inferred from tensor shapes and matched to a zoo card; ``arch`` checks it instead.
Files are read with ``weights_only=True``; anything needing arbitrary unpickling is refused unless the
caller trusts the file.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._fsutil import atomic_path, check_writable
from .architectures.config import CondenseNetConfig, DenseNetConfig
from .architectures.registry import create_model, dataset_preprocessing, get_card, list_models
from .convert import convert_model, one_thread
from .errors import CondenseDeployError, first_line

__all__ = ["LoadedModel", "add_module", "infer_config", "load_model", "save_converted", "strip_module"]

_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickled torch magic number
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class LoadedModel:
    """A model ready to run (eval mode) and everything known about where it came from."""

    model: nn.Module
    name: str | None
    family: str
    form: str
    config: Any
    source_format: str
    sha256: str | None
    input_size: tuple[int, int, int]
    mean: list[float]
    std: list[float]
    # how the classifier is (or is to be) deployed, as the file records it: ``classifier`` (a
    # CLASSIFIER_MODES name) and, where measured, ``data``, ``trained_err1``, ``deployed_err1``
    deploy: dict[str, Any] = field(default_factory=dict)
    classes: list[str] | None = None  # class names a checkpoint from `train` carries (its data set's)


def load_model(
    source: str | os.PathLike[str], arch: str | None = None, trust_checkpoint: bool = False,
    num_classes: int | None = None, form: str | None = None,
) -> LoadedModel:
    """A zoo name (deterministic random init) or a checkpoint path, as a model in eval mode.

    For a zoo CondenseNet, ``form`` picks ``"converted"`` (default: the training form condensed to its
    final stage and converted, so the index buffers are real) or ``"training"``. A checkpoint is loaded
    in the form it is in; ``form`` then only checks it.
    """
    text = os.fspath(source)
    path = Path(text)
    if not path.exists() and text in list_models():
        return _load_zoo(text, num_classes, form)
    if not path.exists():
        hint = "" if os.sep in text or "." in text else " (and it is not a zoo model name)"
        raise CondenseDeployError(f"{text}: no such file{hint}")
    if path.is_dir():
        raise CondenseDeployError(f"{text}: is a directory, not a checkpoint file")
    loaded = _load_file(path, arch, trust_checkpoint, num_classes)
    if form is not None and loaded.form != form:
        raise CondenseDeployError(f"{text}: the checkpoint is in {loaded.form} form, not {form}")
    return loaded


# ---------------------------------------------------------------------------------------- zoo names


def _load_zoo(name: str, num_classes: int | None, form: str | None) -> LoadedModel:
    card = get_card(name)
    family = card["family"]
    overrides = {} if num_classes is None else {"num_classes": num_classes}
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(0)  # the same name gives the same weights in every process
        model = create_model(name, **overrides)
        if family == "condensenet":
            form = form or "converted"
            if form not in ("converted", "training"):
                raise CondenseDeployError(f"{name}: form must be 'converted' or 'training', not {form!r}")
            if form == "converted":
                model.condense(1.0)
                model = convert_model(model)
            config: Any = model.cfg
        else:
            if form not in (None, "plain"):
                raise CondenseDeployError(f"{name}: a {family} model has only the plain form, not {form}")
            form = "plain"
            config = getattr(model, "cfg", None)
    size = card["input_size"]
    return LoadedModel(model.eval(), name, family, form, config, "zoo", None,
                       (int(size[0]), int(size[1]), int(size[2])), list(card["mean"]), list(card["std"]))


# ---------------------------------------------------------------------------------------- files


def _load_file(path: Path, arch: str | None, trust: bool, num_classes: int | None) -> LoadedModel:
    raw = _read_torch_file(path, trust)
    state, container = _unwrap(raw, path)
    state = strip_module(state)
    if _is_pytorchcv(state):
        state = _map_pytorchcv(state, path)
        container = "pytorchcv"
    family = _family(state, path)
    if family == "densenet":
        return _load_densenet(state, path, container, arch, num_classes)
    form = "converted" if any(k.endswith(".index") for k in state) else "training"
    if container == "container":
        container = "original-converted" if form == "converted" else "state-dict"
    if arch is not None:
        card = get_card(arch)
        if card["family"] != "condensenet":
            raise CondenseDeployError(f"{path}: holds a CondenseNet, but --arch {arch} is a {card['family']}")
        classes = num_classes if num_classes is not None else _classes(state, card)
        config = CondenseNetConfig.from_card(card, num_classes=classes)
        name: str | None = arch
    else:
        config = infer_config(state, str(path))
        if num_classes is not None:
            config.num_classes = num_classes
        name = _match_card(config)
    from .architectures.condensenet import CondenseNet

    classifier = "full" if form == "converted" and "classifier.weight" in state else "half"
    model = CondenseNet(config, converted=form == "converted", classifier=classifier)
    _load_state(model, state, path, f"--arch {arch}" if arch else "the inferred architecture")
    if form == "training":
        _check_condensing_buffers(model, path, arch)
    mean, std, size = _preprocessing(name, config)
    return LoadedModel(model.eval(), name, "condensenet", form, config, container, _sha256(path),
                       size, mean, std, _deploy_record(raw),
                       _class_names(raw, config.num_classes))


def _deploy_record(raw: Any) -> dict[str, Any]:
    """What the file says about its classifier: a converted file's ``deploy`` entry, or the
    trainer's ``train_options["classifier"]`` in a training checkpoint (plain values only)."""
    if not isinstance(raw, dict):
        return {}
    record = raw.get("deploy")
    if isinstance(record, dict):
        return {str(k): v for k, v in record.items() if isinstance(v, (str, int, float))}
    options = raw.get("train_options")
    if isinstance(options, dict) and isinstance(options.get("classifier"), str):
        return {"classifier": options["classifier"]}
    return {}


def _classes(state: dict[str, torch.Tensor], card: dict[str, Any]) -> int:
    """The checkpoint's class count (a CIFAR-100 file fits a CIFAR card), else the card's."""
    for key in ("classifier.weight", "classifier.linear.weight"):
        if key in state and state[key].dim() == 2:
            return int(state[key].shape[0])
    return int(card["num_classes"])


def _read_torch_file(path: Path, trust: bool) -> Any:
    """``torch.load`` with every failure turned into one line that says what is wrong with the file."""
    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY_MAGIC))
    if not head:
        raise CondenseDeployError(f"{path}: empty file, not a torch checkpoint")
    is_zip = head.startswith(_ZIP_MAGIC)
    if not is_zip and not head.startswith(_LEGACY_MAGIC):
        raise CondenseDeployError(f"{path}: not a torch file (starts with bytes {head[:4].hex()})")
    if is_zip and not zipfile.is_zipfile(path):
        raise CondenseDeployError(f"{path}: truncated or corrupt torch file (the zip directory is missing)")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as e:  # torch raises pickle, zip, EOF and runtime errors for bad files
        message = str(e)
        if isinstance(e, EOFError) or _looks_truncated(message):
            raise CondenseDeployError(f"{path}: truncated torch file ({first_line(e, limit=200)})") from e
        if not trust and isinstance(e, pickle.UnpicklingError):
            # behaviour, not wording: the safe (weights_only) unpickler refused something in the file
            raise CondenseDeployError(
                f"{path}: loading needs unsafe unpickling{_unsafe_global(message)}; the safe loader refused "
                "it (pass --trust-checkpoint only if you trust the file's origin: it runs code from the file)"
            ) from e
        raise CondenseDeployError(f"{path}: cannot load the torch file ({first_line(e, limit=200)})") from e


def _unsafe_global(message: str) -> str:
    match = re.search(r"GLOBAL ([\w.]+)", message, re.IGNORECASE)
    if match:
        return f" (it contains {match.group(1)})"
    match = re.search(r"Unsupported operand \d+", message)
    return f" ({match.group(0)})" if match else ""


def _looks_truncated(message: str) -> bool:
    lowered = message.lower()
    return any(s in lowered for s in ("ran out of input", "unexpected eof", "truncated", "pickle data was",
                                      "failed reading", "invalid load key", "unpickling stack"))


def _unwrap(raw: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside ``raw`` and the container kind it came in."""
    if isinstance(raw, nn.Module):  # a pickled model object (only with --trust-checkpoint)
        return dict(raw.state_dict()), "pickled-module"
    if not isinstance(raw, dict):
        raise CondenseDeployError(
            f"{path}: holds a {type(raw).__name__}, not a state dict or checkpoint dict"
        )
    if "state_dict" in raw:
        state = raw["state_dict"]
        if isinstance(state, nn.Module):
            state = state.state_dict()
        if not isinstance(state, dict):
            raise CondenseDeployError(f"{path}: 'state_dict' holds a {type(state).__name__}, not a dict")
        model = raw.get("model")
        if isinstance(model, str) and model not in ("condensenet", "condensenet_converted", "densenet"):
            raise CondenseDeployError(f"{path}: a checkpoint of model {model!r}, not a CondenseNet")
        training = any(k in raw for k in ("epoch", "optimizer", "best_prec1"))
        kind = "original-training" if training else "container"
        return _tensors_only(state, path), kind
    return _tensors_only(raw, path), "state-dict"


def _tensors_only(state: dict[Any, Any], path: Path) -> dict[str, torch.Tensor]:
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CondenseDeployError(
            f"{path}: not a state dict ({len(bad)} of {len(state)} entries are not named tensors, "
            f"e.g. {str(bad[0])[:60]!r})"
        )
    if not state:
        raise CondenseDeployError(f"{path}: the state dict is empty")
    return dict(state)


MODULE_PREFIX = "module."  # what DataParallel / DistributedDataParallel put before every key


def strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel's ``module.`` wherever it starts a key (``module.x`` -> ``x``)."""
    return {k[len(MODULE_PREFIX):] if k.startswith(MODULE_PREFIX) else k: v for k, v in state.items()}


def add_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original DataParallel key names (detached CPU copies)."""
    return {f"{MODULE_PREFIX}{k}": v.detach().cpu().clone() for k, v in state.items()}


# pytorchcv's converted CondenseNet-74 (imgclsmob): same tensors, other names.
_PYTORCHCV_RULES = [
    (re.compile(r"^features\.init_block\.conv\.weight$"), "features.init_conv.weight"),
    (re.compile(r"^features\.stage(\d+)\.unit(\d+)\.conv1\.bn\.(.+)$"),
     r"features.denseblock_\1.denselayer_\2.conv_1.norm.\3"),
    (re.compile(r"^features\.stage(\d+)\.unit(\d+)\.conv1\.(conv\.weight|index)$"),
     r"features.denseblock_\1.denselayer_\2.conv_1.\3"),
    (re.compile(r"^features\.stage(\d+)\.unit(\d+)\.conv2\.bn\.(.+)$"),
     r"features.denseblock_\1.denselayer_\2.conv_2.norm.\3"),
    (re.compile(r"^features\.stage(\d+)\.unit(\d+)\.conv2\.conv\.weight$"),
     r"features.denseblock_\1.denselayer_\2.conv_2.conv.weight"),
    (re.compile(r"^features\.post_activ\.bn\.(.+)$"), r"features.norm_last.\1"),
    (re.compile(r"^output\.(index|linear\.weight|linear\.bias)$"), r"classifier.\1"),
]


def _is_pytorchcv(state: dict[str, torch.Tensor]) -> bool:
    return "features.init_block.conv.weight" in state


def _map_pytorchcv(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in _PYTORCHCV_RULES:
            if pattern.match(key):
                mapped[pattern.sub(replacement, key)] = value
                break
        else:
            raise CondenseDeployError(f"{path}: unexpected key {key!r} in a pytorchcv CondenseNet state dict")
    return mapped


def _family(state: dict[str, torch.Tensor], path: Path) -> str:
    has_blocks = any(k.startswith("features.denseblock_") for k in state)
    if "features.init_conv.weight" not in state or not has_blocks:
        first = ", ".join(list(state)[:3])
        raise CondenseDeployError(
            f"{path}: not a CondenseNet state dict (no features.init_conv.weight / features.denseblock_*; "
            f"first keys: {first})"
        )
    if any(k.endswith("conv_1._mask") or k.endswith("conv_1.index") for k in state):
        return "condensenet"
    if any(k.startswith("features.transition_") and k.endswith(".conv.weight") for k in state):
        return "densenet"
    raise CondenseDeployError(
        f"{path}: not a CondenseNet state dict (its 1x1 layers have neither _mask nor index buffers)"
    )


# ---------------------------------------------------------------------------------------- inference


def _layer_counts(state: dict[str, torch.Tensor]) -> list[int]:
    layers: dict[int, int] = {}
    for key in state:
        match = re.match(r"features\.denseblock_(\d+)\.denselayer_(\d+)\.", key)
        if match:
            block, layer = int(match.group(1)), int(match.group(2))
            layers[block] = max(layers.get(block, 0), layer)
    blocks = sorted(layers)
    if blocks != list(range(1, len(blocks) + 1)):
        raise CondenseDeployError(f"dense blocks {blocks} are not numbered 1..{len(blocks)}")
    return [layers[b] for b in blocks]


def _shape(state: dict[str, torch.Tensor], key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise CondenseDeployError(f"{where}: missing key {key}")
    return tuple(state[key].shape)


def infer_config(state: dict[str, torch.Tensor], where: str = "state dict") -> CondenseNetConfig:
    """The CondenseNet architecture that the tensor shapes of ``state`` (our key names) imply."""
    try:
        stages = _layer_counts(state)
    except CondenseDeployError as e:
        raise CondenseDeployError(f"{where}: {e}") from e
    kind = {3: "cifar", 5: "imagenet"}.get(len(stages))
    if kind is None:
        raise CondenseDeployError(
            f"{where}: {len(stages)} dense blocks; cannot tell CIFAR (3) from ImageNet (5), pass --arch"
        )
    converted = any(k.endswith(".index") for k in state)
    growth: list[int] = []
    bottlenecks: set[int] = set()
    groups_3x3: set[int] = set()
    for b in range(1, len(stages) + 1):
        prefix = f"features.denseblock_{b}.denselayer_1.conv_2."
        out, per_group = _shape(state, prefix + "conv.weight", where)[:2]
        mid = _shape(state, prefix + "norm.weight", where)[0]
        if mid % out or mid % per_group:
            raise CondenseDeployError(f"{where}: {prefix}conv.weight shape does not fit a dense layer")
        growth.append(out)
        bottlenecks.add(mid // out)
        groups_3x3.add(mid // per_group)
    if len(bottlenecks) != 1 or len(groups_3x3) != 1:
        raise CondenseDeployError(
            f"{where}: bottleneck {sorted(bottlenecks)} / 3x3 groups {sorted(groups_3x3)} differ "
            f"between blocks"
        )
    stem = _shape(state, "features.init_conv.weight", where)[0]
    if stem != 2 * growth[0]:
        raise CondenseDeployError(
            f"{where}: features.init_conv.weight has {stem} outputs, a CondenseNet has 2 x growth "
            f"{growth[0]} = {2 * growth[0]}"
        )
    classifier = "classifier.linear.weight" if "classifier.linear.weight" in state else "classifier.weight"
    num_classes = _shape(state, classifier, where)[0]
    if converted:
        group_1x1, condense = _converted_groups(state, stages, growth, where)
    else:
        group_1x1, condense = _training_groups(state, stages, growth, where)
    return CondenseNetConfig(
        stages=stages, growth=growth, bottleneck=bottlenecks.pop(), group_1x1=group_1x1,
        group_3x3=groups_3x3.pop(), condense_factor=condense, num_classes=num_classes, kind=kind,
    )


def _layer_inputs(stages: list[int], growth: list[int]):
    channels = 2 * growth[0]
    for b, (n, k) in enumerate(zip(stages, growth, strict=True), start=1):
        for j in range(1, n + 1):
            yield f"features.denseblock_{b}.denselayer_{j}.conv_1.", channels + (j - 1) * k
        channels += n * k


def _converted_groups(state, stages, growth, where) -> tuple[int, int]:
    """G1 from the grouped conv's in-channels per group; C from how many inputs the index keeps."""
    found: set[tuple[int, int]] = set()
    for prefix, in_channels in _layer_inputs(stages, growth):
        kept = _shape(state, prefix + "index", where)[0]
        per_group = _shape(state, prefix + "conv.weight", where)[1]
        if kept % per_group or (in_channels * (kept // per_group)) % kept:
            raise CondenseDeployError(f"{where}: {prefix}conv.weight does not fit {in_channels} inputs")
        groups = kept // per_group
        found.add((groups, in_channels * groups // kept))
    if len(found) != 1:
        raise CondenseDeployError(
            f"{where}: layers disagree on (group_1x1, condense_factor): {sorted(found)}"
        )
    return found.pop()


def _training_groups(state, stages, growth, where) -> tuple[int, int]:
    """G1 from the period of the mask rows (outputs o and o+G share inputs); C from ``_count``/``_stage``.

    A checkpoint that has not started condensing (stage 0, all-ones masks) carries neither; the caller
    then needs ``--arch``.
    """
    periods: list[int] = []
    factors: set[int] = set()
    for prefix, in_channels in _layer_inputs(stages, growth):
        mask = state.get(prefix + "_mask")
        if mask is None:
            raise CondenseDeployError(f"{where}: missing key {prefix}_mask")
        stage = int(state[prefix + "_stage"].reshape(-1)[0]) if prefix + "_stage" in state else 0
        count = int(state[prefix + "_count"].reshape(-1)[0]) if prefix + "_count" in state else 0
        if stage > 0 and count > 0:
            if (stage * in_channels) % count:
                raise CondenseDeployError(
                    f"{where}: {prefix}_count {count} at stage {stage} does not fit {in_channels} inputs"
                )
            factors.add(stage * in_channels // count)
        rows = mask.reshape(mask.shape[0], -1)
        if not torch.all(rows == 1):
            periods.append(_row_period(rows))
    if len(factors) > 1:
        raise CondenseDeployError(f"{where}: layers disagree on the condense factor: {sorted(factors)}")
    if not factors or not periods:
        raise CondenseDeployError(
            f"{where}: a training checkpoint that has not started condensing does not show group_1x1 "
            f"and condense_factor; pass --arch NAME"
        )
    groups = math.lcm(*periods)
    return groups, factors.pop()


def _row_period(rows: torch.Tensor) -> int:
    """The smallest p with row o == row o+p for all o (p divides the row count)."""
    n = rows.shape[0]
    for p in range(1, n + 1):
        if n % p == 0 and torch.equal(rows, rows[:p].repeat(n // p, 1)):
            return p
    return n


def _match_card(config: CondenseNetConfig) -> str | None:
    """The zoo name whose architecture numbers equal ``config`` (the class count may differ)."""
    for name in list_models(family="condensenet"):
        card_config = CondenseNetConfig.from_card(get_card(name), num_classes=config.num_classes)
        fields = ("stages", "growth", "bottleneck", "group_1x1", "group_3x3", "condense_factor", "kind")
        if all(getattr(card_config, f) == getattr(config, f) for f in fields):
            return name
    return None


def _preprocessing(name: str | None, config: Any) -> tuple[list[float], list[float], tuple[int, int, int]]:
    if name is not None:
        card = get_card(name)
        size = card["input_size"]
        return list(card["mean"]), list(card["std"]), (int(size[0]), int(size[1]), int(size[2]))
    if config.kind == "cifar":
        return (*dataset_preprocessing("cifar10"), (3, 32, 32))
    return (*dataset_preprocessing("imagenet"), (3, 224, 224))


# ---------------------------------------------------------------------------------------- loading


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path, against: str) -> None:
    """Strict load, except that BN's ``num_batches_tracked`` may be absent (the 2017 files).

    A mismatch names the first differing key (in the model's order) and both shapes.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    for key, tensor in expected.items():
        if key in missing or (key in state and tuple(state[key].shape) != tuple(tensor.shape)):
            ours = list(state[key].shape) if key in state else "absent"
            counts = f" ({len(missing)} missing, {len(unexpected)} unexpected keys)" if missing else ""
            raise CondenseDeployError(
                f"{path}: does not match {against}: first differing key {key}: {ours} in the checkpoint, "
                f"{list(tensor.shape)} in the model{counts}"
            )
    if unexpected:
        key = unexpected[0]
        raise CondenseDeployError(
            f"{path}: does not match {against}: {len(unexpected)} unexpected key(s), first {key} "
            f"({list(state[key].shape)} in the checkpoint, absent from the model)"
        )
    fixed = {k: v.to(expected[k].dtype) for k, v in state.items()}
    for key in expected:
        if key not in fixed:  # absent num_batches_tracked: keep the fresh zero
            fixed[key] = expected[key]
    model.load_state_dict(fixed, strict=True)


def _check_condensing_buffers(model: nn.Module, path: Path, arch: str | None) -> None:
    """With --arch the training shapes cannot show C; ``_count``/``_stage`` must agree with it."""
    from .architectures.layers import LearnedGroupConv

    against = f"--arch {arch}" if arch else "the inferred architecture"
    for name, layer in model.named_modules():
        if isinstance(layer, LearnedGroupConv):
            if layer.stage > layer.final_stage or layer.stage < 0:
                raise CondenseDeployError(
                    f"{path}: does not match {against}: {name}._stage is {layer.stage}, but condense "
                    f"factor {layer.condense_factor} allows 0..{layer.final_stage}"
                )
            expected = layer.stage * (layer.in_channels // layer.condense_factor)
            if layer.count != expected:
                raise CondenseDeployError(
                    f"{path}: does not match {against}: {name}._count is {layer.count} at stage "
                    f"{layer.stage}, condense factor {layer.condense_factor} gives {expected}"
                )


def _load_densenet(state, path: Path, container: str, arch: str | None, num_classes: int | None):
    """DenseNet-BC state dicts (the original repository trains those too), by zoo name or the one card."""
    from .architectures.densenet import DenseNet

    if container == "container":
        container = "state-dict"
    names = [arch] if arch else list_models(family="densenet")
    errors = []
    for name in names:
        card = get_card(name)
        if card["family"] != "densenet":
            raise CondenseDeployError(f"{path}: holds a DenseNet, but --arch {name} is a {card['family']}")
        classes = num_classes if num_classes is not None else state["classifier.weight"].shape[0]
        config = DenseNetConfig.from_card(card, num_classes=classes)
        model = DenseNet(config)
        try:
            _load_state(model, state, path, f"--arch {name}" if arch else f"zoo model {name}")
        except CondenseDeployError as e:
            errors.append(str(e))
            continue
        size = card["input_size"]
        return LoadedModel(model.eval(), name, "densenet", "plain", config, container, _sha256(path),
                           (int(size[0]), int(size[1]), int(size[2])), list(card["mean"]), list(card["std"]))
    raise CondenseDeployError(errors[0] if len(errors) == 1 else
                              f"{path}: a DenseNet state dict that matches no zoo DenseNet")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- saving


def _class_names(raw: Any, num_classes: int) -> list[str] | None:
    """The ``classes`` list a checkpoint from ``train`` carries, when it is one name per class."""
    names = raw.get("classes") if isinstance(raw, dict) else None
    if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def save_converted(model: nn.Module, path: str | os.PathLike[str], force: bool = False,
                   deploy: dict[str, Any] | None = None, classes: list[str] | None = None) -> None:
    """Write ``{'state_dict': ...}`` as the 2017 converted files are: ``module.``-prefixed keys, no
    ``num_batches_tracked``, legacy serialization, so the original code's ``--evaluate-from`` (and
    every torch since 0.4) loads it. Atomic: an existing file survives a failed write.

    ``deploy`` (plain values: how the classifier was deployed, the errors measured) is stored under
    a ``deploy`` key the original code ignores. A full classifier (``classifier.weight`` instead of
    ``classifier.index`` / ``classifier.linear.*``) is our format: the original cannot load it.
    ``classes`` (the data set's class names) is stored beside the state dict, where export finds it.
    """
    target = check_writable(path, force)
    if not getattr(model, "converted", False):
        raise CondenseDeployError(f"{target}: save_converted needs a converted CondenseNet")
    state = OrderedDict(
        ("module." + key, value.detach().clone())
        for key, value in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    )
    content: dict[str, Any] = {"state_dict": state}
    if deploy:
        content["deploy"] = dict(deploy)
    if classes:
        content["classes"] = list(classes)
    with atomic_path(target, overwrite=force) as tmp:
        torch.save(content, tmp, _use_new_zipfile_serialization=False)

