"""``condense-deploy table`` (the paper's Table 5 on this machine) and ``condense-deploy demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..graph.recipes import MODES
from ..runtime.reports import require_full_install
from ..table import TABLE_MODELS, TableOptions, run_table  # torch-free at import; torch only to export
from .options import ThreadCounts, count
from .progress import ProgressBar

DEMO_DIR = Path("demo-output")


class _Progress:
    """One stderr progress bar per phase (export, onnxruntime, PyTorch), plus step messages."""

    def __init__(self) -> None:
        self.bar: ProgressBar | None = None

    def step(self, message: str) -> None:
        self.close()
        click.echo(message, err=True)

    def fraction(self, label: str, value: float) -> None:
        if self.bar is None or label != self.bar.label:
            self.close()
            self.bar = ProgressBar(label)
        self.bar.fraction(value)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


def _run(**kwargs: Any) -> Any:
    progress = _Progress()
    try:
        return run_table(TableOptions(**kwargs), on_step=progress.step, on_fraction=progress.fraction)
    finally:
        progress.close()


def _models(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _optimize_modes(text: str | None, old_native: bool | None) -> tuple[str, bool | None]:
    """``--optimize MODE[,native]`` as (the rows' mode, native rows too: True, False or None = where
    the kernels are built); ``--native/--no-native`` are its deprecated spellings."""
    if old_native is not None:
        if text is not None:
            raise click.UsageError("give --optimize only (--native/--no-native are its deprecated spellings)")
        new = "fast,native" if old_native else "fast"
        click.echo(f"warning: --{'' if old_native else 'no-'}native is deprecated: use --optimize {new}",
                   err=True)
        text = new
    if text is None:
        return "fast", None
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    portable = [m for m in modes if m != "native"]
    if bad or not modes or len(portable) > 1 or len(modes) > 2 or (len(modes) == 2 and not portable):
        raise click.BadParameter(f"{text!r}: one of {', '.join(MODES)}, optionally followed by ',native'",
                                 param_hint="'--optimize'")
    return (portable[0], "native" in modes) if portable else ("native", False)


@click.command("table")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for <machine>.md, .csv, .json and .png, created if missing "
                   "[default: ./table-results].")
@click.option("--onnx-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where exported .onnx files are kept and reused [default: ~/.cache/condense-deploy/onnx].")
@click.option("--models", default=",".join(TABLE_MODELS), show_default=True,
              help="Comma-separated subset of the table's models.")
@click.option("--runs", type=count(1, 10_000_000), default=None,
              help="Timed runs per model and setting [default: 30; 5 quick].")
@click.option("--warmup", type=count(0, 1_000_000), default=None,
              help="Warm-up runs per model [default: 3; 1 quick].")
@click.option("--threads", type=ThreadCounts(), default="1,all", show_default=True,
              help="onnxruntime thread counts ('all' = every usable core).")
@click.option("--optimize", "modes", default=None, metavar="MODE[,native]",
              help="export --optimize mode of every row (none, fast, tuned or native), and ',native' to "
                   "add a row per CondenseNet exported with --optimize native (our kernels) "
                   "[default: fast,native where the kernels are built, else fast].")
@click.option("--native/--no-native", default=None, hidden=True,
              help="Deprecated spellings of --optimize fast,native and --optimize fast.")
@click.option("--torch", "with_torch", is_flag=True,
              help="Add PyTorch eager at 1 thread (what the paper timed).")
@click.option("--quick", is_flag=True, help="Fewer runs: a rough table in a few minutes.")
@click.option("--force", is_flag=True, help="Overwrite this machine's results files.")
@click.option("--reexport", is_flag=True, help="Export the models again even if matching files exist.")
def table_command(out_dir: Path | None, onnx_dir: Path | None, models: str, runs: int | None,
                  warmup: int | None, threads: str, modes: str | None, native: bool | None,
                  with_torch: bool, quick: bool, force: bool, reexport: bool) -> None:
    """Reproduce the CondenseNet paper's Table 5 (inference time) on this machine.

    Exports (or reuses) VGG-16, ResNet-18, MobileNet v1, CondenseNet-74 C=G=4 and C=G=8, MobileNetV2
    and ShuffleNetV2 at 224x224, times them interleaved with onnxruntime at 1 thread and every core,
    and writes <machine>.md/.csv/.json and a latency-against-FLOPs plot. Paper figures are labelled
    as published. Where the native kernels are built, each CondenseNet gets a second row exported
    with --optimize native.
    """
    optimize, native = _optimize_modes(modes, native)
    if out_dir is None:  # never benchmarks/results: its files are the committed reference
        out_dir = Path("table-results")
    result = _run(out_dir=out_dir, onnx_dir=onnx_dir, models=_models(models), runs=runs, warmup=warmup,
                  threads=threads, optimize=optimize, native=native, torch=with_torch, quick=quick,
                  force=force, reexport=reexport)
    click.echo(result.markdown, nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in result.paths.values()), err=True)


@click.command("demo")
def demo_command() -> None:
    """The inference table for all seven models, quick, in ./demo-output/ (replacing the last demo).

    The first run exports the seven models to ~/.cache/condense-deploy/onnx; later runs reuse them.
    """
    require_full_install("demo")  # before demo-output/ is created: a runtime install leaves nothing behind
    DEMO_DIR.mkdir(exist_ok=True)
    # The demo owns demo-output/ (force). Its .onnx files live in the table's cache, so a demo after
    # a table run (or a second demo) reuses them instead of exporting again.
    result = _run(out_dir=DEMO_DIR, quick=True, force=True,
                  models=list(TABLE_MODELS))
    click.echo(result.markdown, nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in result.paths.values()), err=True)
