"""errors.first_line: the one way a third-party error becomes the tail of a one-line message."""

from __future__ import annotations

from condense_deploy.errors import first_line


def test_first_non_blank_line_stripped() -> None:
    assert first_line(ValueError("\n  bad shape  \nTraceback (most recent call last):\n  ...")) == "bad shape"


def test_empty_message_gives_the_type_name() -> None:
    assert first_line(EOFError()) == "EOFError"
    assert first_line(EOFError(), with_type=True) == "EOFError"


def test_with_type_and_limit() -> None:
    assert first_line(OSError("disk full\nmore"), with_type=True) == "OSError: disk full"
    assert first_line(RuntimeError("x" * 500), limit=200) == "x" * 200
