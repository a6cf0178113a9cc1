"""``condense-deploy export`` and ``verify``: checkpoint or zoo name -> verified ONNX file.

torch is imported only when a command runs (through ``condense_deploy.export``), so listing the
commands on a board without torch stays possible.
"""

from __future__ import annotations

import json
from typing import Any

import click
import onnx

from ..graph.recipes import MODES
from .options import arch_option, check_precision, classes_option, precision_option, trust_option
from .progress import ProgressBar

_MAX_BATCH = 4096  # export.MAX_BATCH (kept here so listing commands does not import torch)

__all__ = ["export_command", "verify_command"]


class _BatchType(click.ParamType):
    """``dynamic`` or a whole number in 1..MAX_BATCH."""

    name = "dynamic|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | int:
        if isinstance(value, int) or value == "dynamic":
            return value
        try:
            size = int(value)
        except ValueError:
            size = 0
        if not 1 <= size <= _MAX_BATCH:
            self.fail(f"{value!r} is neither 'dynamic' nor a whole number in 1..{_MAX_BATCH}", param, ctx)
        return size


MIN_OPSET = 13  # export.SPEC.min_opset (a test holds them equal): this module imports no torch
# the range --help shows is the one export checks: up to the newest opset the installed onnx knows
OPSETS = click.IntRange(MIN_OPSET, onnx.defs.onnx_opset_version())


def _step(message: str) -> None:
    click.echo(f"  {message}...", err=True)


@click.command("export")
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The .onnx file to write.")
@arch_option
@click.option("--opset", type=OPSETS, default=None, metavar="N",
              help="ONNX opset version [default: the model card's; 17 for a model without a card].")
@click.option("--batch", type=_BatchType(), default="dynamic", show_default=True,
              help="A symbolic batch axis, or a fixed batch size.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Run onnxsim.")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript",
              show_default=True, help="torch.onnx exporter (dynamo needs onnxscript).")
@click.option("--optimize", type=click.Choice(MODES), default="fast", show_default=True,
              help="onnxruntime graph rewrites; tuned times candidates on this machine.")
@precision_option
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@trust_option
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(source: str, output: str, arch: str | None, opset: int | None, batch: str | int,
                   simplify: bool, exporter: str, optimize: str, precision: str, force: bool,
                   trust_checkpoint: bool, num_classes: int | None, as_json: bool) -> None:
    """Export SOURCE (a checkpoint or a zoo name) to a verified ONNX file.

    A training-form CondenseNet is converted first. The file is checked, simplified, optimized and
    compared with PyTorch in onnxruntime at batch 1 and 3; it is written only if the logits agree
    within the model card's atol (1e-4 for a model without a card).
    """
    from ..pipeline import export_source

    check_precision(precision, optimize)
    click.echo(f"exporting {source} -> {output}", err=True)
    tuning = ProgressBar("  tuning grouped convs").counts if optimize == "tuned" else None
    result = export_source(source, output, arch=arch, opset=opset, batch=batch, simplify=simplify,
                           exporter=exporter, optimize=optimize, force=force,
                           trust_checkpoint=trust_checkpoint, num_classes=num_classes, on_step=_step,
                           on_progress=tuning, precision=precision)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    batch_text = "dynamic batch" if result.batch == "dynamic" else f"batch {result.batch}"
    precision_text = f", precision {result.precision}" if result.precision != "fp32" else ""
    click.echo(f"wrote {result.path}: {result.size_bytes / 1e6:.2f} MB, {result.nodes} nodes, opset "
               f"{result.opset}, {batch_text}, optimize {result.optimize.get('mode')}{precision_text}")
    if result.fp16 is None:
        click.echo(f"max abs diff vs PyTorch: {_diffs(result.max_abs_diff)} (atol {result.atol:.0e})")
        return
    click.echo(f"max abs diff vs PyTorch, the same graph at fp32: {_diffs(result.max_abs_diff)} "
               f"(atol {result.atol:.0e})")
    from ..graph.fp16_check import describe_fp16

    click.echo(describe_fp16(result.fp16, "PyTorch"))


@click.command("verify")
@click.argument("onnx_file", metavar="FILE.onnx", type=click.Path(exists=True, dir_okay=False))
@click.argument("source")
@arch_option
@trust_option
@classes_option
def verify_command(onnx_file: str, source: str, arch: str | None, trust_checkpoint: bool,
                   num_classes: int | None) -> None:
    """Check that FILE.onnx computes what SOURCE (a checkpoint or zoo name) computes in PyTorch.

    Runs both on the same random input at batch 1 and 3 (or the file's fixed batch) and fails when
    the logits differ by more than the model card's atol (1e-4 for a model without a card).
    """
    from ..pipeline import verify_source

    result = verify_source(onnx_file, source, arch=arch, trust_checkpoint=trust_checkpoint,
                           num_classes=num_classes)
    at = " at fp32 (its fp16 blocks as fp32)" if result.fp16 is not None else ""
    click.echo(f"{onnx_file}: matches {source}{at}: max abs diff {_diffs(result.max_abs_diff)} "
               f"(atol {result.atol:.0e})")
    if result.fp16 is not None:
        from ..graph.fp16_check import describe_fp16

        click.echo(describe_fp16(result.fp16, "PyTorch"))


def _diffs(diffs: dict[int, float]) -> str:
    return ", ".join(f"batch {b} {d:.2e}" for b, d in diffs.items())
