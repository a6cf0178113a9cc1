"""``condense-deploy bench`` (onnxruntime latency) and ``condense-deploy report`` (merge results).

Torch-free: both run on a board with the runtime install.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._fsutil import check_writable
from ..runtime import reports
from ..runtime.bench import DEFAULT_RUNS, GRAPH_OPT_LEVELS, BenchSettings, parse_threads, run_bench
from ..runtime.machine import usable_cores
from .options import FiniteFloat, ThreadCounts, count
from .progress import ProgressBar


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--threads", type=ThreadCounts(), default="1", show_default=True,
              help="Intra-op thread counts to sweep, comma-separated ('all' = every usable core).")
@click.option("--batch", default=1, show_default=True, type=count(1, 4096), metavar="N",
              help="Batch size (symbolic batch inputs).")
@click.option("--warmup", default=10, show_default=True, type=count(0, 1_000_000), metavar="N",
              help="Untimed runs per model first.")
@click.option("--runs", type=count(1, 10_000_000), default=None, metavar="N",
              help=f"Timed runs per model [default: {DEFAULT_RUNS}].")
@click.option("--duration", type=FiniteFloat(0.0, 86_400.0, min_open=True), default=None, metavar="S",
              help="Instead of --runs: time each model ~S seconds.")
@click.option("--graph-opt-level", type=click.Choice(GRAPH_OPT_LEVELS), default="all", show_default=True,
              help="onnxruntime graph optimization level.")
@click.option("--profile", is_flag=True, help="Profile with onnxruntime and show time share per op type.")
@click.option("--json", "as_json", is_flag=False, flag_value="-", default=None, metavar="",
              help="Print the full report as JSON instead of the table. (--json PATH is the deprecated "
                   "spelling of -o PATH.)")
@click.option("-o", "--output", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full report as JSON to this file.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append one row per model x threads to this CSV (header written once).")
@click.option("--markdown", is_flag=True, help="Print the report as markdown instead of plain text.")
@click.option("--remote", metavar="USER@HOST", help="Copy the models over ssh and bench them there.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def bench_command(models: tuple[Path, ...], threads: str, batch: int, warmup: int, runs: int | None,
                  duration: float | None, graph_opt_level: str, profile: bool, as_json: str | None,
                  json_path: Path | None, csv_path: Path | None, markdown: bool, remote: str | None,
                  force: bool) -> None:
    """Measure the latency of MODELS (.onnx) with onnxruntime on this CPU.

    Several models run interleaved (A B A B ...), so the ratio of each to the first holds on a noisy
    machine. Reports min/mean/std/p50/p90/p99/max latency, images/s, session creation and first
    inference time, peak RSS, file size, and the machine (CPU, features, governor, versions).
    """
    if runs is not None and duration is not None:
        raise click.UsageError("give --runs or --duration, not both")
    if as_json not in (None, "-"):  # the old spelling: --json PATH wrote the file
        if json_path is not None:
            raise click.UsageError("give -o PATH only (--json PATH is its deprecated spelling)")
        click.echo(f"warning: --json {as_json} is deprecated: use -o {as_json} (--json alone prints "
                   "the report as JSON)", err=True)
        json_path, as_json = Path(as_json), None
    if json_path is not None:
        check_writable(json_path, force, inputs=models)
    if csv_path is not None:
        reports.check_csv(csv_path, inputs=[*models, *([json_path] if json_path is not None else [])])
    counts = parse_threads(threads)
    if not remote and max(counts) > usable_cores():
        click.echo(f"warning: --threads {max(counts)} is more than the {usable_cores()} usable core(s); "
                   "the extra threads share cores and latency gets worse", err=True)
    settings = BenchSettings(threads=counts, batch=batch, warmup=warmup, runs=runs,
                             duration_s=duration, graph_opt_level=graph_opt_level, profile=profile)
    if remote:
        from ..runtime.remote import run_remote_bench

        click.echo(f"benching {len(models)} model(s) on {remote} ...", err=True)
        report = run_remote_bench(remote, list(models), settings, threads=threads).to_dict()
    else:
        bar = ProgressBar("benching")
        try:
            report = run_bench(list(models), settings, progress=bar.fraction).to_dict()
        finally:
            bar.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(reports.format_markdown(report) if markdown else reports.format_text(report))
    if json_path is not None:
        reports.write_json(json_path, report, force=force)
        click.echo(f"wrote {json_path}", err=True)
    if csv_path is not None:
        reports.append_csv(csv_path, report)
        click.echo(f"appended {len(report.get('results', []))} row(s) to {csv_path}", err=True)


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the merged markdown table here (printed when omitted).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw p50 latency per model and machine to this PNG (needs matplotlib).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def report_command(results: tuple[Path, ...], output: Path | None, plot: Path | None, force: bool) -> None:
    """Merge bench RESULT.json files (from several machines) into one markdown table and plot."""
    text = reports.write_merged(list(results), output, plot=plot, force=force)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}" + (f" and {plot}" if plot else ""), err=True)
