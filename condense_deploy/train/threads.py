"""How many threads ``train`` computes with, and how they wait, chosen by measurement.

torch's default is one intra-op thread per core whose OpenMP workers *spin* while they wait. Where
anything else runs (another job, image decoding, a second training process), the spinning threads
take the cores from the threads doing the work, and a training step takes ten times longer.
``benchmarks/train_throughput.py --threads-sweep`` measures it (results in
``benchmarks/results/train_threads_<machine>.md``): on this project's shared 2-core machine, 2
spinning threads trained at a tenth of the rate of 1 thread, while 2 threads that *sleep* while they
wait (``OMP_WAIT_POLICY=PASSIVE``) never fell below 1 thread and were faster beside a competing load.

So ``train`` asks OpenMP for passive waiting before torch is loaded (``prefer_passive_waiting``; an
``OMP_WAIT_POLICY`` the user set wins), and then uses every usable core, split between the processes
of a torchrun; where the threads would spin (torch was loaded first, or the user asked for active
waiting) it uses one thread. ``--threads N`` or ``OMP_NUM_THREADS`` choose instead.
"""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_passive_waiting", "resolve_threads", "set_threads"]


def prefer_passive_waiting() -> None:
    """Before torch is imported: OpenMP threads that sleep while they wait, unless the user chose.

    libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it; after that this changes nothing.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _passive() -> bool:
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def resolve_threads(threads: int | None, processes: int = 1) -> int:
    """``threads`` if given, else ``OMP_NUM_THREADS`` when it is a positive number, else the usable
    cores shared by ``processes`` when OpenMP waits passively, else 1."""
    if threads is not None:
        return threads
    try:
        from_env = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        from_env = 0
    if from_env > 0:
        return from_env
    if not _passive():
        return 1
    from ..runtime.machine import usable_cores

    return max(1, usable_cores() // max(1, processes))


def set_threads(threads: int) -> None:
    """Intra-op threads of this process (torch keeps one pool per process: DDP ranks each set theirs)."""
    import torch

    torch.set_num_threads(threads)
