"""How far a model's fp16 DenseBlocks move its outputs from the same graph at fp32, measured where
the CPU has FP16 arithmetic (and said plainly where it has not). onnx + numpy + onnxruntime, no torch.

``export`` and ``optimize`` hold the fp32 form of the graph to their usual strict tolerance; an fp16
graph cannot meet that (fp16 keeps 11 significant bits), so its difference is measured and reported
next to it, and only outputs that stop being finite (an fp16 overflow) fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CondenseDeployError
from ..native.library import library_path
from ..native.precision import cpu_fp16_problem
from ..runtime.sessions import ModelSource, create_session, run_session

__all__ = ["BOARD_CHECK", "compare_fp16", "describe_fp16", "fp16_not_run", "top1_agreement"]

BOARD_CHECK = ("to measure it on a board with FP16 arithmetic, run `condense-deploy optimize SRC.onnx -o "
               "OUT.onnx --optimize native --precision fp16` there (SRC exported with --optimize none): it "
               "runs both precisions and prints how far fp16 moves")


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows whose argmax over the last axis is the same in ``a`` and ``b``."""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return float(np.mean(a2.argmax(1) == b2.argmax(1)))


def fp16_not_run() -> str | None:
    """Why fp16 blocks cannot run on this CPU (None when they can)."""
    try:
        library: str | None = library_path()
    except CondenseDeployError:
        library = None
    return cpu_fp16_problem(library)


def compare_fp16(fp16_model: ModelSource, feeds: dict[str, np.ndarray], fp32_outputs: list[np.ndarray],
                 where: str) -> dict[str, Any]:
    """Run ``fp16_model`` on ``feeds`` and compare its first output with ``fp32_outputs[0]`` (the same
    graph at fp32 on the same feeds). ``{"ran": False, "why": ...}`` on a CPU without FP16 arithmetic;
    else the max abs difference and top-1 agreement. Non-finite fp16 outputs raise."""
    why = fp16_not_run()
    if why is not None:
        return {"ran": False, "why": why}
    session = create_session(fp16_model, 1, load_error=f"{where}: onnxruntime cannot load it ({{reason}})")
    got = run_session(session, feeds, where)[0]
    want = fp32_outputs[0]
    if got.shape != want.shape:
        raise CondenseDeployError(f"{where}: fp16 output shape {list(got.shape)} != fp32 {list(want.shape)}")
    if not np.isfinite(got).all():
        raise CondenseDeployError(f"{where}: the fp16 blocks give non-finite outputs (fp16 overflow: its "
                                  "largest value is 65504); use --precision fp32")
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)), initial=0.0))
    return {"ran": True, "max_abs_diff": diff, "top1_agreement": top1_agreement(got, want),
            "inputs": int(got.shape[0]) if got.ndim else 1}


def describe_fp16(check: dict[str, Any], against: str) -> str:
    """One line on the fp16 blocks: how far they moved the outputs, or why they were not run here."""
    if not check["ran"]:
        return f"fp16 blocks not run here: {check['why']}; {BOARD_CHECK}"
    return (f"fp16 blocks vs {against}: max abs diff {check['max_abs_diff']:.2e}, top-1 agreement "
            f"{check['top1_agreement']:.0%} on {check['inputs']} random input(s) (fp16 is measured, not held "
            "to atol)")
