"""The paper's Table 5 (inference time on ARM) reproduced on whatever machine this runs on.

Seven ImageNet models at 224x224 are exported to ONNX (or reused), then timed together, interleaved,
with onnxruntime at 1 thread and at every core (and, with ``torch=True``, PyTorch eager at 1 thread,
which is what the paper timed on a Jetson TX2 CPU). The paper's figures come from the zoo cards and
are labelled as published; everything else is measured here. Weights are the zoo's deterministic
random initialisation: latency does not depend on the values, accuracy is not measured.

Where the native kernels are built, each CondenseNet also gets a ``native`` row: the same network
exported with ``--optimize native`` (its dense blocks on our custom ops), timed in the same rounds.

Writes ``<out_dir>/<machine>.md``, ``.csv``, ``.json`` and ``.png`` (latency against FLOPs).
torch is imported only to export models and for the PyTorch column.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__, _fsutil
from .architectures.registry import get_card
from .errors import CondenseDeployError, missing_dependency
from .graph.metadata import META, OPTIMIZE_KEY, read_metadata
from .graph.recipes import MODES
from .native import library as native_library
from .runtime.bench import BenchSettings, latency_stats, model_label, parse_threads, run_bench
from .runtime.machine import describe_machine, usable_cores
from .runtime.reports import TABLE_SCHEMA, require_matplotlib

__all__ = ["DEFAULT_THREADS", "REFERENCE", "TABLE_MODELS", "TableOptions", "TableResult", "cached_export",
           "default_onnx_dir", "run_table"]

# The paper's Table 5 rows, then two later mobile baselines (MobileNet v2, ShuffleNet v2).
TABLE_MODELS = ("vgg16", "resnet18", "mobilenet_v1", "condensenet74_c4g4", "condensenet74_c8g8",
                "mobilenet_v2", "shufflenet_v2_x1_0")
REFERENCE = "mobilenet_v1"  # the paper compares against MobileNet
DEFAULT_THREADS = "1,all"
_RUNS, _WARMUP = 30, 3
_QUICK_RUNS, _QUICK_WARMUP = 5, 1

Step = Callable[[str], None]
Fraction = Callable[[str, float], None]


@dataclass
class TableOptions:
    """What the table measures and where it writes. ``runs``/``warmup`` None: 30/3, or 5/1 quick."""

    out_dir: Path = Path("benchmarks/results")
    onnx_dir: Path | None = None  # default: $XDG_CACHE_HOME/condense-deploy/onnx
    models: Sequence[str] = TABLE_MODELS
    runs: int | None = None
    warmup: int | None = None
    threads: str = DEFAULT_THREADS
    optimize: str = "fast"
    native: bool | None = None  # CondenseNet rows with optimize native too; None: where the kernels are built
    torch: bool = False
    quick: bool = False
    force: bool = False  # overwrite this machine's results files
    reexport: bool = False  # export again even when a matching .onnx file exists


@dataclass
class TableResult:
    """What was written and the markdown that was written."""

    markdown: str
    paths: dict[str, Path] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def default_onnx_dir() -> Path:
    """Where exported table models are kept between runs (hundreds of MB: not in the repository)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "condense-deploy" / "onnx"


@dataclass(frozen=True)
class _Row:
    """One table row: a zoo model exported with one optimize mode."""

    label: str
    name: str
    optimize: str


def _table_rows(models: list[str], optimize: str, native: bool) -> list[_Row]:
    """Each model as exported with ``optimize``, each CondenseNet then also with ``native``; rows are
    named as ``bench`` names the same files (``model_label``), so ``report`` merges them."""
    rows = []
    for name in models:
        rows.append(_Row(model_label(name, optimize), name, optimize))
        if native and optimize != "native" and get_card(name).get("family") == "condensenet":
            rows.append(_Row(model_label(name, "native"), name, "native"))
    return rows


def _native(options: TableOptions) -> bool:
    if options.native is None:
        return native_library.is_available()
    if options.native:
        native_library.library_path()  # one clear error, before any work, when they are not built
    return options.native


def _check(options: TableOptions) -> tuple[list[str], list[int], int, int]:
    models = list(dict.fromkeys(options.models))
    if not models:
        raise CondenseDeployError("no model given for the table")
    for name in models:
        if name not in TABLE_MODELS:
            raise CondenseDeployError(f"{name}: not a table model; choose from {', '.join(TABLE_MODELS)}")
    if options.optimize not in MODES:
        raise CondenseDeployError(f"optimize {options.optimize!r}: expected one of "
                                  f"{', '.join(MODES)}")
    runs = options.runs if options.runs is not None else (_QUICK_RUNS if options.quick else _RUNS)
    warmup = options.warmup if options.warmup is not None else (_QUICK_WARMUP if options.quick else _WARMUP)
    if runs < 1 or warmup < 0:
        raise CondenseDeployError(f"runs {runs} must be >= 1 and warmup {warmup} >= 0")
    return models, parse_threads(options.threads), runs, warmup


# ------------------------------------------------------------------------------------------ export


def _metadata(path: Path) -> dict[str, str] | None:
    """The file's condense-deploy metadata, or None when it cannot be read (then it is re-exported)."""
    try:
        return read_metadata(path)
    except Exception:  # a truncated or foreign file is simply exported again
        return None


# The code an exported file depends on: a file older than any of them is exported again, so a
# toolkit upgrade (or a change in a checkout) never leaves the table timing stale exports.
_EXPORT_SOURCES = ("export.py", "graph/optimize.py", "graph/passes.py", "graph/native.py",
                   "architectures/baselines.py", "architectures/condensenet.py", "architectures/layers.py",
                   "convert.py", "count.py")


def _exporter_mtime() -> float:
    here = Path(__file__).resolve().parent
    return max((here / name).stat().st_mtime for name in _EXPORT_SOURCES if (here / name).exists())


def _can_export() -> bool:
    """torch is importable (exporting needs it; a board's runtime install has none)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _reusable(path: Path, name: str, optimize: str) -> dict[str, str] | None:
    """The metadata of ``path`` if it is an export of ``name`` with ``optimize``, newer than the code
    (without torch the age is not held against it: it cannot be exported again here)."""
    if not path.is_file() or (_can_export() and path.stat().st_mtime < _exporter_mtime()):
        return None
    meta = _metadata(path)
    if not meta or meta.get(META + "architecture") != name:
        return None
    try:
        mode = json.loads(meta.get(OPTIMIZE_KEY, "{}")).get("mode")
    except ValueError:
        return None
    return meta if mode == optimize and META + "flops" in meta else None


def cached_export(name: str, optimize: str, onnx_dir: Path | None = None, reexport: bool = False,
                  on_step: Step | None = None) -> tuple[Path, dict[str, str], bool]:
    """The zoo model ``name`` exported with ``optimize`` in ``onnx_dir`` (default: the table's cache),
    reused when an export of the same name and mode newer than the code is there: returns (path, its
    metadata, reused). The table and the benchmarks share the cache through this."""
    folder = Path(onnx_dir or default_onnx_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CondenseDeployError(f"{folder}: cannot create the folder for exported models "
                                  f"({e.strerror})") from e
    path = folder / f"{name}.{optimize}.onnx"
    meta = None if reexport else _reusable(path, name, optimize)
    if meta is not None:
        return path, meta, True
    from .pipeline import export_source  # torch: only when something has to be exported

    if on_step:
        on_step(f"exporting {name} to {path} (optimize {optimize})")
    return path, export_source(name, path, optimize=optimize, force=True).metadata, False


def _export(rows: list[_Row], onnx_dir: Path, reexport: bool, on_step: Step) -> dict[str, dict[str, Any]]:
    """Export (or reuse: same zoo name and optimize mode in its metadata) each row's model; returns
    label -> {path, flops, params, reused}."""
    out: dict[str, dict[str, Any]] = {}
    metas = {row.label: None if reexport else _reusable(onnx_dir / f"{row.name}.{row.optimize}.onnx",
                                                        row.name, row.optimize) for row in rows}
    missing = [f"{row.name}.{row.optimize}.onnx" for row in rows if metas[row.label] is None]
    if missing and not _can_export():
        raise missing_dependency(
            f"'table' without {', '.join(missing)} in {onnx_dir}", "torch to export them",
            "export them on a workstation (`condense-deploy table --onnx-dir DIR` or `export NAME -o "
            "DIR/NAME.MODE.onnx --optimize MODE`) and copy DIR here, or pip install '.[full]'")
    for row in rows:
        path = onnx_dir / f"{row.name}.{row.optimize}.onnx"
        meta = metas[row.label]
        reused = meta is not None
        if meta is None:  # torch: only when something has to be exported
            path, meta, _ = cached_export(row.name, row.optimize, onnx_dir, True, on_step)
        out[row.label] = {"path": path, "flops": int(meta[META + "flops"]),
                          "params": int(meta[META + "params"]), "reused": reused}
    return out


# ------------------------------------------------------------------------------------ PyTorch column


def _torch_bench(models: list[str], runs: int, warmup: int, on_fraction: Fraction) -> dict[str, Any]:
    """PyTorch eager, 1 thread, no_grad, interleaved like the onnxruntime runs; p50 and paired ratio
    to the reference model (the first in ``models``)."""
    import time

    import numpy as np
    import torch

    from .checkpoint import load_model

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        nets = [load_model(name).model.eval() for name in models]
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        times: list[list[float]] = [[] for _ in models]
        with torch.inference_mode():
            for _ in range(warmup):
                for net in nets:
                    net(x)
            for r in range(runs):
                for i, net in enumerate(nets):
                    t0 = time.perf_counter()
                    net(x)
                    times[i].append((time.perf_counter() - t0) * 1e3)
                on_fraction("PyTorch eager, 1 thread", (r + 1) / runs)
    finally:
        torch.set_num_threads(previous)
    first = np.asarray(times[0])
    return {
        "threads": 1, "runs": runs, "warmup": warmup, "torch": torch.__version__,
        "results": [{"model": name, **{f"latency_{k}_ms": round(v, 4) for k, v in latency_stats(t).items()},
                     "paired_ratio_to_first": round(float(np.median(np.asarray(t) / first)), 4)}
                    for name, t in zip(models, times, strict=True)],
    }


# ---------------------------------------------------------------------------------------- the table


def _si(n: float) -> str:
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e7 else f"{n / 1e6:.2f}M"


def _settings(threads: list[int], with_torch: bool) -> list[tuple[str, str]]:
    """(key, label) of each measured setting, in column order."""
    out = [(f"ort_{t}t", f"ORT {t} thread{'s' if t > 1 else ''}") for t in threads]
    return out + ([("torch_1t", "PyTorch eager 1 thread")] if with_torch else [])


def _rows(rows: list[_Row], exported: dict[str, dict[str, Any]], bench: dict[str, Any],
          torch_run: dict[str, Any] | None, threads: list[int]) -> list[dict[str, Any]]:
    ref_time = get_card(REFERENCE)["published"].get("arm_time_s")
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    for r in bench["results"]:
        measured[(r["model"], f"ort_{r['threads']}t")] = r
    for r in (torch_run or {}).get("results", []):
        measured[(r["model"], "torch_1t")] = r
    has_ref = any(r.name == REFERENCE for r in rows)
    out = []
    for entry in rows:
        name = entry.label
        published = get_card(entry.name)["published"]
        arm = published.get("arm_time_s")
        row: dict[str, Any] = {
            "model": name,
            "optimize": entry.optimize,
            "flops": exported[name]["flops"],
            "params": exported[name]["params"],
            "published_top1_err": published.get("top1_err"),
            "published_arm_time_s": arm,
            "published_ratio_to_mobilenet": round(arm / ref_time, 3) if arm and ref_time else None,
        }
        for key, _ in _settings(threads, torch_run is not None):
            r = measured.get((name, key))
            row[f"p50_ms_{key}"] = r["latency_p50_ms"] if r else None
        for key, _ in _settings(threads, torch_run is not None):
            r = measured.get((name, key))
            row[f"ratio_to_mobilenet_{key}"] = r["paired_ratio_to_first"] if r and has_ref else None
        out.append(row)
    return out


def _columns(threads: list[int], with_torch: bool) -> list[tuple[str, str]]:
    """(row key, markdown header) in table order."""
    cols = [("model", "model"), ("flops", "FLOPs"), ("params", "params"),
            ("published_top1_err", "top-1 err % (published)"),
            ("published_arm_time_s", "paper ARM time s (published)"),
            ("published_ratio_to_mobilenet", "paper ratio to MobileNet (published)")]
    settings = _settings(threads, with_torch)
    cols += [(f"p50_ms_{key}", f"p50 ms {label}") for key, label in settings]
    cols += [(f"ratio_to_mobilenet_{key}", f"ratio to MobileNet {label}") for key, label in settings]
    return cols


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("flops", "params"):
        return _si(value)
    if key.startswith("p50_ms"):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    if key.startswith(("ratio", "published_ratio")):
        return f"{value:.2f}"
    return str(value)


def _markdown(data: dict[str, Any], png_name: str | None) -> str:
    machine = data["machine"]
    threads = data["settings"]["threads"]
    cols = _columns(threads, data["torch"] is not None)
    lines = [
        f"# Inference time, CondenseNet paper Table 5 reproduced on {machine['slug']}", "",
        f"Machine: {machine['cpu_model']} ({machine['arch']}, {machine['cores_usable']} usable cores; "
        f"features {', '.join(machine['cpu_features']) or 'none detected'}), onnxruntime "
        f"{machine['onnxruntime']}, Python {machine['python']}, {machine['os']}. Measured {data['created']}.",
        "",
        "| " + " | ".join(h for _, h in cols) + " |",
        "|" + "|".join("---" if k == "model" else "--:" for k, _ in cols) + "|",
    ]
    for row in data["rows"]:
        lines.append("| " + " | ".join(_cell(k, row.get(k)) for k, _ in cols) + " |")
    s = data["settings"]
    load = data["load_average"]
    lines += [
        "",
        f"- Measured: onnxruntime {machine['onnxruntime']}, graph optimization all, batch 1, 224x224, "
        f"{s['warmup']} warm-up + {s['runs']} timed runs per model and setting, all models interleaved "
        f"(A B C ... A B C ...); ONNX files exported with `optimize={s['optimize']}`"
        + ("; rows marked native with `optimize=native` (the dense blocks on our kernels, "
           "docs/native-ops.md), same weights. " if s.get("native") else ". ") +
        "FLOPs (multiply-adds) and params are counted by `condense_deploy.count` on the exported "
        "(converted) networks. Weights are random: latency does not depend on them.",
        "- Ratios to MobileNet are medians, over interleaved rounds, of each model's time divided by "
        "MobileNet v1's in the same round. On a shared or noisy machine these ratios are what count; "
        "absolute milliseconds move with the load. Load average (1 min) was "
        f"{load['before']} before and {load['after']} after the runs.",
        "- Published columns come from the zoo cards (the CondenseNet paper, Table 5: PyTorch on a "
        "Jetson TX2 ARM CPU, seconds per image as printed there). They are not measured here; "
        "MobileNetV2 and ShuffleNetV2 have no paper ARM time.",
    ]
    busiest = max((v for v in (load["before"], load["after"]) if v is not None), default=None)
    if busiest is not None and busiest >= machine["cores_usable"] / 2 and len(threads) > 1:
        lines.append(f"- This run shared the machine with other work (load average up to {busiest} on "
                     f"{machine['cores_usable']} cores): the multi-thread columns measure contention for "
                     "cores as much as scaling, and can be slower than 1 thread.")
    if data["torch"] is not None:
        lines.append(f"- PyTorch eager column: torch {data['torch']['torch']}, 1 thread, "
                     "`inference_mode`, the same interleaving, converted CondenseNets.")
    if png_name:
        lines += ["", f"![p50 latency against FLOPs]({png_name})"]
    return "\n".join(lines) + "\n"


def _csv(data: dict[str, Any]) -> str:
    cols = [k for k, _ in _columns(data["settings"]["threads"], data["torch"] is not None)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["machine", *cols])
    for row in data["rows"]:
        writer.writerow([data["machine"]["slug"], *("" if row.get(k) is None else row[k] for k in cols)])
    return buffer.getvalue()


_MARKERS = ("o", "s", "D", "v")  # one marker per onnxruntime thread count
_TORCH_MARKER = "^"


def _plot(data: dict[str, Any], path: Path) -> None:
    """p50 latency against FLOPs, log-log: one colour per model (its points joined by a thin line and
    named once, in its colour), one marker shape per setting (the legend); names are moved apart
    where they would overlap each other or a point."""
    plt = require_matplotlib()
    threads = data["settings"]["threads"]
    settings = _settings(threads, data["torch"] is not None)
    markers = {key: _TORCH_MARKER if key.startswith("torch") else _MARKERS[k % len(_MARKERS)]
               for k, (key, _) in enumerate(settings)}
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(9, 6))
    try:
        names, points = [], []
        for i, r in enumerate(r for r in data["rows"] if any(r.get(f"p50_ms_{key}") for key, _ in settings)):
            colour = colours[i % len(colours)]
            mine = [(key, r[f"p50_ms_{key}"]) for key, _ in settings if r.get(f"p50_ms_{key}")]
            ax.plot([r["flops"]] * len(mine), [y for _, y in mine], color=colour, linewidth=0.8, alpha=0.6,
                    zorder=1)
            for key, y in mine:
                ax.scatter([r["flops"]], [y], s=40, marker=markers[key], color=colour, zorder=3)
                points.append((r["flops"], y))
            names.append(ax.annotate(r["model"], (r["flops"], mine[0][1]), textcoords="offset points",
                                     xytext=(7, -3), fontsize=8, color=colour, zorder=4,
                                     arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.6}))
        for key, label in settings:  # the legend: what each marker shape is
            ax.scatter([], [], s=40, marker=markers[key], color="0.35", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("FLOPs (multiply-adds, log)")
        ax.set_ylabel("p50 latency per image (ms, log)")
        ax.set_title(f"Latency against FLOPs on {data['machine']['slug']} (batch 1, 224x224)\n"
                     f"one colour per model, named at its {settings[0][1]} point")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", title="marker: setting", title_fontsize="small")
        ax.margins(x=0.25, y=0.1)
        fig.tight_layout()
        _spread_labels(fig, ax, names, points)
        with _fsutil.atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png", dpi=120)
    finally:
        plt.close(fig)


def _spread_labels(fig: Any, ax: Any, labels: list[Any], points: list[tuple[float, float]]) -> None:
    """Move labels up (in points), lowest first, until none overlaps another label or a marker."""
    fig.canvas.draw()  # settles the axes limits the data transform depends on
    renderer = fig.canvas.get_renderer()
    to_points = 72.0 / fig.dpi
    half = 5.0 / to_points  # a marker's half size in pixels
    marks = [ax.transData.transform(p) for p in points]

    def overlap(box: Any, x0: float, y0: float, x1: float, y1: float) -> float:
        hit = box.x0 < x1 and x0 < box.x1 and box.y0 < y1 + 2 and y0 < box.y1
        return y1 + 2 - box.y0 if hit else 0.0

    placed = [(x - half, y - half, x + half, y + half) for x, y in marks]
    boxes = [_text_box(label, renderer) for label in labels]
    for b in sorted(range(len(labels)), key=lambda i: boxes[i].y0):  # lowest first, each one placed
        for _ in range(len(placed) + 1):  # above everything it would cover, at most once each
            push = max((overlap(boxes[b], *o) for o in placed), default=0.0)
            if push <= 0:
                break
            x, y = labels[b].xyann
            labels[b].xyann = (x, y + push * to_points)
            boxes[b] = _text_box(labels[b], renderer)
        placed.append((boxes[b].x0, boxes[b].y0, boxes[b].x1, boxes[b].y1))


def _text_box(label: Any, renderer: Any) -> Any:
    """The text's own box: an annotation's extent also spans its leader line to the point."""
    from matplotlib.text import Text

    return Text.get_window_extent(label, renderer)


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _has_matplotlib() -> bool:
    try:
        require_matplotlib()
    except CondenseDeployError:
        return False
    return True


def run_table(options: TableOptions, on_step: Step | None = None,
              on_fraction: Fraction | None = None) -> TableResult:
    """Export or reuse the models, bench them interleaved, write ``<machine>.md/.csv/.json/.png``.

    Every output is checked writable (``force`` to overwrite) before minutes of work start.
    """
    step = on_step or (lambda _m: None)
    fraction = on_fraction or (lambda _l, _f: None)
    models, threads, runs, warmup = _check(options)
    native = _native(options)
    rows = _table_rows(models, options.optimize, native)
    machine = describe_machine()
    out_dir = _fsutil.make_dirs(options.out_dir, "output folder")
    paths = {ext: out_dir / f"{machine['slug']}.{ext}" for ext in ("md", "csv", "json", "png")}
    plot = _has_matplotlib()
    if not plot:
        step("matplotlib is not installed: writing the table without its plot (pip install matplotlib)")
        del paths["png"]
    for path in paths.values():
        _fsutil.check_writable(path, options.force)
    exported = _export(rows, Path(options.onnx_dir or default_onnx_dir()), options.reexport, step)
    labels = [r.label for r in rows]
    ref = model_label(REFERENCE, options.optimize)
    order = [ref, *[m for m in labels if m != ref]] if ref in labels else labels
    load_before = _load_average()
    step(f"benching {len(order)} models with onnxruntime at {', '.join(map(str, threads))} thread(s), "
         f"{runs} runs each, interleaved")
    settings = BenchSettings(threads=threads, batch=1, warmup=warmup, runs=runs)
    bench = run_bench([exported[m]["path"] for m in order], settings,
                      progress=lambda f: fraction("onnxruntime", f)).to_dict()
    names = {str(exported[m]["path"]): m for m in order}
    for r in bench["results"]:  # label rows by zoo name, not by file stem
        r["model"] = names[r["path"]]
    torch_run = None
    if options.torch:
        step(f"benching {len(order)} models with PyTorch eager at 1 thread, {runs} runs each, interleaved")
        by_label = {r.label: r for r in rows if r.optimize == options.optimize}
        torch_run = _torch_bench([by_label[m].name for m in order if m in by_label], runs, warmup, fraction)
        for r in torch_run["results"]:  # the same row names as the onnxruntime columns
            r["model"] = model_label(r["model"], options.optimize)
    data: dict[str, Any] = {
        "schema": TABLE_SCHEMA,
        "tool_version": __version__,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine,
        "settings": {"models": models, "threads": threads, "runs": runs, "warmup": warmup,
                     "optimize": options.optimize, "native": native, "torch": options.torch,
                     "quick": options.quick,
                     "batch": 1, "input_size": [3, 224, 224], "cores_usable": usable_cores()},
        "load_average": {"before": load_before, "after": _load_average()},
        "rows": _rows(rows, exported, bench, torch_run, threads),
        "onnx": {m: {"file": Path(e["path"]).name, "reused": e["reused"]} for m, e in exported.items()},
        "bench": [bench],
        "torch": torch_run,
    }
    markdown = _markdown(data, paths["png"].name if plot else None)
    if plot:
        _plot(data, paths["png"])
    _fsutil.write_json(paths["json"], data)
    _fsutil.write_text(paths["csv"], _csv(data))
    _fsutil.write_text(paths["md"], markdown)
    return TableResult(markdown=markdown, paths=paths, data=data)

