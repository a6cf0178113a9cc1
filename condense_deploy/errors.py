"""The one exception type the library raises for expected failures.

The CLI turns it into a one-line ``Error: ...`` and exit status 1; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["FULL_INSTALL", "CondenseDeployError", "missing_dependency"]

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
