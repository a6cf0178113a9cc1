"""What deploying costs, measured on data: validation error of the trained and the converted model side
by side, the warning when the gap is large, and the fine-tuning of a half classifier after conversion.

The original converter keeps half of the classifier's inputs. On ImageNet CondenseNet-74 that costs
little, but on a small model it can cost many points of top-1 error; these helpers make that visible
and give ``--classifier finetune`` its retraining step.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .._fsutil import check_writable
from ..architectures.condensenet import CondenseNet
from ..architectures.layers import CondenseLinear
from ..checkpoint import save_converted
from ..errors import CondenseDeployError
from .data import TrainData, open_dataset
from .gap import CONVERT_REMEDY, DeployGap

if TYPE_CHECKING:
    from ..pipeline import ConvertResult

__all__ = [
    "convert_on_data",
    "finetune_classifier",
    "topk_correct",
    "val_errors",
]

def topk_correct(logits: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
    """Samples whose label is the top-1 / among the top-5 (top-k capped by the class count)."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, 1).indices
    hits = top.eq(target.view(-1, 1))
    return int(hits[:, :1].sum()), int(hits.sum())


def _batches(data: TrainData, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return data.val_batches(batch_size)


@torch.no_grad()
def val_errors(models: list[nn.Module], data: TrainData, batch_size: int = 64,
               device: str = "cpu") -> list[tuple[float, float]]:
    """Top-1/top-5 validation error (percent) of each model, all on the same batches (read once)."""
    for model in models:
        model.eval()
    hits = [[0, 0] for _ in models]
    seen = 0
    for x, y in _batches(data, batch_size):
        x, y = x.to(device), y.to(device)
        for counts, model in zip(hits, models, strict=True):
            top1, top5 = topk_correct(model(x), y)
            counts[0] += top1
            counts[1] += top5
        seen += len(y)
    if not seen:
        raise CondenseDeployError("the validation split is empty")
    return [(100 * (1 - c1 / seen), 100 * (1 - c5 / seen)) for c1, c5 in hits]


def finetune_classifier(
    converted: CondenseNet, data: TrainData, epochs: int = 30, batch_size: int = 64, lr: float = 0.01,
    weight_decay: float = 1e-4, seed: int = 0, device: str = "cpu",
) -> CondenseNet:
    """A copy of ``converted`` whose kept classifier is retrained on the training split; the rest frozen.

    The features of one augmented pass over the training split are computed once (eval mode, so BN
    uses its running statistics as deployed), then the classifier's weight and bias (starting from
    the converted ones) take ``epochs`` epochs of SGD Nesterov with a cosine learning rate. One
    forward pass over the training set is the whole cost beyond a linear model's training.
    """
    model = copy.deepcopy(converted).to(device).eval()
    head = model.classifier
    linear = head.linear if isinstance(head, CondenseLinear) else cast(nn.Linear, head)
    features, labels = [], []
    with torch.no_grad():
        for x, y in data.epoch_batches(0, batch_size, seed):
            kept = torch.flatten(model.features(x.to(device)), 1)
            if isinstance(head, CondenseLinear):
                kept = torch.index_select(kept, 1, head.index)
            features.append(kept)
            labels.append(y.to(device))
    if not features:
        raise CondenseDeployError("fine-tuning the classifier: the training split is empty")
    inputs, targets = torch.cat(features), torch.cat(labels)
    optimizer = torch.optim.SGD(linear.parameters(), lr, momentum=0.9, weight_decay=weight_decay,
                                nesterov=True)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(targets) / batch_size)
    total = epochs * steps_per_epoch
    with torch.enable_grad():
        for epoch in range(epochs):
            order = torch.randperm(len(targets), generator=generator).to(device)
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
                index = order[i * batch_size:(i + 1) * batch_size]
                loss = criterion(linear(inputs[index]), targets[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return model.cpu().eval()


def convert_on_data(
    source: str | os.PathLike[str], output: str | os.PathLike[str], data: str,
    data_dir: str | os.PathLike[str], arch: str | None = None, trust_checkpoint: bool = False,
    force: bool = False, classifier: str | None = None,
    batch_size: int = 64, workers: int = 2, seed: int = 0,
) -> ConvertResult:
    """``convert --data``: convert as ``pipeline.convert_checkpoint`` does (``finetune`` retrains the kept
    classifier on the training split), then measure the trained and the converted model on the
    validation split; the result carries both errors and the warning when deploying costs more than
    ``WARN_POINTS``."""
    from ..pipeline import ConvertResult, classifier_form, convert_checked, load_for_conversion

    check_writable(output, force)
    loaded, mode = load_for_conversion(source, arch, trust_checkpoint, classifier)
    model = cast(CondenseNet, loaded.model)
    dataset = open_dataset(data, Path(data_dir), workers, image_size=loaded.input_size[-1],
                           train=mode == "finetune")
    if dataset.num_classes != model.cfg.num_classes:
        raise CondenseDeployError(f"{data_dir}: {dataset.num_classes} classes, but {source} has "
                                  f"{model.cfg.num_classes}")
    done = convert_checked(model, loaded.input_size, classifier_form(mode))
    deployed = done.model
    if mode == "finetune":
        deployed = finetune_classifier(deployed, dataset, batch_size=batch_size, seed=seed)
    (t1, t5), (d1, d5) = val_errors([model, deployed], dataset, batch_size)
    gap = DeployGap(data, t1, t5, d1, d5)
    record = {"classifier": mode, "data": data, "trained_err1": round(t1, 4), "deployed_err1": round(d1, 4)}
    save_converted(deployed, output, force=force, deploy=record, classes=loaded.classes)
    return ConvertResult(str(source), str(output), loaded.name, done.max_abs_diff, done.flops, done.params,
                         mode, done.classifier, gap, gap.warning(CONVERT_REMEDY))
