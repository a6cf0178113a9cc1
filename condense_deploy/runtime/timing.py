"""The one interleaved timer (A B C A B C ...), used by ``bench`` and by ``optimize --tuned``
(through ``time_models``). Garbage collection is paused while timing (as timeit does).
onnxruntime + numpy only."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .sessions import ModelSource, create_session, random_feeds

__all__ = ["gc_paused", "interleaved", "time_models"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection pauses inside timed runs (as timeit does)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def interleaved(calls: Sequence[Callable[[], object]], *, rounds: int | None = None,
                budget_s: float | None = None, inner: int = 1,
                progress: Callable[[float], None] | None = None) -> list[list[float]]:
    """Rounds of ``inner`` calls of each function in turn; per function, ms per call of each round.

    Stops after ``rounds`` rounds, or (``rounds`` None) once ``budget_s`` seconds have passed.
    ``progress`` gets the fraction done after each round.
    """
    if rounds is None and budget_s is None:
        raise ValueError("interleaved: give rounds or budget_s")
    clock = time.perf_counter
    samples: list[list[float]] = [[] for _ in calls]
    done = 0
    with gc_paused():
        start = clock()
        while True:
            for call, times in zip(calls, samples, strict=True):
                t0 = clock()
                for _ in range(inner):
                    call()
                times.append((clock() - t0) / inner * 1e3)
            done += 1
            if rounds is not None:
                if progress is not None:
                    progress(done / rounds)
                if done >= rounds:
                    return samples
            else:
                assert budget_s is not None
                elapsed = clock() - start
                if progress is not None:
                    progress(min(1.0, elapsed / budget_s))
                if elapsed >= budget_s:
                    return samples


def time_models(models: Sequence[ModelSource], threads: int = 1, rounds: int = 15, inner: int = 5,
                warmup: int = 3, statistic: str = "median",
                load_error: str = "onnxruntime cannot load the rewritten model: {reason}") -> list[float]:
    """Latency (ms) of each model, measured interleaved (A B C A B C ...) on one random input.

    ``statistic`` is ``median`` (whole models) or ``min`` (sub-millisecond sites on a shared CPU,
    where the minimum is the steadiest estimate of the uncontended time).
    """
    sessions = [create_session(m, threads, load_error=load_error) for m in models]
    feeds = [random_feeds(s) for s in sessions]
    for s, f in zip(sessions, feeds, strict=True):
        for _ in range(warmup):
            s.run(None, f)
    calls = [lambda s=s, f=f: s.run(None, f) for s, f in zip(sessions, feeds, strict=True)]
    samples = interleaved(calls, rounds=rounds, inner=inner)
    reduce = np.min if statistic == "min" else np.median
    return [float(reduce(t)) for t in samples]
