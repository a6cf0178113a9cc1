"""Missing prerequisites (sshd, qemu, root, an optional package): a skip on a workstation, a failure
under ``CI=true``, where a skip would exit 0 and hide that the test never ran."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing_prerequisite(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)
