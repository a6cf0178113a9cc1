"""The one progress-bar adapter: library progress callbacks drawn as a click bar on stderr.

A bar is drawn only where stderr is a terminal: piped to a log, it would leave its label as a stray
line (click prints the label once when it cannot redraw). Lines printed while a bar is shown go
through ``ProgressBars.echo``, which clears the bar's line first and redraws the bar after, so the
two never run together.
"""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["ProgressBar", "ProgressBars"]

_SCALE = 1000  # a fraction 0..1 is drawn as 0..1000 steps


class ProgressBar:
    """A click progress bar on stderr, opened on the first update and closed when done.

    ``counts(done, total)`` is the (done, total) callback (tuning); ``fraction(value)`` the 0..1
    callback (bench, table), drawn with percent and ETA; ``close()`` ends a bar early.
    """

    def __init__(self, label: str, **options: Any) -> None:
        self.label = label
        self.options = options  # more click.progressbar options, e.g. show_eta=True
        self.bar: Any = None

    def _open(self, length: int, **options: Any) -> Any:
        if self.bar is None and not _interactive():
            self.bar = _NoBar()
        if self.bar is None:
            self.bar = click.progressbar(length=length, label=self.label, file=sys.stderr,
                                         **{**self.options, **options})
            self.bar.__enter__()
        return self.bar

    def counts(self, done: int, total: int) -> None:
        bar = self._open(total)
        bar.update(done - bar.pos)
        if done >= total:
            self.close()

    def fraction(self, value: float) -> None:
        bar = self._open(_SCALE, show_percent=True, show_eta=True)
        bar.update(max(0, int(value * _SCALE) - bar.pos))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        self.bar = None


def _interactive() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class _NoBar:
    """Stands in for a click bar where none is drawn (stderr is not a terminal)."""

    pos = 0

    def update(self, steps: int) -> None:
        self.pos += steps

    def render_progress(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


class ProgressBars:
    """A (label, done, total) callback: one ``ProgressBar`` per label (an epoch, say), the previous
    one closed when the label changes."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.bar: ProgressBar | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.bar is None or self.bar.label != label:
            self.close()
            self.bar = ProgressBar(label, **self.options)
        self.bar.counts(done, total)

    def echo(self, line: str) -> None:
        """Print a log line on stdout without running it into the bar: clear the bar's line on the
        terminal, print, and draw the bar again below the line."""
        shown = self.bar is not None and self.bar.bar is not None and not isinstance(self.bar.bar, _NoBar)
        if shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
        click.echo(line)
        if shown:
            assert self.bar is not None
            self.bar.bar._last_line = None  # click redraws only a changed line; this one was cleared
            self.bar.bar.render_progress()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
