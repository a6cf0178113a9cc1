"""Learning-rate schedules of the original code, as pure functions of the position in training.

The rate is a function of (epoch, batch) alone, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "learning_rate", "progress"]

SCHEDULES = ("cosine", "multistep")


def progress(epoch: int, batch: int, batches: int, epochs: int) -> float:
    """Fraction of training done before this iteration; it drives condensing."""
    return (epoch * batches + batch) / (epochs * batches)


def learning_rate(
    kind: str, base_lr: float, epoch: int, batch: int, batches: int, epochs: int, imagenet: bool = False,
) -> float:
    """``cosine``: half a cosine over all iterations, updated every iteration.

    ``multistep``: CIFAR x0.1 at 50 % and 75 % of the epochs; ImageNet x0.1 every 30 epochs.
    """
    if kind == "cosine":
        t_cur = (epoch % epochs) * batches + batch
        return 0.5 * base_lr * (1 + math.cos(math.pi * t_cur / (epochs * batches)))
    if kind == "multistep":
        if imagenet:
            return base_lr * 0.1 ** (epoch // 30)
        if epoch >= epochs * 0.75:
            return base_lr * 0.01
        if epoch >= epochs * 0.5:
            return base_lr * 0.1
        return base_lr
    raise ValueError(f"unknown schedule {kind!r}; use one of {', '.join(SCHEDULES)}")
