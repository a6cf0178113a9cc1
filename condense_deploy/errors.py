"""The one exception type the library raises for expected failures.

The CLI turns it into a one-line ``Error: ...`` and exit status 1; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["CondenseDeployError"]


class CondenseDeployError(Exception):
    """An expected failure: bad input, a failed check, a missing dependency.

    The message is one line naming the file or model and the number that failed.
    """
