"""How many threads ``train`` computes with, and why the default is one.

torch's default is one intra-op thread per core, whose OpenMP workers spin while they wait. On a
machine where anything else runs (data decoding, another job, a second training process) the
spinning threads fight for the same cores and a training step can take ten times longer; on an idle
machine the extra threads win less than 2x on the small CIFAR models a CPU trains. One thread is
the default that never collapses: ``benchmarks/train_throughput.py --threads-sweep`` measures each
setting quiet and under a competing load it starts itself, and its results file says which it
recommends. ``--threads N`` (or ``OMP_NUM_THREADS``) asks for more where the machine is yours.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_THREADS", "resolve_threads", "set_threads"]

DEFAULT_THREADS = 1


def resolve_threads(threads: int | None) -> int:
    """``threads`` if given, else ``OMP_NUM_THREADS`` when it is a positive number, else the default."""
    if threads is not None:
        return threads
    try:
        from_env = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        from_env = 0
    return from_env if from_env > 0 else DEFAULT_THREADS


def set_threads(threads: int) -> None:
    """Intra-op threads of this process (torch keeps one pool per process: DDP ranks each set theirs)."""
    import torch

    torch.set_num_threads(threads)
