"""Train a CondenseNet from scratch: condensing, group lasso, checkpoints, resume, conversion at the end.

Condensing is driven by progress = (epoch * batches + i) / (epochs * batches), so every learned group
conv passes its C-1 pruning events by half of training. Learning rate, data order, augmentation and
dropout are functions of (seed, epoch, iteration), so a run resumed from the checkpoint of epoch e-1
redoes epoch e exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from .._fsutil import check_creatable, make_dirs
from ..architectures.condensenet import CondenseNet, learned_group_convs
from ..architectures.config import CLASSIFIER_MODES, CondenseNetConfig
from ..architectures.registry import get_card
from ..checkpoint import add_module, strip_module
from ..errors import CondenseDeployError, first_line
from . import distributed
from .checkpoints import CheckpointPaths, load_training_checkpoint, save_epoch
from .data import DATASETS, TrainData, open_dataset
from .deploy import finetune_classifier, topk_correct
from .schedule import SCHEDULES, learning_rate, progress

__all__ = ["DEFAULT_CLASSIFIER", "EpochStats", "TrainInterrupted", "TrainOptions", "TrainResult",
           "build_config", "topk_correct", "train"]

# How the classifier reaches its deployed form unless --classifier says otherwise (CLASSIFIER_MODES;
# docs/train.md has the figures it was chosen from).
DEFAULT_CLASSIFIER = "full"

# Options that must not change between an interrupted run and its resume (None = take the stored one).
_DEFAULT_ARCH = {"cifar10": "condensenet86_cifar", "cifar100": "condensenet86_cifar",
                 "imagefolder": "condensenet74_c4g4"}


# (label, done, total): how far the current epoch is
Progress = Callable[[str, int, int], None]


@dataclass
class TrainOptions:
    """What ``condense-deploy train`` passes; None means the data set's (or the checkpoint's) default."""

    savedir: str
    data: str | None = None
    data_dir: str = "data"
    arch: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_type: str | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    group_lasso_lambda: float | None = None
    seed: int | None = None
    device: str = "cpu"
    workers: int = 2
    threads: int | None = None  # intra-op threads per process; None: threads.resolve_threads decides
    resume: bool = False
    force: bool = False
    show_progress: bool = True
    classifier: str | None = None  # a CLASSIFIER_MODES name; None: DEFAULT_CLASSIFIER (or the run's)


@dataclass
class EpochStats:
    """One line of the log; errors are in percent."""

    epoch: int
    val_err1: float
    val_err5: float
    train_err1: float
    train_err5: float
    loss: float
    lr: float
    removed: int
    seconds: float
    condensed: bool = True  # every learned group conv at its final stage at the end of the epoch

    def line(self, epochs: int) -> str:
        return (f"epoch {self.epoch + 1:3d}/{epochs}  val err {self.val_err1:6.2f} / {self.val_err5:6.2f}  "
                f"train err {self.train_err1:6.2f} / {self.train_err5:6.2f}  loss {self.loss:.4f}  "
                f"lr {self.lr:.5f}  {self.seconds:.1f} s")


@dataclass
class TrainResult:
    """What a finished run produced."""

    savedir: str
    epochs: int
    best_epoch: int
    best_err1: float
    best_err5: float
    history: list[EpochStats]
    converted_path: str | None = None
    converted_epoch: int | None = None
    converted_err1: float | None = None
    converted_err5: float | None = None
    converted_max_diff: float | None = None
    converted_trained_err1: float | None = None  # the trained model's error at the converted epoch
    classifier: str | None = None
    flops: int | None = None
    params: int | None = None
    curves_path: str | None = None
    log_path: str | None = None
    rank: int = 0


def build_config(
    data: str, num_classes: int, arch: str | None, overrides: dict[str, Any],
) -> tuple[str | None, CondenseNetConfig]:
    """The architecture: a zoo card (or the data set's default CondenseNet), with explicit overrides."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    kind = "cifar" if data.startswith("cifar") else "imagenet"
    try:
        if "stages" in overrides and "growth" in overrides and arch is None:
            cfg = CondenseNetConfig(**overrides, num_classes=num_classes, kind=kind)
        else:
            arch = arch or _DEFAULT_ARCH[data]
            card = get_card(arch)
            if card["family"] != "condensenet":
                raise CondenseDeployError(
                    f"--arch {arch}: a {card['family']} model; the trainer trains CondenseNets only")
            cfg = CondenseNetConfig.from_card(card, num_classes=num_classes, **overrides)
        CondenseNet(cfg)  # validates divisibility before any work is done
    except (ValueError, TypeError) as e:
        raise CondenseDeployError(f"model: {e}") from e
    final = cfg.image_size // cfg.init_stride // 2 ** (len(cfg.stages) - 1)
    if final != cfg.pool_size:
        raise CondenseDeployError(
            f"model: {len(cfg.stages)} blocks leave a {final}x{final} map from {cfg.image_size}x"
            f"{cfg.image_size} input; a{'' if cfg.kind == 'cifar' else 'n'} {cfg.kind} CondenseNet needs "
            f"{3 if cfg.kind == 'cifar' else 5} blocks (final map {cfg.pool_size}x{cfg.pool_size})")
    if data.startswith("cifar") and cfg.kind != "cifar":
        raise CondenseDeployError(
            f"--arch {arch}: an ImageNet model (224x224) cannot train on {data} (32x32)")
    return arch, cfg


@dataclass
class RunOptions:
    """The options a run trains with, resolved from the command line, the checkpoint (on resume)
    and the data set's defaults; stored in every checkpoint as ``train_options`` (``to_dict``)."""

    data: str
    arch: str | None
    epochs: int
    batch_size: int
    lr: float
    lr_type: str
    momentum: float
    weight_decay: float
    group_lasso_lambda: float
    seed: int
    classifier: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RESUME_KEYS = tuple(f.name for f in dataclasses.fields(RunOptions))


def _resolve(
    options: TrainOptions, stored: dict[str, Any] | None, spec_defaults: dict[str, Any],
) -> RunOptions:
    """Given options, else the checkpoint's, else the defaults; a changed option on resume is an error."""
    resolved: dict[str, Any] = {}
    for key in _RESUME_KEYS:
        given = getattr(options, key)
        if stored is not None and key in stored:
            if given is not None and given != stored[key] and not (key == "arch" and stored[key] is None):
                raise CondenseDeployError(
                    f"--resume: the run in {options.savedir} used {key}={stored[key]!r}, not {given!r}; "
                    "give the same options or start over with --force")
            resolved[key] = stored[key]
        else:
            resolved[key] = given if given is not None else spec_defaults.get(key)
    return RunOptions(**resolved)


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what is on disk and how to go on (the CLI exits 130)."""


class _Run:
    """The state of one training run on one rank."""

    def __init__(self, options: TrainOptions, log: Callable[[str], None],
                 on_batch: Callable[[int, int], None] | None, progress: Progress | None = None) -> None:
        self.options = options
        self.echo = log
        self.on_batch = on_batch
        self.progress = progress
        self.paths = CheckpointPaths(options.savedir)
        self.dist = distributed.setup(options.device)
        self.threads = 1
        self.epoch: int | None = None  # the epoch being trained, for the message after Ctrl-C

    # ------------------------------------------------------------------------------------ setup
    def prepare(self) -> None:
        options, paths = self.options, self.paths
        stored_state: dict[str, Any] | None = None
        check_creatable(paths.savedir, "--savedir folder")  # before any work, creating nothing
        latest = paths.latest_checkpoint() if paths.models.is_dir() else None
        if options.resume:
            if latest is None:
                raise CondenseDeployError(
                    f"--resume: no checkpoint in {paths.models} (latest.txt is missing)")
            stored_state = load_training_checkpoint(latest)
            if "train_options" not in stored_state:
                raise CondenseDeployError(
                    f"{latest}: has no train_options; it was not written by this trainer")
        elif latest is not None and not options.force:
            raise CondenseDeployError(
                f"{paths.savedir}: already holds a run (epoch {latest.name}); continue it with --resume "
                "or start over with --force")
        elif latest is not None and self.dist.is_main:
            paths.clear_run()  # --force: the old run's files must not mix with the new one's
        elif self.dist.is_main:
            # a run killed before its first checkpoint left only its log (and plot): a new run starts
            # a new log instead of appending to the dead one's (nothing else is touched without --force)
            for leftover in (paths.log, paths.curves):
                leftover.unlink(missing_ok=True)
        self.dist.barrier()
        stored = stored_state["train_options"] if stored_state else None
        data_name = options.data or (stored or {}).get("data")
        if data_name is None:
            data_name = _data_of_arch(options.arch)
        if data_name not in DATASETS:
            raise CondenseDeployError(f"unknown data set {data_name!r}; use cifar10, cifar100 or imagefolder")
        spec = DATASETS[data_name]
        defaults = {"data": data_name, "arch": options.arch, "epochs": spec.epochs,
                    "batch_size": spec.batch_size, "lr": 0.1, "lr_type": "cosine", "momentum": 0.9,
                    "weight_decay": 1e-4,
                    "group_lasso_lambda": spec.group_lasso_lambda, "seed": 0,
                    # a run from before the choice existed trained (and converts) as the original
                    "classifier": DEFAULT_CLASSIFIER if stored is None or "classifier" in stored else "half"}
        if options.data is None:
            options = dataclasses.replace(options, data=data_name)
        self.cfg_opts = _resolve(options, stored, defaults)
        o = self.cfg_opts
        if o.classifier not in CLASSIFIER_MODES:
            raise CondenseDeployError(
                f"--classifier {o.classifier!r}: use one of {', '.join(CLASSIFIER_MODES)}")
        if o.lr_type not in SCHEDULES:
            raise CondenseDeployError(f"--lr-type {o.lr_type!r}: use one of {', '.join(SCHEDULES)}")
        if o.epochs < 1 or o.batch_size < 1:
            raise CondenseDeployError(
                f"--epochs {o.epochs} and --batch-size {o.batch_size} must be >= 1")
        if o.batch_size % self.dist.world:
            raise CondenseDeployError(
                f"--batch-size {o.batch_size} (the global batch) is not divisible by "
                f"{self.dist.world} processes")

        image_size = None
        if stored_state is not None:
            cfg = CondenseNetConfig(**stored_state["config"])
            if options.model_overrides and any(v is not None for v in options.model_overrides.values()):
                _, wanted = build_config(data_name, cfg.num_classes, o.arch, options.model_overrides)
                if wanted.to_dict() != cfg.to_dict():
                    raise CondenseDeployError(
                        f"--resume: the run in {options.savedir} trains another architecture; "
                        "give the same model options or start over with --force")
            image_size = cfg.image_size
        self.data: TrainData = open_dataset(data_name, options.data_dir, options.workers, image_size)
        if stored_state is None:
            self.arch, cfg = build_config(data_name, self.data.num_classes, o.arch,
                                          options.model_overrides)
            o.arch = self.arch
            if data_name == "imagefolder" and cfg.image_size != 224:
                self.data = open_dataset(data_name, options.data_dir, options.workers, cfg.image_size)
        else:
            self.arch = o.arch
        if cfg.num_classes != self.data.num_classes:
            raise CondenseDeployError(
                f"{options.data_dir}: {self.data.num_classes} classes, but the model has {cfg.num_classes}")
        self.cfg = cfg
        self.data_name = data_name

        torch.manual_seed(o.seed)
        self.model = CondenseNet(cfg).to(self.dist.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), o.lr, momentum=o.momentum,
                                         weight_decay=o.weight_decay, nesterov=True)
        self.start_epoch = 0
        self.best_err1, self.best_err5, self.best_epoch = math.inf, math.inf, -1
        self.history: list[EpochStats] = []
        if stored_state is not None:
            self._restore(stored_state, latest)
        if self.dist.world > 1:
            self.net: nn.Module = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.dist.local_rank] if self.dist.device.type == "cuda" else None)
        else:
            self.net = self.model
        self.batches = self.data.batches_per_epoch(o.batch_size, self.dist.world)
        self.classifier_dropped: torch.Tensor | None = None  # --classifier condense, from progress 0.5

    def _restore(self, state: dict[str, Any], path: Path | None) -> None:
        try:
            self.model.load_state_dict(strip_module(state["state_dict"]))
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CondenseDeployError(f"{path}: does not fit the model ({first_line(e)})") from e
        self.start_epoch = int(state["epoch"]) + 1
        if self.start_epoch >= self.cfg_opts.epochs and self.paths.converted.is_file():
            raise CondenseDeployError(
                f"--resume: the run in {self.paths.savedir} already finished its {self.cfg_opts.epochs} "
                f"epochs and wrote {self.paths.converted}; nothing to resume (start over with --force)")
        self.best_err1 = float(state.get("best_prec1", math.inf))
        self.best_err5 = float(state.get("best_prec5", math.inf))
        self.best_epoch = int(state.get("best_epoch", -1))
        self.history = [EpochStats(**row) for row in state.get("history", [])]
        self.log(f"resumed from {path}: epoch {self.start_epoch + 1}, condensing stages "
                 f"{sorted({m.stage for m in learned_group_convs(self.model)})}")

    # -------------------------------------------------------------------------------- logging
    def log(self, line: str) -> None:
        if not self.dist.is_main:
            return
        self.echo(line)
        make_dirs(self.paths.savedir, "--savedir folder")
        try:
            with open(self.paths.log, "a") as handle:
                handle.write(line + "\n")
        except OSError as e:
            raise CondenseDeployError(f"{self.paths.log}: cannot write ({e.strerror or e})") from e

    # ------------------------------------------------------------------------------- training
    def train_epoch(self, epoch: int) -> tuple[float, float, float, float, int]:
        o, model, data = self.cfg_opts, self.model, self.data
        self.net.train()
        torch.manual_seed(o.seed * 100_003 + epoch * 101 + self.dist.rank)  # dropout: seed+epoch only
        criterion = nn.CrossEntropyLoss()
        sums = [0.0, 0.0, 0.0, 0.0]  # loss*n, top1, top5, n
        first_lr, removed_total = None, 0
        batches = data.epoch_batches(epoch, o.batch_size, o.seed, self.dist.rank, self.dist.world)
        report = self.progress if self.options.show_progress and self.dist.is_main else None
        label = f"epoch {epoch + 1}/{o.epochs}"
        for i, (x, y) in enumerate(batches):
            p = progress(epoch, i, self.batches, o.epochs)
            lr = learning_rate(o.lr_type, o.lr, epoch, i, self.batches, o.epochs,
                               imagenet=self.cfg.kind == "imagenet")
            first_lr = lr if first_lr is None else first_lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            removed = model.condense(p)
            if removed:
                removed_total += removed
                self._pruning_event(epoch, i, p, removed)
            if o.classifier == "condense" and p >= 0.5 and self.classifier_dropped is None:
                self._condense_classifier(epoch, i, p)
            x, y = x.to(self.dist.device), y.to(self.dist.device)
            logits = self.net(x)
            loss = criterion(logits, y)
            if o.group_lasso_lambda > 0:
                loss = loss + o.group_lasso_lambda * model.lasso_loss()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._mask_classifier_grad()
            self.optimizer.step()
            top1, top5 = topk_correct(logits.detach(), y)
            sums[0] += float(loss.detach()) * len(y)
            sums[1] += top1
            sums[2] += top5
            sums[3] += len(y)
            if report is not None:
                report(label, i + 1, self.batches)
            if self.on_batch is not None:
                self.on_batch(epoch, i)
        loss_sum, hits1, hits5, n = self.dist.sum(sums)
        lr = float(first_lr or 0.0)
        return 100 * (1 - hits1 / n), 100 * (1 - hits5 / n), loss_sum / n, lr, removed_total

    @torch.no_grad()
    def _condense_classifier(self, epoch: int, i: int, p: float) -> None:
        """Mask the classifier inputs the converter will drop (``--classifier condense``): their weight
        columns and momentum become zero and stay zero (their gradient is masked), so the rest of
        training adapts and the converted model computes the trained one.

        On resume past this point the columns are already zero and the same rule finds the same set.
        """
        from ..convert import classifier_keep_index

        weight = cast(nn.Linear, self.model.classifier).weight
        keep = torch.zeros(weight.shape[1], dtype=torch.bool, device=weight.device)
        keep[classifier_keep_index(weight)] = True
        self.classifier_dropped = ~keep
        was_used = bool(weight[:, self.classifier_dropped].abs().sum() > 0)
        weight[:, self.classifier_dropped] = 0
        buffer = self.optimizer.state.get(weight, {}).get("momentum_buffer")
        if buffer is not None:
            buffer[:, self.classifier_dropped] = 0
        if was_used:
            self.log(f"condensing: epoch {epoch + 1} batch {i} (progress {p:.4f}) -> classifier keeps "
                     f"{int(keep.sum())} of {len(keep)} inputs")

    def _mask_classifier_grad(self) -> None:
        if self.classifier_dropped is None:
            return
        grad = cast(nn.Linear, self.model.classifier).weight.grad
        if grad is not None:
            grad[:, self.classifier_dropped] = 0

    def _pruning_event(self, epoch: int, i: int, p: float, removed: int) -> None:
        stages = sorted({m.stage for m in learned_group_convs(self.model)})
        agree = ""
        if self.dist.world > 1:
            self.dist.check_same(self.model, f"pruning at epoch {epoch + 1} batch {i}", only="_mask")
            agree = f"; masks identical on all {self.dist.world} ranks"
        self.log(f"condensing: epoch {epoch + 1} batch {i} (progress {p:.4f}) -> stage {stages}, "
                 f"{removed} connections removed{agree}")

    @torch.no_grad()
    def validate(self, model: nn.Module, shard: bool = True) -> tuple[float, float]:
        """Top-1/top-5 error in percent; ``shard`` splits the set over the ranks and sums the counts."""
        model.eval()
        sums = [0.0, 0.0, 0.0]
        rank, world = (self.dist.rank, self.dist.world) if shard else (0, 1)
        for x, y in self.data.val_batches(self.cfg_opts.batch_size, rank, world):
            top1, top5 = topk_correct(model(x.to(self.dist.device)), y.to(self.dist.device))
            sums[0] += top1
            sums[1] += top5
            sums[2] += len(y)
        hits1, hits5, n = self.dist.sum(sums) if shard else sums
        return 100 * (1 - hits1 / n), 100 * (1 - hits5 / n)

    def run_epochs(self) -> None:
        o = self.cfg_opts
        if self.start_epoch == 0:
            self.log(f"training {self.arch or 'CondenseNet'} {self.cfg.to_dict()} on {self.data_name} "
                     f"({self.data.train_size} train / {self.data.val_size} val images, {self.batches} "
                     f"batches of {o.batch_size} per epoch, {self.dist.world} process(es) of "
                     f"{self.threads} thread(s), {o.epochs} epochs)")
        for epoch in range(self.start_epoch, o.epochs):
            start = time.perf_counter()
            self.epoch = epoch
            train_err1, train_err5, loss, lr, removed = self.train_epoch(epoch)
            self.dist.broadcast_buffers(self.model)
            if self.dist.world > 1:
                self.dist.check_same(self.model, f"end of epoch {epoch + 1}")
            val_err1, val_err5 = self.validate(self.model)
            condensed = all(m.stage == m.final_stage for m in learned_group_convs(self.model))
            stats = EpochStats(epoch, val_err1, val_err5, train_err1, train_err5, loss, lr, removed,
                               time.perf_counter() - start, condensed)
            self.history.append(stats)
            is_best = val_err1 < self.best_err1
            if is_best:
                self.best_err1, self.best_err5, self.best_epoch = val_err1, val_err5, epoch
            if self.dist.is_main:
                save_epoch(self.paths, self._state(epoch), is_best)
            self.log(stats.line(o.epochs) + ("  *best" if is_best else ""))
            self.dist.barrier()

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": "condensenet",
            "state_dict": add_module(self.model.state_dict()),
            "best_prec1": self.best_err1,
            "optimizer": self.optimizer.state_dict(),
            # extra keys, ignored by the original code
            "best_prec5": self.best_err5,
            "best_epoch": self.best_epoch,
            "arch": self.arch or "",
            "config": self.cfg.to_dict(),
            "train_options": self.cfg_opts.to_dict(),
            "history": [dataclasses.asdict(h) for h in self.history],
            "classes": self.class_names(),
            "condense_deploy": "train",
        }

    def interrupted(self) -> TrainInterrupted:
        """What Ctrl-C leaves: the last complete checkpoint (latest.txt names it) and how to go on."""
        where = f"in epoch {self.epoch + 1}" if self.epoch is not None else "while converting the best epoch"
        try:
            latest = self.paths.latest_checkpoint() if self.paths.models.is_dir() else None
        except CondenseDeployError:
            latest = None
        if latest is None:
            return TrainInterrupted(
                f"interrupted {where}, before the first checkpoint: nothing to resume; run the same "
                "command again to start over")
        return TrainInterrupted(
            f"interrupted {where}; the last checkpoint is {latest}; continue with: condense-deploy train "
            f"--savedir {self.paths.savedir} --resume")

    def class_names(self) -> list[str] | None:
        """The data set's class names (ImageFolder folder names, the CIFAR lists): export writes them
        into the model's metadata, so `predict` names its classes."""
        from ..classnames import dataset_class_names

        folders = getattr(self.data, "classes", None)
        return list(folders) if folders else dataset_class_names(self.data.spec.name, self.data.num_classes)

    # -------------------------------------------------------------------------------- the end
    def finish(self) -> TrainResult:
        from .curves import plot_curves

        result = TrainResult(self.options.savedir, self.cfg_opts.epochs, self.best_epoch, self.best_err1,
                             self.best_err5, self.history, log_path=str(self.paths.log),
                             rank=self.dist.rank)
        if not self.dist.is_main:
            return result
        if self.history:
            plot_curves(self.history, self.paths.curves, title=self.arch or "CondenseNet")
            result.curves_path = str(self.paths.curves)
        self._convert_best(result)
        return result

    def _convert_best(self, result: TrainResult) -> None:
        from ..checkpoint import save_converted
        from ..pipeline import classifier_form, convert_checked
        from .gap import TRAIN_REMEDY, DeployGap

        source, epoch = self.paths.best, self.best_epoch
        condensed = [h for h in self.history if h.condensed]
        if not condensed:
            self.log("not converting: no epoch ended with every layer at its final condensing stage")
            return
        if not self.history[self.best_epoch].condensed:
            pick = min(condensed, key=lambda h: (h.val_err1, h.epoch))
            source, epoch = self.paths.epoch_file(pick.epoch), pick.epoch
            self.log(f"the best epoch {self.best_epoch + 1} ended before condensing finished; converting the "
                     f"best fully condensed epoch {epoch + 1} (val err {pick.val_err1:.2f})")
        model = CondenseNet(self.cfg)
        model.load_state_dict(strip_module(load_training_checkpoint(source)["state_dict"]))
        model.eval()
        size = (3, self.cfg.image_size, self.cfg.image_size)
        mode = self.cfg_opts.classifier
        conversion = convert_checked(model, size, classifier_form(mode))
        deployed = conversion.model
        if mode == "finetune":
            deployed = finetune_classifier(deployed, self.data, seed=self.cfg_opts.seed,
                                           device=str(self.dist.device))
        err1, err5 = self.validate(deployed.to(self.dist.device), shard=False)
        trained = self.history[epoch]
        gap = DeployGap(self.data_name, trained.val_err1, trained.val_err5, err1, err5)
        report = conversion.classifier
        record = {"classifier": mode, "data": self.data_name, "trained_err1": round(trained.val_err1, 4),
                  "deployed_err1": round(err1, 4)}
        save_converted(deployed.cpu(), self.paths.converted, force=True, deploy=record,
                       classes=self.class_names())
        result.converted_path, result.converted_epoch = str(self.paths.converted), epoch
        result.converted_err1, result.converted_err5 = err1, err5
        result.converted_trained_err1, result.classifier = trained.val_err1, mode
        result.converted_max_diff = float(conversion.max_abs_diff)
        result.flops, result.params = int(conversion.flops), int(conversion.params)
        how = {"finetune": ", then fine-tuned", "condense": ", masked in training"}.get(mode, "")
        self.log(f"converted epoch {epoch + 1} -> {self.paths.converted}: LGC conversion exact (max diff "
                 f"{conversion.max_abs_diff:.2e}); classifier: {report.describe()}{how}; {gap.describe()}; "
                 f"{conversion.flops / 1e6:.2f}M FLOPs, {conversion.params / 1e6:.3f}M params")
        warning = gap.warning(TRAIN_REMEDY)
        if warning:
            self.log(warning)


def _data_of_arch(arch: str | None) -> str:
    if arch is None:
        raise CondenseDeployError("give --data (cifar10, cifar100 or imagefolder) or --arch")
    dataset = get_card(arch)["dataset"]
    return dataset if dataset in DATASETS else "imagefolder"


def train(
    options: TrainOptions, log: Callable[[str], None] = lambda line: None,
    on_batch: Callable[[int, int], None] | None = None, progress: Progress | None = None,
) -> TrainResult:
    """Train (or resume) as ``options`` say; ``log`` receives each log line, ``on_batch(epoch, i)``
    runs after every optimizer step (tests use it to interrupt a run), ``progress(label, done,
    total)`` after every batch of an epoch when ``options.show_progress`` (on the main rank)."""
    from .threads import resolve_threads, set_threads

    previous = torch.get_num_threads()
    run = _Run(options, log, on_batch, progress)
    run.threads = resolve_threads(options.threads, run.dist.world)
    set_threads(run.threads)
    try:
        run.prepare()
        try:
            run.run_epochs()
            run.epoch = None
            return run.finish()
        except KeyboardInterrupt:
            if not run.dist.is_main:
                raise
            raise run.interrupted() from None
    finally:
        torch.set_num_threads(previous)
        run.dist.close()
