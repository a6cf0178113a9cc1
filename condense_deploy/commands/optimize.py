"""``condense-deploy optimize`` and ``condense-deploy quantize``: thin over ``optimize`` / ``quantize``.

Neither imports torch: both run on a board with the runtime install.
"""

from __future__ import annotations

import click

from .options import check_precision, count, precision_option
from .progress import ProgressBar

# the modes of export --optimize that rewrite an exported file (none: nothing to do)
OPTIMIZE_MODES = ("fast", "tuned", "native")

_OUTPUT = click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                       help="Output .onnx file.")
_THREADS = click.option("--threads", type=count(1, 1024), default=1, show_default=True,
                        help="Intra-op threads (tuning and timing).")
_QUANT_THREADS = click.option("--threads", type=count(1, 1024), default=1, show_default=True,
                              help="Intra-op threads for the fp32 vs int8 latency comparison.")
_FORCE = click.option("--force", is_flag=True, help="Overwrite the output file.")


@click.command("optimize")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_OUTPUT
@click.option("--optimize", "mode", type=click.Choice(OPTIMIZE_MODES), default=None,
              help="fast: the fixed rewrite rules [default]; tuned: time each grouped conv's equivalent "
                   "forms on this machine and keep the fastest (minutes); native: each dense block "
                   "becomes one DenseBlock op of our kernel library (fastest; the model then needs the "
                   "library wherever it runs; SOURCE must be exported with --optimize none). The same "
                   "modes as export --optimize.")
@click.option("--tuned", is_flag=True, hidden=True, help="Deprecated spelling of --optimize tuned.")
@click.option("--native", is_flag=True, hidden=True, help="Deprecated spelling of --optimize native.")
@precision_option
@_THREADS
@_FORCE
def optimize_command(source: str, output: str, mode: str | None, tuned: bool, native: bool, precision: str,
                     threads: int, force: bool) -> None:
    """Rewrite SOURCE (an exported CondenseNet .onnx) for onnxruntime CPU latency.

    The result is checked against SOURCE in onnxruntime on random input; above 1e-4 nothing is written.
    """
    from ..graph.optimize import optimize_file

    old = [flag for flag, given in (("tuned", tuned), ("native", native)) if given]
    if len(old) > 1 or (old and mode is not None):
        raise click.UsageError("give one --optimize mode (--tuned and --native are its deprecated spellings)")
    if old:
        click.echo(f"warning: --{old[0]} is deprecated: use --optimize {old[0]}", err=True)
    mode = mode or (old[0] if old else "fast")
    check_precision(precision, mode)
    report = optimize_file(source, output, mode, threads, force,
                           progress=ProgressBar("tuning").counts if mode == "tuned" else None,
                           precision=precision)
    before = sum(report["ops_before"].values())
    after = sum(report["ops_after"].values())
    fp16 = report.get("fp16")
    at = ", the same graph at fp32" if fp16 is not None else ""
    click.echo(f"{output}: {report['mode']} ({before} -> {after} nodes), max abs diff vs {source}{at} "
               f"{report['max_abs_diff']:.2e}")
    if "native_blocks" in report:
        click.echo(f"dense blocks on the native kernels: {report['native_blocks']}, precision "
                   f"{report['precision']}")
    if fp16 is not None:
        from ..graph.fp16_check import describe_fp16

        click.echo(describe_fp16(fp16, source))
    if "choices" in report:
        forms: dict[str, int] = {}
        for choice in report["choices"].values():
            forms[choice["form"]] = forms.get(choice["form"], 0) + 1
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(forms.items())) or "none (no grouped convs)"
        click.echo("grouped conv forms chosen: " + chosen)


@click.command("quantize")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_OUTPUT
@click.option("--calibration-data", required=True, type=click.Path(exists=True),
              help="ImageFolder (class folders of JPEG/PNG, or a flat folder) or a CIFAR python archive "
                   "(cifar-10-python.tar.gz / its folder).")
@click.option("--arch", "card", default=None, metavar="ZOO_NAME",
              help="Zoo name whose card gives mean/std (default: guessed from the input size).")
@click.option("--model", "old_card", default=None, hidden=True, help="Deprecated spelling of --arch.")
@click.option("--calibration-size", type=count(1, 100_000), default=64, show_default=True,
              help="Images used to calibrate.")
@click.option("--eval-size", type=count(0, 100_000), default=256, show_default=True,
              help="Images used to compare accuracy (after the calibration images).")
@_QUANT_THREADS
@_FORCE
def quantize_command(source: str, output: str, calibration_data: str, card: str | None,
                     old_card: str | None, calibration_size: int, eval_size: int, threads: int,
                     force: bool) -> None:
    """Static int8 QDQ quantization of SOURCE (per-channel weights), calibrated on real images."""
    from ..graph.quantize import quantize_file

    if old_card is not None:
        if card is not None:
            raise click.UsageError("give --arch only (--model is its deprecated spelling)")
        click.echo(f"warning: --model is deprecated: use --arch {old_card}", err=True)
        card = old_card

    report = quantize_file(source, output, calibration_data, card=card, calibration_size=calibration_size,
                           eval_size=eval_size, threads=threads, force=force)
    click.echo(f"{output}: int8 QDQ, calibrated on {report['calibration_images']} images")
    if report.get("top1_err_fp32") is not None:
        click.echo(f"top-1 error on {report['eval_images']} images: fp32 {report['top1_err_fp32']:.2f} %, "
                   f"int8 {report['top1_err_int8']:.2f} %")
    if report["eval_images"]:
        click.echo(f"top-1 agreement int8 vs fp32: {report['agreement']:.2%} "
                   f"({report['eval_images']} images)")
    else:
        click.echo("top-1 agreement int8 vs fp32: not measured (--eval-size 0)")
    click.echo(f"latency ({threads} thread(s), median): fp32 {report['fp32_ms']:.2f} ms, "
               f"int8 {report['int8_ms']:.2f} ms ({report['int8_ms'] / report['fp32_ms']:.2f}x)")
