"""The one schema a bench result file must satisfy before ``report`` (or anything else) computes with it.

Result files travel between machines and people, so they are untrusted input: every field the tables,
ratios and plots read is checked for its type and range on load (a latency is a finite number >= 0,
a thread count a whole number >= 1, a model name a non-empty string, ``cpu_features`` a list of
strings), and the first violation is one error naming the file and the field. Fields a reader never
uses (added by a newer version) are let through. Torch-free and dependency-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import CondenseDeployError

__all__ = ["MAX_RESULTS", "validate_report"]

# a bench run is models x thread counts; far more rows than this is a damaged (or hostile) file
MAX_RESULTS = 100_000
_BIG = 2**53  # largest whole number a JSON reader on any platform keeps exactly

Check = Callable[[Any], str | None]  # None when the value is fine, else what was expected


def _number(low: float = 0.0, *, above: bool = False, high: float = math.inf) -> Check:
    """A finite int or float in [low, high] (``above``: low excluded); bool is not a number."""
    bound = f"> {low:g}" if above else f">= {low:g}" if low > -math.inf else "finite"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"a number {bound}"
        if not math.isfinite(value) or (value <= low if above else value < low) or value > high:
            return f"a number {bound}" + (f" and <= {high:g}" if high < math.inf else "")
        return None

    return check


def _whole(low: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _BIG:
            return f"a whole number >= {low}"
        return None

    return check


def _text(nonempty: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or (nonempty and not value.strip()):
            return "a non-empty string" if nonempty else "a string"
        return None

    return check


def _list_of(item: Check, what: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list) or any(item(v) is not None for v in value):
            return what
        return None

    return check


def _profile(value: Any) -> str | None:
    """op type -> {"share": fraction, ...numbers}: what ``_top_ops`` formats."""
    share = _number(0.0, high=1.0)
    if not isinstance(value, dict) or any(
        not isinstance(op, str) or not isinstance(v, dict) or share(v.get("share")) is not None
        or any(_number(-math.inf)(x) is not None for x in v.values())
        for op, v in value.items()
    ):
        return "an object of op type -> {share: a fraction, ...numbers}"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


_LATENCY = _number(0.0)
_OPTIONAL_TEXT = _text()

# field -> check; a field listed in _REQUIRED must be present (and not null), any other may be null
_RESULT: dict[str, Check] = {
    "model": _text(nonempty=True),
    "path": _OPTIONAL_TEXT,
    "file_size_bytes": _whole(0),
    "input_name": _OPTIONAL_TEXT,
    "input_shape": _list_of(_whole(0), "a list of whole numbers"),
    "batch": _whole(1),
    "threads": _whole(1),
    "graph_opt_level": _OPTIONAL_TEXT,
    "warmup": _whole(0),
    "runs": _whole(1),
    **{f"latency_{k}_ms": _LATENCY for k in ("min", "mean", "std", "p50", "p90", "p99", "max")},
    "throughput_ips": _number(0.0),
    "session_create_ms": _number(0.0),
    "first_inference_ms": _number(0.0),
    "peak_rss_mb": _number(0.0),
    "rss_growth_mb": _number(-math.inf),  # a resident set can shrink
    "ratio_to_first": _number(0.0, above=True),
    "paired_ratio_to_first": _number(0.0, above=True),
    "profile": _profile,
}
_REQUIRED = ("model", "threads", "batch", "latency_p50_ms", "latency_mean_ms", "latency_p90_ms")

_MACHINE: dict[str, Check] = {
    **{k: _OPTIONAL_TEXT for k in ("slug", "hostname", "arch", "cpu_model", "board", "emulated_on",
                                   "governor", "os", "python", "onnxruntime", "numpy")},
    **{k: _whole(0) for k in ("cores_logical", "cores_physical", "cores_usable", "python_bits")},
    **{k: _number(0.0) for k in ("cur_mhz", "min_mhz", "max_mhz")},
    "temperature_c": _number(-math.inf),
    "cpu_features": _list_of(_text(), "a list of strings"),
}

_SETTINGS: dict[str, Check] = {
    "threads": _list_of(_whole(1), "a list of whole numbers >= 1"),
    "batch": _whole(1),
    "warmup": _whole(0),
    "runs": _whole(1),
    "duration_s": _number(0.0, above=True),
    "graph_opt_level": _OPTIONAL_TEXT,
    "profile": _boolean,
    "seed": _whole(0),
    "memory": _OPTIONAL_TEXT,
}


def _check_fields(data: Mapping[str, Any], schema: Mapping[str, Check], where: str) -> None:
    for key, check in schema.items():
        value = data.get(key)
        if value is None:
            continue
        expected = check(value)
        if expected is not None:
            raise CondenseDeployError(f"{where}: {key} is {_shown(value)}, expected {expected}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_report(report: Any, path: str | Path) -> None:
    """Raise one ``CondenseDeployError`` naming ``path`` and the field unless ``report`` is a bench
    report every reader can use as it is."""
    if not isinstance(report, dict) or not isinstance(report.get("machine"), dict):
        raise CondenseDeployError(f"{path}: no 'machine' in the bench result")
    if not isinstance(report.get("results"), list):
        raise CondenseDeployError(f"{path}: no 'results' list in the bench result")
    if len(report["results"]) > MAX_RESULTS:
        raise CondenseDeployError(f"{path}: {len(report['results'])} results; at most {MAX_RESULTS} are read")
    for key in ("created", "tool_version"):
        if report.get(key) is not None and not isinstance(report[key], str):
            raise CondenseDeployError(f"{path}: {key} is {_shown(report[key])}, expected a string")
    _check_fields(report["machine"], _MACHINE, f"{path}: machine")
    settings = report.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            raise CondenseDeployError(f"{path}: settings is {_shown(settings)}, expected an object")
        _check_fields(settings, _SETTINGS, f"{path}: settings")
    for k, result in enumerate(report["results"]):
        if not isinstance(result, dict):
            raise CondenseDeployError(f"{path}: result {k} is {_shown(result)}, expected an object")
        missing = [key for key in _REQUIRED if result.get(key) is None]
        if missing:
            raise CondenseDeployError(f"{path}: result {k} has no {', '.join(missing)}")
        _check_fields(result, _RESULT, f"{path}: result {k}")
