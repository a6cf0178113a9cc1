"""``condense-deploy export`` and ``verify``: checkpoint or zoo name -> verified ONNX file.

torch is imported only when a command runs (through ``condense_deploy.export``), so listing the
commands on a board without torch stays possible.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..graph.recipes import MODES
from .options import arch_option, classes_option, count, trust_option
from .progress import ProgressBar

__all__ = ["export_command", "verify_command"]


class _BatchType(click.ParamType):
    """``dynamic`` or a positive integer."""

    name = "dynamic|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | int:
        if isinstance(value, int) or value == "dynamic":
            return value
        try:
            size = int(value)
        except ValueError:
            size = 0
        if size < 1:
            self.fail(f"{value!r} is neither 'dynamic' nor a positive integer", param, ctx)
        return size


def _step(message: str) -> None:
    click.echo(f"  {message}...", err=True)


@click.command("export")
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The .onnx file to write.")
@arch_option
@click.option("--opset", type=count(7, 30), default=None,
              help="ONNX opset version [default: the model card's; 17 for a model without a card].")
@click.option("--batch", type=_BatchType(), default="dynamic", show_default=True,
              help="A symbolic batch axis, or a fixed batch size.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Run onnxsim.")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript",
              show_default=True, help="torch.onnx exporter (dynamo needs onnxscript).")
@click.option("--optimize", type=click.Choice(MODES), default="fast", show_default=True,
              help="onnxruntime graph rewrites; tuned times candidates on this machine.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@trust_option
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(source: str, output: str, arch: str | None, opset: int | None, batch: str | int,
                   simplify: bool, exporter: str, optimize: str, force: bool, trust_checkpoint: bool,
                   num_classes: int | None, as_json: bool) -> None:
    """Export SOURCE (a checkpoint or a zoo name) to a verified ONNX file.

    A training-form CondenseNet is converted first. The file is checked, simplified, optimized and
    compared with PyTorch in onnxruntime at batch 1 and 3; it is written only if the logits agree
    within the model card's atol (1e-4 for a model without a card).
    """
    from ..pipeline import export_source

    click.echo(f"exporting {source} -> {output}", err=True)
    tuning = ProgressBar("  tuning grouped convs").counts if optimize == "tuned" else None
    result = export_source(source, output, arch=arch, opset=opset, batch=batch, simplify=simplify,
                           exporter=exporter, optimize=optimize, force=force,
                           trust_checkpoint=trust_checkpoint, num_classes=num_classes, on_step=_step,
                           on_progress=tuning)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    batch_text = "dynamic batch" if result.batch == "dynamic" else f"batch {result.batch}"
    click.echo(f"wrote {result.path}: {result.size_bytes / 1e6:.2f} MB, {result.nodes} nodes, opset "
               f"{result.opset}, {batch_text}, optimize {result.optimize.get('mode')}")
    click.echo(f"max abs diff vs PyTorch: {_diffs(result.max_abs_diff)} (atol {result.atol:.0e})")


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
    click.echo(f"{onnx_file}: matches {source}: max abs diff {_diffs(result.max_abs_diff)} "
               f"(atol {result.atol:.0e})")


def _diffs(diffs: dict[int, float]) -> str:
    return ", ".join(f"batch {b} {d:.2e}" for b, d in diffs.items())
