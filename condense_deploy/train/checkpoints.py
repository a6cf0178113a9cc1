"""Training checkpoints in the original repository's layout, written atomically.

``<savedir>/save_models/checkpoint_NNN.pth.tar`` holds ``epoch``, ``model``, ``state_dict`` (keys with
the ``module.`` prefix DataParallel gave them), ``best_prec1`` and ``optimizer``, so the original
``main.py --resume`` / ``--evaluate-from`` read it. Extra keys (ignored by the original code) carry what
an exact resume and the rest of the toolkit need: the architecture, the training options, the history
and the best epoch. Everything is tensors or plain Python values, so ``torch.load(weights_only=True)``
reads it.

``best_prec1`` holds the lowest validation top-1 *error* in percent seen so far: the original stores the
error under that name too (but keeps the highest, hence the wrong ``model_best``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from .._fsutil import atomic_path, make_dirs, write_text
from ..errors import CondenseDeployError, first_line

__all__ = ["CheckpointPaths", "load_training_checkpoint", "save_epoch"]


class CheckpointPaths:
    """Where a run's files live."""

    def __init__(self, savedir: str | os.PathLike[str]) -> None:
        self.savedir = Path(savedir)
        self.models = self.savedir / "save_models"
        self.latest = self.models / "latest.txt"
        self.best = self.models / "model_best.pth.tar"
        self.converted = self.models / "converted_model_best.pth.tar"
        self.log = self.savedir / "train.log"
        self.curves = self.savedir / "curves.png"

    def epoch_file(self, epoch: int) -> Path:
        return self.models / f"checkpoint_{epoch:03d}.pth.tar"

    def clear_run(self) -> None:
        """Remove a previous run's checkpoints, pointers, log and plot (for ``--force``)."""
        for path in [self.latest, self.best, self.converted, self.log, self.curves,
                     *self.models.glob("checkpoint_[0-9][0-9][0-9]*.pth.tar")]:
            path.unlink(missing_ok=True)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``latest.txt`` names (as the original writes it: the path it saved to)."""
        if not self.latest.is_file():
            return None
        text = self.latest.read_text().strip().splitlines()
        if not text:
            raise CondenseDeployError(f"{self.latest}: empty; remove it or start over with --force")
        named = Path(text[0].strip())
        for candidate in (named, self.models / named.name):
            if candidate.is_file():
                return candidate
        raise CondenseDeployError(f"{self.latest}: names {named}, which does not exist")


def save_epoch(paths: CheckpointPaths, state: dict[str, Any], is_best: bool) -> Path:
    """Write the epoch's checkpoint, then ``latest.txt``, then (if best) ``model_best.pth.tar``.

    Each file is replaced atomically, so a kill at any point leaves a loadable latest checkpoint.
    """
    make_dirs(paths.models)
    target = paths.epoch_file(int(state["epoch"]))
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    if is_best:
        with atomic_path(paths.best) as tmp:
            shutil.copyfile(target, tmp)
    write_text(paths.latest, str(target) + "\n")
    return target


def load_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint written by ``save_epoch`` (or the original code), read with weights_only=True."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle/zip/runtime errors for bad files
        raise CondenseDeployError(f"{path}: cannot load the checkpoint ({first_line(e)})") from e
    missing = [k for k in ("epoch", "state_dict", "optimizer") if k not in state]
    if missing:
        raise CondenseDeployError(f"{path}: not a training checkpoint (missing {', '.join(missing)})")
    return state
