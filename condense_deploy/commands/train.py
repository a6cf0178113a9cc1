"""``condense-deploy train`` and ``condense-deploy eval``: thin over ``condense_deploy.train``."""

from __future__ import annotations

from pathlib import Path

import click

from ..architectures.config import CLASSIFIER_MODES
from ..errors import CondenseDeployError
from .options import FiniteFloat, arch_int, arch_list_option, arch_option, count, trust_option
from .progress import ProgressBar, ProgressBars

_DATA = click.option("--data", type=click.Choice(["cifar10", "cifar100", "imagefolder"]), default=None,
                     help="Data set (default: the --arch card's, or the checkpoint's).")
_DATA_DIR = click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=True),
                         help="Folder holding cifar-10-python.tar.gz / cifar-10-batches-py/ (CIFAR-100 "
                              "likewise) or train/ and val/ class folders.")
_DEVICE = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
_WORKERS = click.option("-j", "--workers", type=count(0, 256), default=2, show_default=True,
                        help="Image decoding processes (ImageFolder).")


@click.command("train")
@_DATA
@_DATA_DIR
@click.option("--savedir", required=True, type=click.Path(file_okay=False),
              help="Output folder: save_models/, train.log, curves.png.")
@click.option("--arch", default=None, help="Zoo name (default: condensenet86_cifar / condensenet74_c4g4).")
@arch_list_option("--stages", help="Dense layers per block, e.g. 14-14-14.")
@arch_list_option("--growth", help="Growth rate per block, e.g. 8-16-32.")
@click.option("--bottleneck", type=arch_int("bottleneck"), default=None, help="Bottleneck width factor (4).")
@click.option("--group-1x1", type=arch_int("group_1x1"), default=None,
              help="Groups of the learned 1x1 convs (4).")
@click.option("--group-3x3", type=arch_int("group_3x3"), default=None, help="Groups of the 3x3 convs (4).")
@click.option("--condense-factor", type=arch_int("condense_factor"), default=None,
              help="C: each group keeps 1/C of its inputs (4).")
@click.option("--dropout-rate", type=FiniteFloat(0.0, 0.99), default=None,
              help="Dropout before the 1x1 convs (0).")
@click.option("--epochs", type=count(1, 100_000), default=None, help="Default 300 (CIFAR) / 120 (ImageNet).")
@click.option("-b", "--batch-size", type=count(1, 1_000_000), default=None,
              help="Global batch, split over processes. Default 64 (CIFAR) / 256 (ImageNet).")
@click.option("--lr", type=FiniteFloat(0.0, 100.0, min_open=True), default=None,
              help="Initial learning rate (0.1).")
@click.option("--lr-type", type=click.Choice(["cosine", "multistep"]), default=None,
              help="cosine per iteration (default) or multistep.")
@click.option("--momentum", type=FiniteFloat(0.0, 0.999), default=None, help="SGD Nesterov momentum (0.9).")
@click.option("--weight-decay", type=FiniteFloat(0.0, 1.0), default=None, help="Weight decay (1e-4).")
@click.option("--group-lasso-lambda", type=FiniteFloat(0.0, 1.0), default=None,
              help="Default 0 (CIFAR) / 1e-5 (ImageNet).")
@click.option("--seed", type=count(0, 2**32 - 1), default=None,
              help="Seed of weights, data order and augmentation (0).")
@click.option("--classifier", type=click.Choice(CLASSIFIER_MODES), default=None,
              help="How the classifier is deployed: full (every input kept: the converted model is the "
                   "trained one; the default), condense (half its inputs masked from the last condensing "
                   "stage on, so training adapts; the original converted format), half (the original: half "
                   "dropped at conversion, unadapted), finetune (half dropped, then the kept classifier "
                   "retrained briefly).")
@_DEVICE
@_WORKERS
@click.option("--resume", is_flag=True, help="Continue the run in --savedir from its latest checkpoint.")
@click.option("--force", is_flag=True, help="Start over in a --savedir that already holds a run.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_command(
    data: str | None, data_dir: str, savedir: str, arch: str | None, stages: list[int] | None,
    growth: list[int] | None, bottleneck: int | None, group_1x1: int | None, group_3x3: int | None,
    condense_factor: int | None, dropout_rate: float | None, epochs: int | None, batch_size: int | None,
    lr: float | None, lr_type: str | None, momentum: float | None, weight_decay: float | None,
    group_lasso_lambda: float | None, seed: int | None, classifier: str | None, device: str, workers: int,
    resume: bool, force: bool, no_progress: bool,
) -> None:
    """Train a CondenseNet from scratch, with condensing, checkpoints and conversion at the end.

    Multi-process: torchrun --nproc_per_node=N -m condense_deploy.train [same options].
    """
    from ..train.loop import TrainOptions, train

    overrides = {"stages": stages, "growth": growth, "bottleneck": bottleneck, "group_1x1": group_1x1,
                 "group_3x3": group_3x3, "condense_factor": condense_factor, "dropout_rate": dropout_rate}
    options = TrainOptions(
        savedir=savedir, data=data, data_dir=data_dir, arch=arch, model_overrides=overrides, epochs=epochs,
        batch_size=batch_size, lr=lr, lr_type=lr_type, momentum=momentum, weight_decay=weight_decay,
        group_lasso_lambda=group_lasso_lambda, seed=seed, device=device, workers=workers, resume=resume,
        force=force, show_progress=not no_progress, classifier=classifier,
    )
    bars = ProgressBars(show_eta=True)
    try:
        result = train(options, log=click.echo, progress=bars)
    finally:
        bars.close()
    if result.rank != 0:
        return
    if result.converted_path is None or result.flops is None or result.params is None:
        click.echo(f"best: epoch {result.best_epoch + 1}, val err {result.best_err1:.2f}; not converted")
    else:
        click.echo(f"best: epoch {result.best_epoch + 1}, val err {result.best_err1:.2f} / "
                   f"{result.best_err5:.2f}; converted: {result.converted_path} (--classifier "
                   f"{result.classifier}: val err trained {result.converted_trained_err1:.2f} -> deployed "
                   f"{result.converted_err1:.2f} / {result.converted_err5:.2f}, {result.flops / 1e6:.2f}M "
                   f"FLOPs, {result.params / 1e6:.3f}M params)")


@click.command("eval")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_DATA
@_DATA_DIR
@click.option("-b", "--batch-size", type=count(1, 1_000_000), default=64, show_default=True,
              help="Images per forward pass (memory, not results).")
@arch_option
@trust_option
@_DEVICE
@_WORKERS
def eval_command(source: str, data: str | None, data_dir: str, batch_size: int, arch: str | None,
                 trust_checkpoint: bool, device: str, workers: int) -> None:
    """Top-1/top-5 validation error of SOURCE: a checkpoint (PyTorch) or an .onnx file (onnxruntime)."""
    from ..train.evaluate import evaluate
    from ..train.gap import CONVERT_REMEDY, DeployGap

    if device == "cuda" and source.lower().endswith(".onnx"):
        raise CondenseDeployError(
            f"{source}: .onnx files are evaluated with onnxruntime on the CPU; drop --device")
    bar = ProgressBar(f"eval {Path(source).name}")
    try:
        r = evaluate(source, data, data_dir, batch_size=batch_size, arch=arch,
                     trust_checkpoint=trust_checkpoint, device=device, workers=workers, progress=bar.counts)
    finally:
        bar.close()
    # the figures line stays the last one: scripts read it
    if r.deployed_top1_err is not None:
        gap = DeployGap(r.data, r.top1_err, r.top5_err, r.deployed_top1_err, r.deployed_top5_err or 0.0)
        click.echo(f"trained {gap.trained_err1:.2f} % -> deployed {gap.deployed_err1:.2f} % top-1 error "
                   f"(converted with --classifier {r.classifier}; top-5 {gap.trained_err5:.2f} -> "
                   f"{gap.deployed_err5:.2f} %)")
        warning = gap.warning(CONVERT_REMEDY)
        if warning:
            click.echo(warning, err=True)
    elif r.classifier == "finetune":
        click.echo("deployed: not measured (--classifier finetune retrains on the training data; evaluate "
                   "the converted file the trainer wrote)")
    if r.recorded:
        click.echo(f"recorded at conversion: trained {r.recorded['trained_err1']:.2f} % -> deployed "
                   f"{r.recorded.get('deployed_err1', float('nan')):.2f} % top-1 error on "
                   f"{r.recorded.get('data', '?')} (--classifier "
                   f"{r.recorded.get('classifier', r.recorded.get('mode', '?'))})")
    click.echo(f"{r.source} ({r.runtime}) on {r.data}: top-1 error {r.top1_err:.2f} %, top-5 error "
               f"{r.top5_err:.2f} % over {r.images} images ({r.seconds:.1f} s)")
