"""Bench results as files people keep and compare: JSON, CSV, markdown, and a merged table and plot.

Works on the plain dict that ``BenchReport.to_dict()`` returns (and ``--json`` writes, and
``--remote`` brings back), so results from a board and a laptop merge without either machine's
code. Keys keep a stable order. Torch-free; matplotlib is imported only to draw a plot.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import _fsutil
from ..errors import FULL_INSTALL, CondenseDeployError, missing_dependency
from .bench import SCHEMA as BENCH_SCHEMA
from .result_schema import validate_report

__all__ = [
    "require_full_install",
    "BENCH_SCHEMA",
    "CSV_COLUMNS",
    "TABLE_SCHEMA",
    "append_csv",
    "check_csv",
    "format_markdown",
    "md_escape",
    "format_text",
    "load_results",
    "merged_markdown",
    "plot_merged",
    "require_matplotlib",
    "write_json",
    "write_merged",
]

TABLE_SCHEMA = "condense-deploy/table-v1"

_MACHINE_COLUMNS = ("slug", "hostname", "arch", "cpu_model", "cores_usable", "cpu_features", "governor",
                    "onnxruntime", "python")
_RESULT_COLUMNS = ("model", "path", "file_size_bytes", "input_shape", "batch", "threads", "graph_opt_level",
                   "warmup", "runs", "latency_min_ms", "latency_mean_ms", "latency_std_ms", "latency_p50_ms",
                   "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "throughput_ips",
                   "session_create_ms", "first_inference_ms", "peak_rss_mb", "rss_growth_mb",
                   "ratio_to_first", "paired_ratio_to_first")
# One CSV row per model x thread count: when it ran, where, and what it measured.
CSV_COLUMNS = ("created", *(f"machine_{c}" for c in _MACHINE_COLUMNS), *_RESULT_COLUMNS, "top_ops")


def write_json(path: str | os.PathLike[str], report: dict[str, Any], force: bool = False) -> Path:
    """Write a report as indented JSON (key order kept), refusing to overwrite without ``force``."""
    target = _fsutil.check_writable(path, force)
    _fsutil.write_json(target, report, overwrite=force)
    return target


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else " ".join(
            str(v) for v in value)
    return str(value)


def _top_ops(profile: dict[str, dict[str, float]] | None, n: int = 5) -> str:
    if not profile:
        return ""
    return ", ".join(f"{op} {100 * v['share']:.0f}%" for op, v in list(profile.items())[:n])


def _csv_rows(report: dict[str, Any]) -> list[list[str]]:
    machine = report.get("machine", {})
    rows = []
    for result in report.get("results", []):
        row = [_cell(report.get("created"))]
        row += [_cell(machine.get(c)) for c in _MACHINE_COLUMNS]
        row += [_cell(result.get(c)) for c in _RESULT_COLUMNS]
        row.append(_top_ops(result.get("profile")))
        rows.append(row)
    return rows


def _existing_csv(target: Path) -> str:
    """The CSV's current text ("" when new or empty); a folder, or a foreign header, is an error."""
    if not target.exists():
        _fsutil.check_writable(target, force=False)
        return ""
    if not target.is_file():
        raise CondenseDeployError(f"{target}: is not a file")
    _fsutil.check_writable(target, force=True)  # the append rewrites it atomically: folder must be writable
    try:
        old = target.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CondenseDeployError(f"{target}: cannot read it as a CSV file ({e})") from e
    if not old.strip():
        return ""
    header = next(csv.reader(io.StringIO(old)), [])
    if tuple(header) != CSV_COLUMNS:
        raise CondenseDeployError(f"{target}: its header has {len(header)} columns that differ from the "
                                  f"bench CSV's {len(CSV_COLUMNS)}; write to a new file")
    return old if old.endswith("\n") else old + "\n"


def check_csv(path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Fail before a long bench if ``append_csv(path, ...)`` would fail (or would rewrite an input)."""
    _fsutil.check_not_input(path, inputs)
    _existing_csv(Path(path))


def append_csv(path: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    """Append one row per model x thread count; the header is written only when the file is new.

    A file whose header differs (another tool's CSV, an older column set) is refused rather than
    mixed. The whole file is rewritten atomically, so an interrupted append loses nothing.
    """
    target = Path(path)
    old = _existing_csv(target)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if not old:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_rows(report))
    _fsutil.write_text(target, old + buffer.getvalue())
    return target


def _machine_line(machine: dict[str, Any]) -> str:
    features = ", ".join(machine.get("cpu_features") or []) or "none detected"
    freq = []
    if machine.get("governor"):
        freq.append(f"governor {machine['governor']}")
    if machine.get("cur_mhz"):
        freq.append(f"{machine['cur_mhz']:g} MHz")
    if machine.get("max_mhz"):
        freq.append(f"max {machine['max_mhz']:g} MHz")
    board = f" on {machine['board']}" if machine.get("board") else ""
    if machine.get("emulated_on"):
        board += f" under qemu-user on {machine['emulated_on']} (timings say nothing about a board)"
    parts = [
        f"{machine.get('cpu_model', '?')}{board} ({machine.get('arch', '?')}, "
        f"{machine.get('cores_usable', '?')} usable cores)",
        f"features: {features}",
    ]
    if freq:
        parts.append(", ".join(freq))
    if machine.get("temperature_c") is not None:
        parts.append(f"{machine['temperature_c']:g} C")
    parts.append(f"onnxruntime {machine.get('onnxruntime', '?')}, Python {machine.get('python', '?')}")
    parts.append(f"{machine.get('os', '?')}, host {machine.get('hostname', '?')}")
    return "; ".join(parts)


_TABLE = (  # (header, key, format)
    ("model", "model", "{}"),
    ("threads", "threads", "{}"),
    ("p50 ms", "latency_p50_ms", "{:.3f}"),
    ("mean ms", "latency_mean_ms", "{:.3f}"),
    ("std ms", "latency_std_ms", "{:.3f}"),
    ("min ms", "latency_min_ms", "{:.3f}"),
    ("p90 ms", "latency_p90_ms", "{:.3f}"),
    ("p99 ms", "latency_p99_ms", "{:.3f}"),
    ("max ms", "latency_max_ms", "{:.3f}"),
    ("img/s", "throughput_ips", "{:.1f}"),
    ("x first", "paired_ratio_to_first", "{:.3f}"),
    ("session ms", "session_create_ms", "{:.1f}"),
    ("first run ms", "first_inference_ms", "{:.1f}"),
    ("size MB", "file_size_bytes", "size"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
)


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "size":
        return f"{value / 1e6:.2f}"
    return fmt.format(value)


def _table_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[_fmt(r.get(key), fmt) for _, key, fmt in _TABLE] for r in report.get("results", [])]


def _settings_line(report: dict[str, Any]) -> str:
    s = report.get("settings", {})
    amount = f"{s.get('runs')} runs" if s.get("runs") else f"{s.get('duration_s')} s per model"
    memory = f"; {s['memory']}" if s.get("memory") else ""
    return (f"batch {s.get('batch')}, {s.get('warmup')} warm-up runs, {amount}, graph optimization "
            f"{s.get('graph_opt_level')}, interleaved{memory}")


def _ratio_note(report: dict[str, Any]) -> str | None:
    models = list(dict.fromkeys(r["model"] for r in report.get("results", [])))
    if len(models) < 2:
        return None
    return (f"'x first' is the median over interleaved rounds of each model's time over {models[0]}'s "
            "in the same round (robust to drift on a busy machine).")


def format_text(report: dict[str, Any]) -> str:
    """A plain aligned table for the terminal, the machine above it, ratios explained below it."""
    headers = [h for h, _, _ in _TABLE]
    rows = _table_rows(report)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [f"machine: {_machine_line(report.get('machine', {}))}",
             f"settings: {_settings_line(report)}", ""]
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths,
                                                                                           strict=True))))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                            strict=True))))
    lines += _profile_lines(report)
    note = _ratio_note(report)
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _profile_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for r in report.get("results", []):
        if r.get("profile"):
            lines.append(f"profile {r['model']} @ {r['threads']} thread(s): {_top_ops(r['profile'], 8)}")
    return [""] + lines if lines else []


def md_escape(text: str) -> str:
    """``text`` as one markdown table cell or list item: line breaks become spaces and ``|``, ``\\``,
    backquotes and angle brackets are escaped, so a name from a result file cannot end the row, add a
    row or bring in HTML."""
    text = " ".join(str(text).split())  # newlines, tabs and other control whitespace -> one space
    text = "".join(ch for ch in text if ch.isprintable())
    return re.sub(r"([\\|`<>])", r"\\\1", text)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]
    return lines


def format_markdown(report: dict[str, Any]) -> str:
    """The same report as a markdown section (machine, settings, table, profile shares)."""
    lines = [f"**Machine:** {md_escape(_machine_line(report.get('machine', {})))}", "",
             f"**Settings:** {md_escape(_settings_line(report))}; measured "
             f"{md_escape(report.get('created', '?'))}", ""]
    lines += _md_table([h for h, _, _ in _TABLE], _table_rows(report))
    for line in _profile_lines(report)[1:]:
        lines += ["", f"- {md_escape(line)}"]
    note = _ratio_note(report)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _bench_reports(data: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        raise CondenseDeployError(f"{path}: not a condense-deploy result (expected a JSON object)")
    schema = data.get("schema")
    if schema == BENCH_SCHEMA:
        return [data]
    if schema == TABLE_SCHEMA:  # the inference table keeps its onnxruntime bench reports inside
        bench = data.get("bench", [])
        if not isinstance(bench, list):
            raise CondenseDeployError(f"{path}: 'bench' is not a list of bench reports")
        return bench
    raise CondenseDeployError(f"{path}: schema {schema!r} is not {BENCH_SCHEMA!r} or {TABLE_SCHEMA!r}")


def load_results(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read bench (or inference-table) JSON files into a list of bench report dicts."""
    reports: list[dict[str, Any]] = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CondenseDeployError(f"{path}: no such result file")
        try:
            data = json.loads(path.read_text())
        except RecursionError as e:  # json nests one Python frame per level
            raise CondenseDeployError(f"{path}: not a bench result (JSON nested too deeply)") from e
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CondenseDeployError(f"{path}: not a JSON file ({e})") from e
        for report in _bench_reports(data, path):
            validate_report(report, path)
            reports.append(report)
    if not reports:
        raise CondenseDeployError("no bench results in the given files")
    return reports


def _series(report: dict[str, Any], result: dict[str, Any]) -> str:
    machine = report.get("machine", {})
    return f"{machine.get('slug') or machine.get('hostname', '?')} @ {result['threads']}t"


def merged_markdown(reports: Sequence[dict[str, Any]]) -> str:
    """One table for runs from several machines: a row per machine x model x threads, then each
    machine described once. Ratios are within each run (interleaved), never across machines."""
    headers = ["machine", "arch", "model", "threads", "batch", "p50 ms", "mean ms", "p90 ms", "img/s",
               "x first in run"]
    rows = []
    machines: dict[str, dict[str, Any]] = {}
    for report in reports:
        machine = report.get("machine", {})
        slug = machine.get("slug") or machine.get("hostname", "?")
        machines.setdefault(slug, machine)
        for r in report["results"]:
            rows.append([slug, str(machine.get("arch", "?")), r["model"], str(r["threads"]), str(r["batch"]),
                         _fmt(r.get("latency_p50_ms"), "{:.3f}"), _fmt(r.get("latency_mean_ms"), "{:.3f}"),
                         _fmt(r.get("latency_p90_ms"), "{:.3f}"), _fmt(r.get("throughput_ips"), "{:.1f}"),
                         _fmt(r.get("paired_ratio_to_first"), "{:.3f}")])
    order = {m: i for i, m in enumerate(dict.fromkeys(row[2] for row in rows))}
    where = {m: i for i, m in enumerate(machines)}  # models and machines in the order given
    rows.sort(key=lambda row: (order[row[2]], where[row[0]], int(row[3])))
    lines = ["# Bench results", ""]
    lines += _md_table(headers, rows)
    lines += ["", "'x first in run' compares each model with the first model of the same interleaved run "
              "on the same machine; compare machines by their p50 columns.", "", "## Machines", ""]
    for slug, machine in machines.items():
        lines.append(f"- **{md_escape(slug)}**: {md_escape(_machine_line(machine))}")
    return "\n".join(lines) + "\n"


def require_full_install(command: str) -> None:
    """Fail in one line, before any work, when ``command`` needs torch and matplotlib and they are absent."""
    import importlib.util

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except ImportError:
            return True

    missing = [name for name in ("torch", "matplotlib") if absent(name)]
    if missing:
        raise missing_dependency(f"'{command}'", " and ".join(missing))


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` with a headless backend, or a one-line error naming the install."""
    try:
        import matplotlib
    except ImportError as e:
        raise missing_dependency("plots", "matplotlib", f"{FULL_INSTALL} (or pip install matplotlib)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_merged(reports: Sequence[dict[str, Any]], path: str | os.PathLike[str], force: bool = False) -> Path:
    """Horizontal grouped bars: p50 latency per model (log scale), one bar colour per machine x threads."""
    target = _fsutil.check_writable(path, force)
    plt = require_matplotlib()
    series: dict[str, dict[str, float]] = {}
    models: list[str] = []
    for report in reports:
        for r in report["results"]:
            series.setdefault(_series(report, r), {})[r["model"]] = r["latency_p50_ms"]
            if r["model"] not in models:
                models.append(r["model"])
    height = 0.8 / max(len(series), 1)
    # the legend sits right of the axes, so it never covers a bar (the longest ones end at the right)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(models) * max(1, len(series) / 2)))
    try:
        for k, (name, values) in enumerate(series.items()):
            ys = [i + k * height for i, m in enumerate(models) if m in values]
            xs = [values[m] for m in models if m in values]
            ax.barh(ys, xs, height=height, label=name)
        ax.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(models))], models)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency (ms, log scale)")
        ax.set_title("onnxruntime latency per model")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(axis="x", which="both", alpha=0.3)
        fig.tight_layout()
        with _fsutil.atomic_write(target, "wb", overwrite=force) as handle:
            fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")  # the legend outside included
    finally:
        plt.close(fig)
    return target


def write_merged(results: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str] | None,
                 plot: str | os.PathLike[str] | None = None, force: bool = False) -> str:
    """Merge result files into one markdown table (written to ``output`` if given) and an optional
    PNG plot; returns the markdown. Both targets are checked before anything is written."""
    reports = load_results(results)
    if output is not None:
        _fsutil.check_writable(output, force, inputs=results)
    if plot is not None and output is not None and os.path.abspath(plot) == os.path.abspath(output):
        raise CondenseDeployError(f"{plot}: given as both --output and --plot; choose two names")
    if plot is not None:
        _fsutil.check_writable(plot, force, inputs=[*results, *([output] if output is not None else [])])
        require_matplotlib()
    text = merged_markdown(reports)
    if plot is not None:
        plot_merged(reports, plot, force=force)
        base = Path(output).resolve().parent if output is not None else Path.cwd()
        link = os.path.relpath(Path(plot).resolve(), base)
        text += f"\n![p50 latency per model]({Path(link).as_posix()})\n"
    if output is not None:
        _fsutil.write_text(output, text, overwrite=force)
    return text
