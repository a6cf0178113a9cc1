"""The one exception type the library raises for expected failures.

The CLI turns it into a one-line ``Error: ...`` and exit status 1; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["FULL_INSTALL", "CondenseDeployError", "first_line", "missing_dependency"]

FULL_INSTALL = "pip install 'condense-deploy[full]'"


class CondenseDeployError(Exception):
    """An expected failure: bad input, a failed check, a missing dependency.

    The message is one line naming the file or model and the number that failed.
    """


def missing_dependency(what: str, package: str, install: str | None = None) -> CondenseDeployError:
    """The one-line error for an absent optional package: ``{what} needs {package}: {install}``;
    without ``install``, the package is one the runtime install leaves out (the full install has it)."""
    if install is None:
        install = FULL_INSTALL
        return CondenseDeployError(f"{what} needs {package}, which the runtime install leaves out: {install}")
    return CondenseDeployError(f"{what} needs {package}: {install}")


def first_line(error: BaseException, *, with_type: bool = False, limit: int | None = None) -> str:
    """The first non-blank line of ``error``'s message, for a one-line ``CondenseDeployError`` that
    wraps a third-party error (whose own text may run to a traceback); its type name when the
    message is empty. ``with_type`` puts the type name in front (``ValueError: ...``), ``limit``
    cuts a very long line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    name = type(error).__name__
    if not lines:
        return name
    text = lines[0][:limit] if limit else lines[0]
    return f"{name}: {text}" if with_type else text
