"""Options that several commands share, defined once so a flag reads the same everywhere.

Every number a command takes is checked here, at the command line, with a click type: a value no
model or measurement can have (0 classes, a negative learning rate, nan, inf, 10**12 threads) is a
usage error (exit 2) before any work starts or any folder is created.
"""

from __future__ import annotations

import math
from typing import Any

import click

from ..architectures.config import ARCH_LIMITS, parse_int_list

__all__ = ["FiniteFloat", "ThreadCounts", "arch_int", "arch_list_option", "arch_option", "check_precision",
           "classes_option", "count", "precision_option", "trust_option"]


class FiniteFloat(click.ParamType):
    """A float in [min, max] (``min_open``: min excluded); nan and inf are refused."""

    name = "float"

    def __init__(self, min: float = -math.inf, max: float = math.inf, min_open: bool = False) -> None:
        self.min, self.max, self.min_open = min, max, min_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        low_ok = number > self.min if self.min_open else number >= self.min
        if not math.isfinite(number) or not low_ok or number > self.max:
            bound = f"{'(' if self.min_open else '['}{self.min:g}, {self.max:g}]"
            self.fail(f"{value!r} is not a finite number in {bound}", param, ctx)
        return number


class ThreadCounts(click.ParamType):
    """A comma-separated list of thread counts (``1,2,4``, ``all``), checked strictly at the command line
    (a usage error for ``0``, ``nan``, ``1,,2``, ``2,2``, ``999``) and passed on as the text, so a
    remote machine reads ``all`` as its own cores."""

    name = "N[,N...]|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ..errors import CondenseDeployError
        from ..runtime.bench import parse_threads

        text = str(value)
        try:
            parse_threads(text)
        except CondenseDeployError as e:
            self.fail(str(e).removeprefix(f"threads {text!r}: "), param, ctx)
        return text


def count(low: int = 1, high: int = 1_000_000) -> click.IntRange:
    """A whole number in ``low..high`` (high keeps a typo from allocating or running for ever)."""
    return click.IntRange(low, high)


def arch_int(key: str) -> click.IntRange:
    """The range of an architecture number, from the one table the model config checks too."""
    low, high = ARCH_LIMITS[key]
    return click.IntRange(low, high)


def _arch_list(key: str) -> Any:
    low, high = ARCH_LIMITS[key]

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
        if value is None:
            return None
        try:
            numbers = parse_int_list(value)
        except ValueError as e:
            raise click.BadParameter(f"{value!r} is not a list of integers like 14-14-14") from e
        if not numbers:
            raise click.BadParameter(f"{value!r} is empty")
        if len(numbers) > 8 or any(not low <= n <= high for n in numbers):
            raise click.BadParameter(f"{value!r}: 1 to 8 numbers, each in {low}..{high}")
        return numbers

    return callback


def arch_list_option(name: str, help: str) -> Any:
    """``--stages`` / ``--growth``: dash-separated whole numbers, each in its ARCH_LIMITS range."""
    return click.option(name, callback=_arch_list(name.lstrip("-")), default=None, help=help)


arch_option = click.option("--arch", default=None, metavar="ZOO_NAME",
                           help="Zoo name the checkpoint must match (default: inferred from its shapes).")
trust_option = click.option("--trust-checkpoint", is_flag=True,
                            help="Allow full unpickling (runs code from the file: only for files you trust).")
classes_option = click.option("--num-classes", type=arch_int("num_classes"), default=None,
                              help="Classes of a zoo model (e.g. 100 for CIFAR-100).")
precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
    help="Arithmetic of the DenseBlock ops (--optimize native only). fp16 computes the blocks in ARMv8.2 "
         "FP16 arithmetic (Cortex-A76 / Raspberry Pi 5, Neoverse-N1; inputs and outputs stay float32); "
         "the model then runs only on such a CPU, and is verified here as the same graph at fp32 where "
         "this CPU has no FP16 arithmetic (any x86).")


def check_precision(precision: str, mode: str) -> None:
    """fp16 is an opt-in of the native kernels: with any other mode it is a usage error (exit 2)."""
    if precision != "fp32" and mode != "native":
        raise click.UsageError(f"--precision {precision} needs --optimize native (got --optimize {mode})")
