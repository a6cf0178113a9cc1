"""The ``condense-deploy`` click group. It only connects commands; each lives in ``commands/``.

Commands are imported lazily, so ``condense-deploy bench`` on a board never imports torch, and a
command whose optional dependencies are missing says which install brings them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from . import __version__
from .errors import CondenseDeployError, missing_dependency

__all__ = ["cli", "main", "run_command"]

# command name -> "module:attribute"; a module that does not exist yet is simply not listed.
_COMMANDS = {
    "list": "condense_deploy.commands.zoo:list_command",
    "inspect": "condense_deploy.commands.inspect:inspect_command",
    "convert": "condense_deploy.commands.convert:convert_command",
    "export": "condense_deploy.commands.export:export_command",
    "verify": "condense_deploy.commands.export:verify_command",
    "optimize": "condense_deploy.commands.optimize:optimize_command",
    "quantize": "condense_deploy.commands.optimize:quantize_command",
    "bench": "condense_deploy.commands.bench:bench_command",
    "report": "condense_deploy.commands.bench:report_command",
    "table": "condense_deploy.commands.table:table_command",
    "demo": "condense_deploy.commands.table:demo_command",
    "train": "condense_deploy.commands.train:train_command",
    "eval": "condense_deploy.commands.train:eval_command",
    "predict": "condense_deploy.commands.predict:predict_command",
    "info": "condense_deploy.commands.info:info_command",
}

_FULL_ONLY = {"torch", "onnxsim", "matplotlib", "PIL"}


class _Interrupted(click.ClickException):
    """Ctrl-C: one ``Error: interrupted`` line and exit status 130 (128 + SIGINT), as shells expect."""

    exit_code = 130


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use, and whose library errors are one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            name for name, spec in _COMMANDS.items()
            if importlib.util.find_spec(spec.split(":")[0]) is not None
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attribute = spec.split(":")
        if importlib.util.find_spec(module_name) is None:
            return None
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise click.ClickException(_missing_dependency_message(cmd_name, e.name or "")) from e
        return getattr(module, attribute)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_errors(lambda: ctx.invoked_subcommand or ""):
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_errors(command: Callable[[], str]) -> Iterator[None]:
    """The one error handler of every command: a library error, a missing optional package or
    Ctrl-C becomes a ``click.ClickException`` (one ``Error: ...`` line; exit 1, or 130 for Ctrl-C).
    ``command`` names the command running when the error comes."""
    try:
        yield
    except CondenseDeployError as e:
        raise click.ClickException(str(e)) from e
    except ModuleNotFoundError as e:
        raise click.ClickException(_missing_dependency_message(command(), e.name or "")) from e
    except KeyboardInterrupt as e:  # a library may say what the interrupt left (train does)
        raise _Interrupted(str(e) or "interrupted") from e


def _missing_dependency_message(command: str, module: str) -> str:
    root = module.split(".")[0]
    if root == "onnxruntime":
        return ("onnxruntime cannot be imported: install it with 'pip install onnxruntime' "
                "(there are no wheels for 32-bit ARM / armv7l; use a 64-bit OS)")
    if root in _FULL_ONLY:
        return str(missing_dependency(f"'{command}'", root))
    return f"'{command}' needs the Python package {root!r}, which is not installed"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="condense-deploy")
def cli() -> None:
    """CondenseNet from checkpoint to fast onnxruntime inference on x86 and ARM."""


def main() -> None:
    cli()


def run_command(name: str, prog_name: str, args: list[str] | None = None) -> None:
    """Run the command ``name`` as a program of its own (``python -m condense_deploy.train``, which
    torchrun starts): its options and help, with the group's error handling and exit codes."""
    try:
        command = cli.get_command(click.Context(cli), name)
    except click.ClickException as e:  # its module needs a package that is not installed
        e.show()
        sys.exit(e.exit_code)
    if command is None or command.callback is None:
        raise LookupError(f"no command {name!r}")
    alone = copy.copy(command)  # the group's command object itself stays as it is
    callback = command.callback

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with _one_line_errors(lambda: name):
            return callback(*args, **kwargs)

    alone.callback = guarded
    alone.main(sys.argv[1:] if args is None else args, prog_name=prog_name)
