"""ONNX export that is checked, simplified, optimized and verified against PyTorch before it is kept.

Three pieces, as in Optimum's exporter: a declarative spec (``SPEC``: names, dynamic batch, opset,
tolerance; a zoo model's card sets its own opset and tolerance, ``export_config``), the export itself
(``export_onnx``), and validation that reopens the written file in onnxruntime (``validate_onnx``).
The file is built at a temp path beside the target and replaces it only after every check passed, so
a failed export leaves neither a half-written nor an unverified file (and an existing file survives
byte for byte). ``pipeline.export_source`` / ``verify_source`` are what the CLI calls: load any
checkpoint or zoo name, convert a training-form CondenseNet, record where the weights came from in
the file's ``metadata_props``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from . import __version__
from ._fsutil import atomic_path, check_writable
from .architectures.registry import export_settings
from .errors import FULL_INSTALL, CondenseDeployError, first_line, missing_dependency
from .graph.metadata import META, read_metadata
from .graph.recipes import MODES

__all__ = [
    "EXPORTERS",
    "META",
    "SPEC",
    "ExportResult",
    "OnnxExportSpec",
    "compare_fp16_with_torch",
    "export_config",
    "export_onnx",
    "read_metadata",
    "validate_onnx",
]

EXPORTERS = ("torchscript", "dynamo")


@dataclass(frozen=True)
class OnnxExportSpec:
    """What every exported file looks like and how it is checked. ``opset`` and ``atol`` are for a
    model without a card (a checkpoint of an architecture outside the zoo); a zoo model's card
    sets its own (``export_config``)."""

    input_name: str = "input"
    output_name: str = "logits"
    batch_dim: str = "batch"
    opset: int = 17
    min_opset: int = 13  # Gather/Reshape/BN forms we rely on; older runtimes are out of scope
    atol: float = 1e-4
    validate_batches: tuple[int, ...] = (1, 3)
    trace_batch: int = 2  # >= 2 so no exporter specialises the batch dimension to 1
    seed: int = 0


SPEC = OnnxExportSpec()
# a fixed batch beyond this is a typo: the export traces, runs and validates at that batch size
MAX_BATCH = 4096


def export_config(card: str | None) -> tuple[int, float]:
    """The opset and the validation atol for the model of zoo name ``card``: its card's ``export``
    field; ``SPEC``'s for a model without a card (None)."""
    return (SPEC.opset, SPEC.atol) if card is None else export_settings(card)

Step = Callable[[str], None]
Progress = Callable[[int, int], None]  # (done, total) of a long step: tuning


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote and how it was proven."""

    path: str
    opset: int
    exporter: str
    batch: str | int
    simplified: bool
    optimize: dict[str, Any]
    max_abs_diff: dict[int, float]
    atol: float
    size_bytes: int
    nodes: int
    seconds: float
    metadata: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"  # the DenseBlocks' arithmetic (fp16: verified at fp32, see ``fp16``)
    fp16: dict[str, Any] | None = None  # fp16 vs PyTorch where this CPU ran it, else why not

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_abs_diff"] = {str(k): v for k, v in self.max_abs_diff.items()}
        return data


# ------------------------------------------------------------------------------------------ export


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_size: tuple[int, int, int] | list[int],
    opset: int = SPEC.opset,
    batch: str | int = "dynamic",
    simplify: bool = True,
    exporter: str = "torchscript",
    optimize: str = "fast",
    metadata: dict[str, Any] | None = None,
    force: bool = False,
    atol: float = SPEC.atol,
    on_step: Step | None = None,
    on_progress: Progress | None = None,
    precision: str = "fp32",
) -> ExportResult:
    """Export ``model`` to ``path``: export, full check, simplify, optimize, store metadata, then
    validate the file in onnxruntime against PyTorch; only a file that passes replaces ``path``.

    ``batch`` is ``"dynamic"`` (a symbolic batch axis, validated at batch 1 and 3) or a fixed size
    (validated at that size). ``metadata`` values are stored as strings (JSON for non-strings).
    Raises ``CondenseDeployError`` on bad options, on any failed step, and when the largest absolute
    difference exceeds ``atol``.

    ``precision="fp16"`` (``optimize="native"`` only) makes every DenseBlock compute in ARMv8.2 FP16
    arithmetic. Such a graph is verified against PyTorch at fp32 (the same graph with only the blocks'
    precision changed, within ``atol``: that proves the rewrite); its fp16 outputs are then compared
    with PyTorch where this CPU has FP16 arithmetic (``ExportResult.fp16``, not held to ``atol``:
    fp16 keeps 11 significant bits), and ``fp16`` says why not where it has not (no x86 CPU has it).
    """
    started = time.perf_counter()
    step = on_step or (lambda _message: None)
    input_size = _check_input_size(input_size)
    fixed_batch = check_options(opset, batch, exporter, optimize, precision)
    batch = fixed_batch or "dynamic"  # "2" -> 2 in the result and the metadata
    target = check_writable(path, force)
    _check_memory(model, input_size, fixed_batch)
    was_training = model.training
    model.eval()
    try:
        with atomic_path(target, overwrite=force) as tmp:
            step(f"exporting with the {exporter} exporter (opset {opset})")
            _torch_export(model, tmp, target, input_size, opset, fixed_batch, exporter)
            proto = _load(tmp, target)
            _full_check(proto, target, "after export")
            if simplify:
                step("simplifying with onnxsim")
                proto = _simplify(proto, target)
                _full_check(proto, target, "after onnxsim")
            _check_batch_axis(proto, fixed_batch, target)
            report: dict[str, Any] = {"mode": "none"}
            if optimize != "none":
                step(f"optimizing for onnxruntime ({optimize})")
                proto, report = _optimize(proto, optimize, on_progress, precision)
                _check_batch_axis(proto, fixed_batch, target)
            props = {
                **{k: _as_text(v) for k, v in (metadata or {}).items()},
                META + "version": __version__,
                META + "export": json.dumps({"exporter": exporter, "opset": opset, "batch": batch,
                                             "simplified": simplify, "torch": torch.__version__}),
                META + "optimize": json.dumps(report, sort_keys=True),
            }
            _set_metadata(proto, props)
            _save(proto, tmp, target)
            batches = (fixed_batch,) if fixed_batch else SPEC.validate_batches
            fp16: dict[str, Any] | None = None
            if precision == "fp32":
                step("validating in onnxruntime against PyTorch")
                diffs = validate_onnx(tmp, model, input_size, atol, batches=batches, label=str(target))
            else:
                from .graph.native import with_precision

                step("validating the same graph at fp32 in onnxruntime against PyTorch")
                diffs = validate_onnx(with_precision(proto, "fp32").SerializeToString(), model, input_size,
                                      atol, batches=batches, label=f"{target} (at fp32)")
                step("comparing the fp16 blocks with PyTorch")
                fp16 = compare_fp16_with_torch(proto, model, input_size, max(batches), target)
            verification: dict[str, Any] = {
                "reference": f"torch {torch.__version__}", "atol": atol,
                "max_abs_diff": {f"batch_{b}": d for b, d in diffs.items()}}
            if fp16 is not None:
                verification["verified_at"] = "fp32"
                verification["fp16"] = fp16
            props[META + "verification"] = json.dumps(verification)
            _set_metadata(proto, props)
            _save(proto, tmp, target)
            nodes = len(proto.graph.node)
    finally:
        model.train(was_training)
    return ExportResult(
        path=str(target), opset=opset, exporter=exporter, batch=batch, simplified=simplify, optimize=report,
        max_abs_diff=diffs, atol=atol, size_bytes=target.stat().st_size, nodes=nodes,
        seconds=time.perf_counter() - started, metadata=props, precision=precision, fp16=fp16,
    )


def compare_fp16_with_torch(proto: onnx.ModelProto, model: nn.Module, input_size: tuple[int, int, int],
                            batch: int, target: Path) -> dict[str, Any]:
    """The fp16 graph's logits against PyTorch's on one random batch, where this CPU runs fp16
    (``{"ran": False, "why": ...}`` elsewhere)."""
    from .graph.fp16_check import compare_fp16, fp16_not_run

    why = fp16_not_run()
    if why is not None:
        return {"ran": False, "why": why}
    generator = torch.Generator().manual_seed(SPEC.seed + 2)
    x = torch.randn(batch, *input_size, generator=generator)
    with torch.no_grad():
        reference = model(x).numpy()
    return compare_fp16(proto, {SPEC.input_name: x.numpy()}, [reference], f"{target} (fp16)")


def _check_input_size(input_size: tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    size = [int(n) for n in input_size]
    if len(size) != 3 or min(size) < 1:
        raise CondenseDeployError(f"input_size must be (channels, height, width), not {list(input_size)}")
    return size[0], size[1], size[2]


def check_options(opset: int, batch: str | int, exporter: str, optimize: str, precision: str = "fp32") -> int:
    """Validate the options before any work; returns the fixed batch size, or 0 for dynamic."""
    from .graph.optimize import check_precision

    newest = onnx.defs.onnx_opset_version()
    if not SPEC.min_opset <= opset <= newest:
        raise CondenseDeployError(f"opset {opset} is not supported: use {SPEC.min_opset}..{newest}")
    if exporter not in EXPORTERS:
        raise CondenseDeployError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    if optimize not in MODES:
        raise CondenseDeployError(f"optimize must be one of {', '.join(MODES)}, not {optimize!r}")
    check_precision(optimize, precision)
    if batch == "dynamic":
        return 0
    try:
        size = int(batch)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or isinstance(batch, bool):
        raise CondenseDeployError(f"batch must be 'dynamic' or a positive integer, not {batch!r}")
    if size > MAX_BATCH:
        raise CondenseDeployError(f"batch {size} is more than {MAX_BATCH}; export a dynamic batch instead")
    return size


def activation_bytes(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Bytes of every leaf module's output for one image: what a forward pass (and onnxruntime's
    buffers for the same graph) holds per image, measured with hooks on a 1-image batch."""
    total = 0

    def add(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(add) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except Exception as e:
        raise CondenseDeployError(f"the PyTorch model failed on input {list(input_size)}: "
                                  f"{_why(e)}") from e
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total + 4 * math.prod(input_size)


def _check_memory(model: nn.Module, input_size: tuple[int, int, int], fixed_batch: int) -> None:
    """Fail before tracing when the batch's activations (in PyTorch and onnxruntime at once) cannot fit."""
    from .runtime.memory import check_fits

    batch = fixed_batch or max(SPEC.trace_batch, *SPEC.validate_batches)
    check_fits(2 * batch * activation_bytes(model, input_size), f"export at batch {batch}",
               "use a smaller --batch, or a dynamic batch")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress and deprecation notes; the CLI prints its own."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _torch_export(model: nn.Module, tmp: Path, target: Path, input_size: tuple[int, int, int],
                  opset: int, fixed_batch: int, exporter: str) -> None:
    generator = torch.Generator().manual_seed(SPEC.seed)
    example = torch.randn(fixed_batch or SPEC.trace_batch, *input_size, generator=generator)
    input_names, output_names = [SPEC.input_name], [SPEC.output_name]
    try:
        with torch.no_grad(), _quiet():
            if exporter == "torchscript":
                axes = None if fixed_batch else {SPEC.input_name: {0: SPEC.batch_dim},
                                                 SPEC.output_name: {0: SPEC.batch_dim}}
                torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset,
                                  dynamic_axes=axes, do_constant_folding=True, input_names=input_names,
                                  output_names=output_names)
            else:
                _require_onnxscript()
                shapes = None if fixed_batch else ({0: torch.export.Dim(SPEC.batch_dim, min=1)},)
                torch.onnx.export(model, (example,), str(tmp), dynamo=True, opset_version=opset,
                                  dynamic_shapes=shapes, external_data=False, verbose=False,
                                  input_names=input_names, output_names=output_names)
    except CondenseDeployError:
        raise
    except Exception as e:  # the exporters raise many types; all mean "this model did not export"
        raise CondenseDeployError(f"{target}: {exporter} export failed: {_why(e)}") from e


def _require_onnxscript() -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise missing_dependency("the dynamo exporter", "the onnxscript package",
                                 "pip install onnxscript (or use the default --exporter torchscript)") from e


def _why(error: BaseException) -> str:
    """What an exporter, checker or runtime error says, as ``Type: first line``."""
    return first_line(error, with_type=True)


def _load(tmp: Path, target: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(tmp))
    except Exception as e:
        raise CondenseDeployError(f"{target}: the exported file does not parse: {_why(e)}") from e


def _save(proto: onnx.ModelProto, tmp: Path, target: Path) -> None:
    try:
        onnx.save(proto, str(tmp))
    except (OSError, ValueError) as e:
        raise CondenseDeployError(f"{target}: cannot write the ONNX file: {_why(e)}") from e


def _full_check(proto: onnx.ModelProto, target: Path, when: str) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise CondenseDeployError(f"{target}: onnx checker failed {when}: {_why(e)}") from e


def _simplify(proto: onnx.ModelProto, target: Path) -> onnx.ModelProto:
    """onnxsim with the batch left symbolic (no input shapes overwritten), constants folded."""
    try:
        import onnxsim
    except ImportError as e:
        raise missing_dependency("simplifying", "onnxsim", f"{FULL_INSTALL} (or pass --no-simplify)") from e
    try:
        with _quiet():
            simplified, ok = onnxsim.simplify(proto, check_n=0)
    except Exception as e:
        raise CondenseDeployError(f"{target}: onnxsim failed: {_why(e)}") from e
    if not ok:
        raise CondenseDeployError(f"{target}: onnxsim could not prove the simplified model equivalent")
    # onnxsim records every renamed node in metadata_props (kilobytes of text); our own
    # "export" entry says the file was simplified, and the validation below proves it exact.
    for prop in [p for p in simplified.metadata_props if p.key.startswith("onnxsim.")]:
        simplified.metadata_props.remove(prop)
    return simplified


def _optimize(proto: onnx.ModelProto, mode: str, on_progress: Progress | None,
              precision: str) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The performance rewrites (``condense_deploy.optimize``); ``tuned`` times on 1 thread, the
    deployment setting the bench measures."""
    from .graph.optimize import optimize_onnx

    return optimize_onnx(proto, mode, threads=1, progress=on_progress, precision=precision)


def _check_batch_axis(proto: onnx.ModelProto, fixed_batch: int, target: Path) -> None:
    """The input and output batch axes must stay symbolic (dynamic) or equal the fixed size."""
    for kind, values in (("input", proto.graph.input), ("output", proto.graph.output)):
        if len(values) != 1:
            raise CondenseDeployError(f"{target}: expected one graph {kind}, found {len(values)}")
        dim = values[0].type.tensor_type.shape.dim[0]
        if fixed_batch and dim.dim_value != fixed_batch:
            raise CondenseDeployError(f"{target}: {kind} batch axis is {_dim_text(dim)}, not {fixed_batch}")
        if not fixed_batch and (dim.HasField("dim_value") or not dim.dim_param):
            raise CondenseDeployError(f"{target}: {kind} batch axis was fixed to {_dim_text(dim)}")


def _dim_text(dim: onnx.TensorShapeProto.Dimension) -> str:
    return str(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace our keys (and only ours, plus any the caller passed) with ``props``."""
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in [*keep, *props.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "condense-deploy"
    proto.producer_version = __version__


# -------------------------------------------------------------------------------------- validation


def validate_onnx(
    onnx_path: str | os.PathLike[str] | bytes,
    model: nn.Module,
    input_size: tuple[int, int, int] | list[int],
    atol: float = SPEC.atol,
    *,
    batches: tuple[int, ...] | None = None,
    label: str | None = None,
) -> dict[int, float]:
    """Run the file in onnxruntime and ``model`` in PyTorch on the same random input; return the
    largest absolute difference of the logits per batch size.

    Checks, in order and all reported together: input/output names, output shapes, finite values,
    then values within ``atol``. Batches default to 1 and 3 for a dynamic batch axis, else the file's
    fixed batch size.
    """
    from .runtime.sessions import create_session

    name = label or ("the model" if isinstance(onnx_path, bytes) else os.fspath(onnx_path))
    input_size = _check_input_size(input_size)
    # onnxruntime's own thread count; its log stays quiet (a failure is reported in our one line)
    session = create_session(onnx_path, threads=None,
                             load_error=lambda e: f"{name}: onnxruntime cannot load it: {_why(e)}")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [SPEC.input_name] or SPEC.output_name not in [o.name for o in outputs]:
        raise CondenseDeployError(
            f"{name}: expected input {SPEC.input_name!r} and output {SPEC.output_name!r}, found inputs "
            f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}")
    file_shape = inputs[0].shape
    for axis, (ours, theirs) in enumerate(zip(input_size, file_shape[1:], strict=False), start=1):
        if isinstance(theirs, int) and theirs != ours:
            raise CondenseDeployError(f"{name}: input axis {axis} is {theirs} in the file but the model "
                                      f"expects {ours} (input {list(input_size)})")
    if batches is None:
        batches = (file_shape[0],) if isinstance(file_shape[0], int) else SPEC.validate_batches
    if not batches or min(batches) < 1:
        raise CondenseDeployError(f"{name}: the batch axis is fixed at {min(batches, default=0)}; "
                                  "nothing to verify (export with a positive or dynamic --batch)")
    generator = torch.Generator().manual_seed(SPEC.seed + 1)
    x = torch.randn(max(batches), *input_size, generator=generator)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = {b: model(x[:b]).numpy() for b in batches}
    except Exception as e:
        raise CondenseDeployError(f"{name}: the PyTorch model failed on input {list(input_size)}: "
                                  f"{_why(e)}") from e
    finally:
        model.train(was_training)
    diffs: dict[int, float] = {}
    failures: list[str] = []
    for b in batches:
        try:
            got = session.run([SPEC.output_name], {SPEC.input_name: x[:b].numpy()})[0]
        except Exception as e:
            failures.append(f"batch {b}: onnxruntime failed: {_why(e)}")
            continue
        want = reference[b]
        if got.shape != want.shape:
            failures.append(f"batch {b}: {SPEC.output_name} shape {list(got.shape)} != {list(want.shape)}")
            continue
        if not np.isfinite(got).all():
            failures.append(f"batch {b}: {SPEC.output_name} has non-finite values")
            continue
        diffs[b] = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        if not diffs[b] <= atol:
            failures.append(f"batch {b}: {SPEC.output_name} max abs diff {diffs[b]:.2e} > atol {atol:.0e}")
    if failures:
        raise CondenseDeployError(f"{name}: differs from PyTorch: " + "; ".join(failures))
    return diffs
