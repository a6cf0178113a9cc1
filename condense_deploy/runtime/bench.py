"""Latency of .onnx models under onnxruntime on this CPU, measured so that comparisons hold.

Several models in one call run interleaved (A B A B ...): on a noisy or throttling machine (a shared
VM, a Raspberry Pi warming up) every model sees the same conditions, so the ratio of each model to
the first holds even when absolute times drift. This module needs only onnxruntime and numpy: it
never imports torch or onnx, so it runs on a board with the runtime install.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import CondenseDeployError, first_line
from .machine import describe_machine, usable_cores
from .sessions import GRAPH_OPT_LEVELS, create_session, session_options
from .timing import interleaved

__all__ = [
    "DEFAULT_RUNS",
    "GRAPH_OPT_LEVELS",
    "SCHEMA",
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "latency_stats",
    "parse_threads",
    "peak_rss_mb",
    "roll_up_profile",
    "run_bench",
]

SCHEMA = "condense-deploy/bench-v1"
DEFAULT_RUNS = 100
_PROFILE_RUNS = 20  # profiled runs per model: enough for stable shares, short even for VGG-16

Progress = Callable[[float], None]


@dataclass
class BenchSettings:
    """What to measure. ``runs`` or ``duration_s`` (seconds per model), not both; neither means
    ``DEFAULT_RUNS`` runs."""

    threads: list[int] = field(default_factory=lambda: [1])
    batch: int = 1
    warmup: int = 10
    runs: int | None = None
    duration_s: float | None = None
    graph_opt_level: str = "all"
    profile: bool = False
    seed: int = 0

    def check(self) -> None:
        if not self.threads or any(t < 1 for t in self.threads):
            raise CondenseDeployError(f"threads {self.threads}: each thread count must be >= 1")
        if self.batch < 1:
            raise CondenseDeployError(f"batch {self.batch}: must be >= 1")
        if self.warmup < 0:
            raise CondenseDeployError(f"warmup {self.warmup}: must be >= 0")
        if self.runs is not None and self.duration_s is not None:
            raise CondenseDeployError("give either runs or a duration, not both")
        if self.runs is not None and self.runs < 1:
            raise CondenseDeployError(f"runs {self.runs}: must be >= 1")
        if self.duration_s is not None and not self.duration_s > 0:
            raise CondenseDeployError(f"duration {self.duration_s}: must be > 0 seconds")
        if self.graph_opt_level not in GRAPH_OPT_LEVELS:
            raise CondenseDeployError(f"graph optimization level {self.graph_opt_level!r}: "
                                      f"expected one of {', '.join(GRAPH_OPT_LEVELS)}")


    def to_args(self, threads: str | None = None) -> list[str]:
        """These settings as ``condense-deploy bench`` options (what a remote machine is given);
        ``threads`` replaces the counts by a text the other machine parses (``all``: its cores)."""
        text = threads if threads is not None else ",".join(str(t) for t in self.threads)
        args = ["--threads", text, "--batch", str(self.batch), "--warmup", str(self.warmup),
                "--graph-opt-level", self.graph_opt_level]
        if self.duration_s is not None:
            args += ["--duration", repr(self.duration_s)]
        else:
            args += ["--runs", str(self.runs or DEFAULT_RUNS)]
        if self.profile:
            args.append("--profile")
        return args


@dataclass
class BenchResult:
    """One model at one thread count. Times in milliseconds; ``peak_rss_mb`` is this model's own peak
    resident set: measured in a child process that loads only this model (interpreter, onnxruntime,
    the session and one inference), so models benched together get figures that can be told apart;
    ``rss_growth_mb`` is how much the bench process's resident set grew while this model's session
    was created and first run (earlier sessions share that process)."""

    model: str
    path: str
    file_size_bytes: int
    input_name: str
    input_shape: list[int]
    batch: int
    threads: int
    graph_opt_level: str
    warmup: int
    runs: int
    latency_min_ms: float
    latency_mean_ms: float
    latency_std_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    throughput_ips: float
    session_create_ms: float
    first_inference_ms: float
    peak_rss_mb: float | None
    rss_growth_mb: float | None
    ratio_to_first: float
    paired_ratio_to_first: float
    profile: dict[str, dict[str, float]] | None = None


@dataclass
class BenchReport:
    """A whole ``bench`` call: the machine, the settings, one result per model x thread count."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[BenchResult]
    created: str = ""
    tool_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the same dict ``--json`` writes and ``--remote`` brings back)."""
        return {
            "schema": SCHEMA,
            "tool_version": self.tool_version,
            "created": self.created,
            "machine": self.machine,
            "settings": self.settings,
            "results": [asdict(r) for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "bench report") -> BenchReport:
        """The report ``to_dict`` wrote (``to_dict(from_dict(d)) == d``, keys in the same order);
        anything else is a one-line error naming ``where``."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            schema = data.get("schema") if isinstance(data, dict) else None
            raise CondenseDeployError(f"{where}: schema {schema!r} is not {SCHEMA!r}")
        try:
            results = [BenchResult(**r) for r in data["results"]]
            return cls(machine=dict(data["machine"]), settings=dict(data["settings"]), results=results,
                       created=str(data["created"]), tool_version=str(data["tool_version"]))
        except (KeyError, TypeError) as e:
            raise CondenseDeployError(f"{where}: not a complete {SCHEMA} report ({e})") from e


# more intra-op threads than this is a typo on any machine we bench (beyond the cores: a warning)
MAX_THREADS = 256


def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; ``all`` is every core this process may use."""
    counts: list[int] = []
    for word in text.split(","):
        word = word.strip().lower()
        if not word:
            continue
        if word == "all":
            counts.append(usable_cores())
            continue
        try:
            value = int(word)
        except ValueError as e:
            raise CondenseDeployError(f"threads {text!r}: {word!r} is not a whole number or 'all'") from e
        if not 1 <= value <= MAX_THREADS:
            raise CondenseDeployError(f"threads {text!r}: {value} must be in 1..{MAX_THREADS}")
        counts.append(value)
    if not counts:
        raise CondenseDeployError(f"threads {text!r}: no thread count given")
    return list(dict.fromkeys(counts))


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """min, mean, std (population), p50, p90, p99, max of a list of latencies, in ms."""
    a = np.asarray(times_ms, dtype=np.float64)
    if a.size == 0:
        raise CondenseDeployError("no timed runs to summarise")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "min": float(a.min()), "mean": float(a.mean()), "std": float(a.std()),
        "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max()),
    }


def peak_rss_mb() -> float | None:
    """The process's peak resident set size in MiB (getrusage high-water mark), None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _image_peak_rss_mb() -> float | None:
    """Peak RSS of this process image (VmHWM, reset at exec). getrusage's ru_maxrss is not: Linux
    carries the parent's high-water mark across fork + exec, so a child of a big process reports it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return peak_rss_mb()


def _current_rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


MEMORY_NOTE = "peak RSS: each model alone in a child process (interpreter + onnxruntime + its session)"


def measure_peak_rss(path: Path, settings: BenchSettings, threads: int) -> float | None:
    """Peak RSS (MiB) of a fresh process that opens only ``path`` and runs it once; None if unknown.

    A process's high-water mark cannot be split between the sessions it holds, so each model's
    figure comes from its own child.
    """
    import subprocess

    code = ("import sys, json; from pathlib import Path; from condense_deploy.runtime import bench as b; "
            "s = b.BenchSettings(threads=[int(sys.argv[2])], batch=int(sys.argv[3]), warmup=0, runs=1, "
            "graph_opt_level=sys.argv[4]); b._open('m', Path(sys.argv[1]), s, int(sys.argv[2])); "
            "print(json.dumps(b._image_peak_rss_mb()))")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path), str(threads), str(settings.batch),
                               settings.graph_opt_level], capture_output=True, text=True, timeout=600)
        return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, ValueError, IndexError, TypeError, subprocess.TimeoutExpired):
        return None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CondenseDeployError(f"{path}: no such file")
    if not path.is_file():
        raise CondenseDeployError(f"{path}: is not a file")


def _open_session(path: Path, options: Any) -> Any:
    return create_session(path, options=options,
                          load_error=f"{path}: onnxruntime cannot load it as an ONNX model ({{reason}})")


def _input_feed(session: Any, path: Path, batch: int,
                seed: int) -> tuple[str, list[int], dict[str, np.ndarray]]:
    """A random float32 N,3,H,W batch for the model's one image input; any other input is an error."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise CondenseDeployError(f"{path}: expected one image input, found {len(inputs)} ({names})")
    spec = inputs[0]
    shape = list(spec.shape)
    where = f"{path}: input {spec.name!r}"
    if spec.type != "tensor(float)":
        raise CondenseDeployError(f"{where} is {spec.type}, expected tensor(float) N,3,H,W")
    if len(shape) != 4:
        raise CondenseDeployError(f"{where} has shape {shape}, expected N,3,H,W (rank 4)")
    n, c, h, w = shape
    if c != 3:
        raise CondenseDeployError(f"{where} has {c} channels (shape {shape}), expected N,3,H,W")
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        raise CondenseDeployError(f"{where} has no fixed height/width (shape {shape}); export a fixed size")
    if isinstance(n, int) and n > 0 and n != batch:
        raise CondenseDeployError(f"{where} has a fixed batch of {n}; --batch {batch} asked")
    full = [batch, 3, h, w]
    data = np.random.default_rng(seed).standard_normal(full, dtype=np.float32)
    return spec.name, full, {spec.name: data}


@dataclass
class _Open:
    """A session being measured, with what was learnt while opening it."""

    label: str
    path: Path
    session: Any
    feed: dict[str, np.ndarray]
    input_name: str
    input_shape: list[int]
    create_ms: float
    first_ms: float
    rss_growth_mb: float | None
    times_ms: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None


def _run(session: Any, feed: dict[str, np.ndarray], path: Path) -> None:
    try:
        session.run(None, feed)
    except Exception as e:
        raise CondenseDeployError(f"{path}: inference failed ({first_line(e)})") from e


def _open(label: str, path: Path, settings: BenchSettings, threads: int) -> _Open:
    rss_before = _current_rss_mb()
    start = time.perf_counter()
    session = _open_session(path, _session_options(settings, threads))
    create_ms = (time.perf_counter() - start) * 1e3
    name, shape, feed = _input_feed(session, path, settings.batch, settings.seed)
    start = time.perf_counter()
    _run(session, feed, path)
    first_ms = (time.perf_counter() - start) * 1e3
    rss_after = _current_rss_mb()
    growth = None if rss_before is None or rss_after is None else round(rss_after - rss_before, 1)
    return _Open(label, path, session, feed, name, shape, create_ms, first_ms, growth)


def _session_options(settings: BenchSettings, threads: int, profile_prefix: str | None = None) -> Any:
    return session_options(threads, graph_opt_level=settings.graph_opt_level, profile_prefix=profile_prefix)


def _timed_rounds(opened: list[_Open], settings: BenchSettings, report: Callable[[float], None]) -> None:
    """Rounds of one run per model, in turn (A B A B ...), until the run count or time budget is met."""
    budget = None if settings.duration_s is None else settings.duration_s * len(opened)
    runs = settings.runs if settings.runs is not None else (None if budget else DEFAULT_RUNS)
    calls = [lambda item=item: item.session.run(None, item.feed) for item in opened]
    samples = interleaved(calls, rounds=runs, budget_s=budget, progress=report)
    for item, times in zip(opened, samples, strict=True):
        item.times_ms.extend(times)


def roll_up_profile(profile_json: str | os.PathLike[str],
                    last_runs: int | None = None) -> dict[str, dict[str, float]]:
    """onnxruntime's profile (Chrome trace JSON) -> per op type: ms per run and share of kernel time,
    largest first. Only kernel events count (session set-up and fences are left out); with
    ``last_runs``, only the kernels of the last that many runs (so warm-up runs are left out)."""
    try:
        events = json.loads(Path(profile_json).read_text())
    except (OSError, ValueError) as e:
        raise CondenseDeployError(f"{profile_json}: cannot read onnxruntime profile ({e})") from e
    if not isinstance(events, list):
        raise CondenseDeployError(f"{profile_json}: not an onnxruntime profile (expected a list of events)")
    windows = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events
                     if e.get("cat") == "Session" and e.get("name") == "model_run" and "ts" in e)
    if last_runs is not None and windows:
        windows = windows[-last_runs:]
    runs = max(len(windows), 1)
    per_op: dict[str, float] = {}
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        ts = float(event.get("ts", 0))
        if windows and not any(lo <= ts <= hi for lo, hi in windows):
            continue
        op = event.get("args", {}).get("op_name", "?")
        per_op[op] = per_op.get(op, 0.0) + float(event.get("dur", 0))
    total = sum(per_op.values())
    return {
        op: {"ms_per_run": round(us / 1e3 / runs, 4), "share": round(us / total, 4) if total else 0.0}
        for op, us in sorted(per_op.items(), key=lambda kv: (-kv[1], kv[0]))
    }


def _profile(item: _Open, settings: BenchSettings, threads: int, runs: int) -> dict[str, dict[str, float]]:
    """A separate profiled session, so profiling overhead never touches the timed runs; its warm-up
    runs are profiled too but left out of the roll-up."""
    with tempfile.TemporaryDirectory(prefix="condense-deploy-profile-") as folder:
        options = _session_options(settings, threads, profile_prefix=str(Path(folder) / "profile"))
        session = _open_session(item.path, options)
        for _ in range(1 + min(settings.warmup, 3) + runs):
            _run(session, item.feed, item.path)
        trace = session.end_profiling()
        return roll_up_profile(trace, last_runs=runs)


def _labels(paths: list[Path]) -> list[str]:
    """File stems, or the given paths where stems repeat, with #2, #3 ... for a file given twice."""
    stems = [p.stem for p in paths]
    labels = [p.stem if stems.count(p.stem) == 1 else str(p) for p in paths]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


def _result(item: _Open, first: _Open, settings: BenchSettings, threads: int,
            profile: dict[str, dict[str, float]] | None) -> BenchResult:
    stats = latency_stats(item.times_ms)
    first_stats = latency_stats(first.times_ms)
    paired = np.median(np.asarray(item.times_ms) / np.asarray(first.times_ms))
    return BenchResult(
        model=item.label,
        path=str(item.path),
        file_size_bytes=item.path.stat().st_size,
        input_name=item.input_name,
        input_shape=item.input_shape,
        batch=settings.batch,
        threads=threads,
        graph_opt_level=settings.graph_opt_level,
        warmup=settings.warmup,
        runs=len(item.times_ms),
        # ns resolution: a tiny model takes tens of microseconds, and throughput must follow
        # from the reported mean to better than 0.1%
        latency_min_ms=round(stats["min"], 6),
        latency_mean_ms=round(stats["mean"], 6),
        latency_std_ms=round(stats["std"], 6),
        latency_p50_ms=round(stats["p50"], 6),
        latency_p90_ms=round(stats["p90"], 6),
        latency_p99_ms=round(stats["p99"], 6),
        latency_max_ms=round(stats["max"], 6),
        throughput_ips=round(settings.batch * 1e3 / stats["mean"], 3),
        session_create_ms=round(item.create_ms, 3),
        first_inference_ms=round(item.first_ms, 3),
        peak_rss_mb=item.peak_rss_mb,
        rss_growth_mb=item.rss_growth_mb,
        ratio_to_first=round(stats["p50"] / first_stats["p50"], 4),
        paired_ratio_to_first=round(float(paired), 4),
        profile=profile,
    )


def run_bench(models: Sequence[str | os.PathLike[str]], settings: BenchSettings | None = None,
              progress: Progress | None = None) -> BenchReport:
    """Measure every model at every thread count, interleaved, and return the report.

    For each thread count: open one session per model (timing creation and the first inference),
    warm them up in turn, then time rounds of one run per model (A B A B ...). ``progress`` gets the
    fraction done (0..1) now and then. Bad input (missing file, not ONNX, not an N,3,H,W float
    input) raises ``CondenseDeployError`` before any timing starts.
    """
    settings = settings or BenchSettings()
    settings.check()
    paths = [Path(m) for m in models]
    if not paths:
        raise CondenseDeployError("no model to bench")
    for path in paths:
        _check_file(path)
    labels = _labels(paths)
    report = progress or (lambda fraction: None)
    results: list[BenchResult] = []
    n_settings = len(settings.threads)
    for index, threads in enumerate(settings.threads):
        def step(fraction: float, index: int = index) -> None:
            report((index + fraction) / n_settings)

        opened: list[_Open] = []
        for k, (label, path) in enumerate(zip(labels, paths, strict=True)):
            opened.append(_open(label, path, settings, threads))
            step(0.1 * (k + 1) / len(paths))
        for w in range(settings.warmup):
            for item in opened:
                item.session.run(None, item.feed)
            step(0.1 + 0.1 * (w + 1) / settings.warmup)
        _timed_rounds(opened, settings, functools.partial(_scaled, step, 0.2, 0.75))
        profile_runs = min(len(opened[0].times_ms), _PROFILE_RUNS)
        for item in opened:  # after timing, so the children never disturb it
            item.peak_rss_mb = measure_peak_rss(item.path, settings, threads)
        for item in opened:
            profile = _profile(item, settings, threads, profile_runs) if settings.profile else None
            results.append(_result(item, opened[0], settings, threads, profile))
        step(1.0)
        del opened  # free this thread count's sessions before the next ones are created
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return BenchReport(machine=describe_machine(), settings=_settings_dict(settings), results=results,
                       created=created)


def _scaled(report: Progress, start: float, width: float, fraction: float) -> None:
    report(start + width * fraction)


def _settings_dict(settings: BenchSettings) -> dict[str, Any]:
    data = asdict(settings)
    if data["runs"] is None and data["duration_s"] is None:
        data["runs"] = DEFAULT_RUNS
    data["memory"] = MEMORY_NOTE
    return data
