"""The PNG of a run's curves: validation/training error and loss/learning rate per epoch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .._fsutil import atomic_path

__all__ = ["plot_curves"]


def plot_curves(history: Sequence[Any], path: str | os.PathLike[str], title: str = "") -> None:
    """Two panels from ``EpochStats`` rows; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h.epoch + 1 for h in history]
    fig, (ax_err, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for ax in (ax_err, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax_err.plot(epochs, [h.val_err1 for h in history], label="val top-1")
    ax_err.plot(epochs, [h.train_err1 for h in history], label="train top-1")
    ax_err.plot(epochs, [h.val_err5 for h in history], label="val top-5", linestyle="--")
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("error (%)")
    ax_err.legend()
    ax_err.grid(alpha=0.3)
    ax_loss.plot(epochs, [h.loss for h in history], color="tab:red", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_lr = ax_loss.twinx()
    ax_lr.plot(epochs, [h.lr for h in history], color="tab:gray", label="lr (epoch start)")
    ax_lr.set_ylabel("learning rate")
    lines = ax_loss.get_lines() + ax_lr.get_lines()  # one legend for both axes: loss and lr
    ax_loss.legend(lines, [line.get_label() for line in lines], loc="upper right")
    ax_loss.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
