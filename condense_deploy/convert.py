"""Training form -> converted (deployed) form, and the proof that both compute the same function.

The converted tensors are the ones the original ``utils.convert_model`` writes (``CondensingConv`` /
``CondensingLinear``): for group i the kept input channels in ascending order, ``weight[k + i*d_out,
slot] = W[i + k*G, j]``, BN statistics copied per slot; the classifier keeps the ``int(F/2)`` inputs of
largest column L1 norm, stored in ascending-importance order. Unlike the original, a model that has
not reached its final condensing stage is refused instead of converted wrongly.

That half-drop is not an equivalence: ``check_equivalence`` proves the learned group convs exact (it
compares with the training model restricted to the kept classifier inputs) and ``classifier_report``
says what the classifier choice changes: the inputs kept, the share of the classifier's weight mass
dropped and the largest logit change against the trained model. ``classifier="full"`` keeps every
input (a plain Linear), so the converted model computes the trained one.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from .architectures.condensenet import CondenseNet
from .architectures.config import CLASSIFIER_FORMS
from .architectures.layers import CondenseConv, CondenseLinear, LearnedGroupConv
from .errors import CondenseDeployError

__all__ = [
    "ATOL",
    "ClassifierReport",
    "check_equivalence",
    "classifier_keep_index",
    "classifier_report",
    "convert_model",
    "one_thread",
]

ATOL = 1e-5


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run many tiny tensor ops on one thread: on a busy 2-core machine, condensing and converting
    CondenseNet-74 took 15-19 s with 2 threads and 1.4-1.6 s with 1 (measured interleaved)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def convert_model(model: CondenseNet, classifier: str = "half") -> CondenseNet:
    """A new converted CondenseNet computing what ``model`` (training form, fully condensed) computes,
    with its classifier in ``classifier`` form: ``"half"`` (the original: the half of the inputs with
    the largest column L1 norm) or ``"full"`` (every input).

    ``model`` is left untouched. Raises when a layer has not finished condensing.
    """
    if not isinstance(model, CondenseNet):
        raise CondenseDeployError(f"convert: expected a CondenseNet, got {type(model).__name__}")
    if model.converted:
        raise CondenseDeployError("convert: the model is already in converted form")
    if classifier not in CLASSIFIER_FORMS:
        raise CondenseDeployError(f"convert: classifier must be one of {', '.join(CLASSIFIER_FORMS)}, "
                                  f"not {classifier!r}")
    with one_thread():
        return _convert(model, classifier)


def _convert(model: CondenseNet, classifier: str) -> CondenseNet:
    _check_condensed(model)
    converted = CondenseNet(copy.deepcopy(model.cfg), converted=True, classifier=classifier)
    source = dict(model.named_modules())
    owners: list[str] = []
    with torch.no_grad():
        for name, module in converted.named_modules():
            if any(name.startswith(owner) for owner in owners):
                continue  # inside a converted layer, filled with it
            old = source[name]
            if isinstance(module, CondenseConv):
                assert isinstance(old, LearnedGroupConv)
                _fill_condense_conv(module, old)
                owners.append(name + ".")
            elif isinstance(module, CondenseLinear):
                assert isinstance(old, nn.Linear)
                _fill_condense_linear(module, old)
                owners.append(name + ".")
            elif not list(module.children()):
                module.load_state_dict(old.state_dict())  # stem, 3x3 convs, final BN: unchanged
    return converted.train(model.training)


def _check_condensed(model: CondenseNet) -> None:
    """Every learned group conv must be at its final stage, keeping in/C inputs in every group."""
    for name, layer in model.named_modules():
        if not isinstance(layer, LearnedGroupConv):
            continue
        if layer.stage != layer.final_stage:
            raise CondenseDeployError(
                f"convert: {name} is at condensing stage {layer.stage} of {layer.final_stage} "
                f"(C={layer.condense_factor}); the model has not finished condensing"
            )
        mask = layer._mask[:, :, 0, 0]
        if not torch.all((mask == 0) | (mask == 1)):
            raise CondenseDeployError(f"convert: {name}._mask holds values other than 0 and 1")
        per_group = layer.in_channels // layer.condense_factor
        for group in range(layer.groups):
            rows = mask[group::layer.groups]
            kept = int(rows[0].sum())
            if kept != per_group or not torch.equal(rows, rows[:1].expand_as(rows)):
                raise CondenseDeployError(
                    f"convert: {name}._mask group {group} keeps {kept} inputs, expected {per_group} "
                    f"shared by all its outputs"
                )


def _fill_condense_conv(new: CondenseConv, old: LearnedGroupConv) -> None:
    groups = old.groups
    d_out = old.out_channels // groups
    per_group = new.in_channels // groups
    weight = old.conv.weight
    mask = old._mask[:, :, 0, 0]
    for i in range(groups):
        kept = torch.nonzero(mask[i] == 1).flatten()[:per_group]  # ascending, as the original loop
        slots = slice(i * per_group, (i + 1) * per_group)
        new.index[slots] = kept
        new.conv.weight[i * d_out:(i + 1) * d_out] = weight[i::groups][:, kept]
    index = new.index
    new.norm.weight.copy_(old.norm.weight[index])
    new.norm.bias.copy_(old.norm.bias[index])
    (src_mean, src_var, src_count), (mean, var, count) = _running_stats(old.norm), _running_stats(new.norm)
    mean.copy_(src_mean[index])
    var.copy_(src_var[index])
    count.copy_(src_count)


def _running_stats(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(running_mean, running_var, num_batches_tracked): always there in our layers' BatchNorm2d."""
    mean, var, count = bn.running_mean, bn.running_var, bn.num_batches_tracked
    if mean is None or var is None or count is None:
        raise CondenseDeployError("a BatchNorm2d without running statistics cannot be converted")
    return mean, var, count


def classifier_keep_index(weight: torch.Tensor, keep: float = 0.5) -> torch.Tensor:
    """The classifier inputs the original converter keeps: the ``int(F * keep)`` columns of ``weight``
    ([classes, F]) with the largest L1 norm, in ascending-importance order (stable sort on ties).

    The trainer's ``--classifier condense`` masks the complement of this set, so the converter then
    keeps exactly the inputs training adapted to.
    """
    features = weight.shape[1]
    order = torch.sort(weight.detach().abs().sum(0), stable=True).indices
    return order[features - int(features * keep):]  # largest last: ascending importance


def _fill_condense_linear(new: CondenseLinear, old: nn.Linear) -> None:
    index = classifier_keep_index(old.weight)  # int(F * 0.5), as CondenseLinear(F, ..., 0.5) holds
    new.index.copy_(index)
    new.linear.weight.copy_(old.weight[:, index])
    new.linear.bias.copy_(old.bias)


def check_equivalence(
    training_model: CondenseNet, converted_model: CondenseNet, input_size: tuple[int, int, int],
    batch: int = 2, seed: int = 0,
) -> float:
    """Max abs difference between the converted model and the masked training model whose classifier
    sees only the inputs the converted classifier kept (all of them for a full classifier); above
    ``ATOL`` it is an error. This proves the learned group convs' conversion exact; what the
    classifier choice changes is ``classifier_report``'s job.

    Both run in eval mode on copies, so neither model nor its mode changes.
    """
    x = _random_batch(input_size, batch, seed)
    reference = copy.deepcopy(training_model).eval()
    candidate = copy.deepcopy(converted_model).eval()
    with torch.no_grad():
        features = torch.flatten(reference.features(x), 1)
        classifier = cast(nn.Linear, reference.classifier)
        index = _kept_inputs(candidate)
        expected = nn.functional.linear(features[:, index], classifier.weight[:, index], classifier.bias)
        actual = candidate(x)
    if expected.shape != actual.shape:
        raise CondenseDeployError(
            f"equivalence: output shapes differ ({tuple(expected.shape)} vs {tuple(actual.shape)})"
        )
    diff = float((expected - actual).abs().max())
    if not diff <= ATOL:
        raise CondenseDeployError(
            f"equivalence: converted model differs from the training model: max abs diff {diff:.3e} > "
            f"atol {ATOL:.0e}"
        )
    return diff


def _random_batch(input_size: tuple[int, int, int], batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *input_size, generator=generator)


def _kept_inputs(converted: CondenseNet) -> torch.Tensor:
    """The classifier inputs the converted model uses, as an index into the features."""
    classifier = converted.classifier
    if isinstance(classifier, CondenseLinear):
        return classifier.index
    return torch.arange(cast(nn.Linear, classifier).in_features)


@dataclass
class ClassifierReport:
    """What the converted classifier keeps of the trained one, measured without data.

    ``dropped_weight`` is the share of the trained classifier's weight L1 mass on the dropped inputs
    (0 when training masked them: ``--classifier condense``); ``max_logit_diff`` the largest change of
    a logit against the trained model on the equivalence check's random batch.
    """

    form: str
    kept: int
    features: int
    dropped_weight: float
    max_logit_diff: float

    @property
    def exact(self) -> bool:
        return self.dropped_weight == 0.0

    def describe(self) -> str:
        share = 100 * self.kept / self.features
        text = f"kept {share:.0f} % of inputs ({self.kept} of {self.features})"
        if self.exact:
            return text + ("" if self.kept == self.features else "; the dropped ones had zero weight: exact")
        return (text + f"; dropped {100 * self.dropped_weight:.1f} % of its weight mass, logits moved up to "
                f"{self.max_logit_diff:.2e}")

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "kept": self.kept, "features": self.features,
                "dropped_weight": round(self.dropped_weight, 6)}


def classifier_report(
    training_model: CondenseNet, converted_model: CondenseNet, input_size: tuple[int, int, int],
    batch: int = 2, seed: int = 0,
) -> ClassifierReport:
    """How far the converted classifier is from the trained one (see ``ClassifierReport``)."""
    classifier = cast(nn.Linear, training_model.classifier)
    index = _kept_inputs(converted_model)
    with torch.no_grad():
        mass = classifier.weight.abs().sum(0)
        outside = torch.ones_like(mass, dtype=torch.bool)
        outside[index] = False
        total = float(mass.sum())
        dropped = 0.0 if total == 0 else float(mass[outside].sum()) / total
        x = _random_batch(input_size, batch, seed)
        trained = copy.deepcopy(training_model).eval()(x)
        deployed = copy.deepcopy(converted_model).eval()(x)
    diff = 0.0 if dropped == 0.0 else float((trained - deployed).abs().max())
    return ClassifierReport(converted_model.classifier_form, len(index), classifier.in_features, dropped,
                            diff)
