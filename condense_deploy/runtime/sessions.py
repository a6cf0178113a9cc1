"""The one place onnxruntime sessions are made. onnxruntime + numpy only (no onnx, no torch).

``create_session(model, threads=...)`` takes a path, serialized bytes or an ``onnx.ModelProto``
(anything with ``SerializeToString``) and builds its options with ``session_options``: latency
settings (sequential execution, one inter-op thread), the graph optimization level, spinning,
flush-to-zero and profiling. Custom-op libraries are registered here and nowhere else: explicitly
with ``custom_op_libraries=``, and automatically for every domain in ``CUSTOM_OP_LIBRARIES`` that
the model imports (see ``libraries_for``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Union

from ..errors import CondenseDeployError, first_line
from ..libcheck import library_problem
from ..native import contract as native_contract
from ..native import library as native_library
from ..native.precision import fp16_refusal

__all__ = [
    "CUSTOM_OP_LIBRARIES",
    "GRAPH_OPT_LEVELS",
    "ModelSource",
    "create_session",
    "libraries_for",
    "random_feeds",
    "run_session",
    "session_options",
]

GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
DEFAULT_LOAD_ERROR = "onnxruntime cannot load the model: {reason}"


class _Serializable(Protocol):
    def SerializeToString(self) -> bytes: ...  # noqa: N802 - protobuf's name


ModelSource = Union[str, "os.PathLike[str]", bytes, _Serializable]

# Custom-op domain -> the shared library implementing it (a path, or a function that finds it and
# raises one clear error when it is not built). Every session whose model imports one of these
# domains registers that library; nothing else in the package calls register_custom_ops_library.
CUSTOM_OP_LIBRARIES: dict[str, str | Callable[[], str]] = {
    native_contract.DOMAIN: native_library.library_path}


def _ort() -> Any:
    import onnxruntime

    return onnxruntime


# onnxruntime logs through its own logger (to stderr, in colour) before it raises; our sessions log only
# fatal errors, so the reason reaches the user once, in our one ``Error:`` line
QUIET = 4


def session_options(threads: int | None = 1, *, spinning: bool | None = None, denormal_as_zero: bool = False,
                    graph_opt_level: str = "all", profile_prefix: str | None = None,
                    optimized_model_path: str | None = None, log_severity: int | None = QUIET) -> Any:
    """onnxruntime SessionOptions for latency: ``graph_opt_level`` graph optimizations (``all``:
    NCHWc layout, fusions), ``threads`` intra-op threads (None: onnxruntime's default), sequential
    execution; optional spin control, flush-to-zero, profiling and saving the optimized graph.
    ``log_severity`` is onnxruntime's (0 verbose .. 4 fatal; None: its default): quiet by default,
    because whatever it would log as an error also comes back as the exception we report."""
    ort = _ort()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if graph_opt_level not in levels:
        raise CondenseDeployError(f"graph optimization level {graph_opt_level!r}: "
                                  f"expected one of {', '.join(GRAPH_OPT_LEVELS)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[graph_opt_level]
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if log_severity is not None:
        options.log_severity_level = log_severity
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if denormal_as_zero:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_model_path is not None:
        options.optimized_model_filepath = optimized_model_path
    return options


def libraries_for(model: ModelSource,
                  registry: Mapping[str, str | Callable[[], str]] | None = None) -> list[str]:
    """The custom-op libraries (from ``CUSTOM_OP_LIBRARIES``) whose domain ``model`` imports.

    Without onnx the check is on the serialized bytes (a domain name is stored verbatim in the
    model's opset imports); registering a library a model does not need is harmless.
    """
    registry = CUSTOM_OP_LIBRARIES if registry is None else registry
    if not registry:
        return []
    if isinstance(model, (str, os.PathLike)):
        data = Path(model).read_bytes()
    elif isinstance(model, bytes):
        data = model
    else:
        data = model.SerializeToString()
    return [library() if callable(library) else library
            for domain, library in registry.items() if domain.encode() in data]


def create_session(model: ModelSource, threads: int | None = 1, *, options: Any = None,
                   custom_op_libraries: Sequence[str] = (),
                   load_error: str | Callable[[BaseException], str] = DEFAULT_LOAD_ERROR,
                   **option_kwargs: Any) -> Any:
    """An onnxruntime CPU InferenceSession for ``model`` (path, bytes or ModelProto).

    Options come from ``session_options(threads, **option_kwargs)`` unless ``options`` is given.
    ``custom_op_libraries`` plus ``libraries_for(model)`` are registered on the options. A model
    onnxruntime cannot load raises ``CondenseDeployError`` with ``load_error`` formatted with the
    error's first line as ``reason`` (or, when callable, called with the exception).
    """
    if options is None:
        options = session_options(threads, **option_kwargs)
    libraries = list(dict.fromkeys([*custom_op_libraries, *libraries_for(model)]))
    for library in libraries:
        # dlopen's text for another architecture is "No such file": read the file's own header first;
        # an older runtime cannot give the library its API and would blame the model instead
        problem = ((library_problem(library) or native_library.api_problem(library))
                   if Path(library).exists() else None)
        if problem is not None:
            raise CondenseDeployError(
                f"cannot load the custom-op library: {problem}; {native_library.BUILD_HINT}")
        try:
            options.register_custom_ops_library(library)
        except Exception as e:  # onnxruntime's Fail when the file is missing or not a library for it
            raise CondenseDeployError(f"{library}: onnxruntime cannot load this custom-op library "
                                      f"({first_line(e)}); {native_library.BUILD_HINT}") from e
    ort = _ort()
    source: Any = os.fspath(model) if isinstance(model, (str, os.PathLike)) else model
    if not isinstance(source, (str, bytes)):
        source = source.SerializeToString()
    if libraries:  # what the library cannot see (an attribute it does not read) is checked here
        from ..native.audit import contract_problem

        data = Path(source).read_bytes() if isinstance(source, str) else source
        problem = contract_problem(data) if native_contract.DOMAIN.encode() in data else None
        if problem is not None:
            error = CondenseDeployError(problem)
            raise CondenseDeployError(load_error(error) if callable(load_error)
                                      else load_error.format(reason=problem))
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail, ...)
        refusal = fp16_refusal(first_line(e))
        if refusal is not None and isinstance(model, (str, os.PathLike)):
            raise CondenseDeployError(f"{model}: this CPU cannot run it: {refusal}") from e
        message = load_error(e) if callable(load_error) else load_error.format(reason=first_line(e))
        raise CondenseDeployError(message) from e


def run_session(session: Any, feeds: dict[str, Any], where: str, outputs: Sequence[str] | None = None) -> Any:
    """``session.run`` whose failure (an index out of range, a shape the model cannot take) is one
    ``CondenseDeployError`` line: ``{where}: onnxruntime cannot run it ({reason})``."""
    try:
        return session.run(None if outputs is None else list(outputs), feeds)
    except Exception as e:  # onnxruntime's pybind types (Fail, InvalidArgument, RuntimeException, ...)
        raise CondenseDeployError(f"{where}: onnxruntime cannot run it ({first_line(e)})") from e


def random_feeds(session: Any, seed: int = 0, batch: int = 1) -> dict[str, Any]:
    """Standard-normal float32 inputs for every input of ``session`` (symbolic dims -> ``batch``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for info in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else batch for d in info.shape]
        feeds[info.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds
