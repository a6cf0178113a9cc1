"""Training throughput of CIFAR CondenseNet-86 on this CPU, and what the masked 1x1 convs cost.

Two models of the same shape, timed interleaved (A B A B ...), medians over rounds:

- ``masked``: the training form, every 1x1 a LearnedGroupConv (conv of weight * mask), as trained;
- ``plain``: the same network with the mask multiply taken out of the 1x1 convs, i.e. an unpruned
  DenseNet of the same shape (same stages, growth, bottleneck, 3x3 groups, no transition convs).

A step is the trainer's: augmentation of an in-memory uint8 batch (crop 32 pad 4, flip, normalise),
forward, cross-entropy, backward, SGD Nesterov. Evaluation throughput (no grad) is measured too, since
each epoch also validates 10,000 images. Writes ``benchmarks/results/train_throughput_<machine>.md``.

    .venv/bin/python benchmarks/train_throughput.py --rounds 5 --steps 4

``--threads-sweep`` instead measures what ``train --threads`` should default to: training steps of a
small CIFAR CondenseNet (the smoke-run size, stages 4-4-4, growth 8-16-32, batch 64) in a fresh
process per measurement, with each thread setting, on the machine as it is ("quiet") and beside a
competing load the script starts itself (one busy process per core, stopped after each
measurement), interleaved over rounds, medians. It recommends the setting whose worst case is best
and writes ``benchmarks/results/train_threads_<machine>.md``:

    .venv/bin/python benchmarks/train_throughput.py --threads-sweep --rounds 2 --steps 4 --budget 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from condense_deploy.architectures.condensenet import learned_group_convs
from condense_deploy.architectures.registry import create_model
from condense_deploy.train.data import CifarData
from condense_deploy.train.synthetic import write_cifar_archive

CIFAR_TRAIN, CIFAR_VAL, EPOCHS = 50_000, 10_000, 300


def _plain_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = self.relu(self.norm(x))
    return F.conv2d(x, self.conv.weight)


def build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("condensenet86_cifar", num_classes=10)
    if kind == "plain":
        for layer in learned_group_convs(model):
            layer.forward = types.MethodType(_plain_forward, layer)
    return model


def time_train(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list, steps: int) -> float:
    """Images per second over ``steps`` training steps."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    images = 0
    start = time.perf_counter()
    for x, y in batches[:steps]:
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += len(y)
    return images / (time.perf_counter() - start)


@torch.no_grad()
def time_eval(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    model.eval()
    start = time.perf_counter()
    for _ in range(repeats):
        model(x)
    return repeats * len(x) / (time.perf_counter() - start)


# (label, threads, extra environment): what the sweep compares; every core, as torch and train use them
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
THREAD_SETTINGS = [
    ("1 thread", 1, {}),
    (f"{_CORES} threads, OpenMP's own waiting (torch's default)", _CORES, {}),
    (f"{_CORES} threads, OMP_WAIT_POLICY=PASSIVE (train's default)", _CORES, {"OMP_WAIT_POLICY": "PASSIVE"}),
]
# a spinning process that ends after argv[1] seconds, or as soon as the script that started it is gone
_BUSY = ("import os, sys, time\nend, parent = time.monotonic() + float(sys.argv[1]), os.getppid()\n"
         "while time.monotonic() < end and os.getppid() == parent:\n    sum(range(10000))")


def child_steps(threads: int, steps: int, batch_size: int, budget_s: float) -> float:
    """Median images/s of ``steps`` training steps of the smoke-run CondenseNet, as train runs them
    (fewer, at least one, where they take more than ``budget_s`` seconds: a collapsed setting)."""
    from condense_deploy.architectures.condensenet import CondenseNet
    from condense_deploy.architectures.config import CondenseNetConfig
    from condense_deploy.train.threads import set_threads

    set_threads(threads)
    torch.manual_seed(0)
    cfg = CondenseNetConfig(stages=[4, 4, 4], growth=[8, 16, 32], num_classes=10, kind="cifar")
    model = CondenseNet(cfg)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    x, y = torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    time_train(model, optimizer, [(x, y)], 1)  # warm-up
    rates: list[float] = []
    began = time.perf_counter()
    while len(rates) < steps and (not rates or time.perf_counter() - began < budget_s):
        start = time.perf_counter()
        time_train(model, optimizer, [(x, y)], 1)
        rates.append(batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def _measure(threads: int, env: dict[str, str], steps: int, batch_size: int, budget_s: float,
             loaded: bool) -> float:
    busy = []
    if loaded:  # one spinning process per core, bounded in time even if this script dies
        busy = [subprocess.Popen([sys.executable, "-c", _BUSY, "900"]) for _ in range(os.cpu_count() or 1)]
    try:
        command = [sys.executable, __file__, "--child-threads", str(threads), "--steps", str(steps),
                   "--batch-size", str(batch_size), "--budget", str(budget_s)]
        inherited = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        done = subprocess.run(command, env={**inherited, **env}, capture_output=True, text=True, check=True,
                              timeout=1800)
        return float(done.stdout.strip().splitlines()[-1])
    finally:
        for process in busy:
            process.kill()
            process.wait()


def threads_sweep(args: argparse.Namespace) -> str:
    """Every setting quiet and loaded, interleaved over rounds; the markdown of the results file."""
    loads = (("quiet", False), ("loaded", True))
    rates: dict[tuple[str, str], list[float]] = {(s[0], load): [] for s in THREAD_SETTINGS
                                                 for load, _ in loads}
    load_seen = []
    for r in range(args.rounds):
        for load, loaded in loads:
            for label, threads, env in THREAD_SETTINGS:
                load_seen.append(os.getloadavg()[0])
                rates[(label, load)].append(_measure(threads, env, args.steps, args.batch_size, args.budget,
                                                     loaded))
                rate = rates[(label, load)][-1]
                print(f"round {r + 1}/{args.rounds} {load:6s} {label}: {rate:.1f} img/s", file=sys.stderr)
    med = {key: statistics.median(v) for key, v in rates.items()}
    worst = {label: min(med[(label, load)] for load, _ in loads) for label, _, _ in THREAD_SETTINGS}
    best = max(worst, key=lambda label: worst[label])
    lines = [
        f"# Training threads: which `train --threads` default holds up on {args.machine}",
        "",
        "Measured with `.venv/bin/python benchmarks/train_throughput.py --threads-sweep --rounds "
        f"{args.rounds} --steps {args.steps} --budget {args.budget:g}` ({time.strftime('%Y-%m-%d')}, "
        f"torch {torch.__version__}, "
        f"{os.cpu_count()} cores). Training steps (forward, loss, backward, SGD) of a CIFAR CondenseNet "
        f"with stages 4-4-4 and growth 8-16-32 at batch {args.batch_size}, each measurement in a fresh "
        "process, settings interleaved over rounds, medians of per-step images/s (up to --steps steps, "
        "fewer where they took more than --budget seconds). \"loaded\": beside one "
        "busy-looping process per core "
        "that the script starts for that measurement only. \"quiet\": the machine as it was (load average "
        f"{min(load_seen):.1f} to {max(load_seen):.1f} from other jobs during the run).",
        "",
        "| setting | quiet img/s | loaded img/s | loaded / quiet | quiet per round | loaded per round |",
        "|---|--:|--:|--:|---|---|",
    ]
    for label, _, _ in THREAD_SETTINGS:
        q, lo = med[(label, "quiet")], med[(label, "loaded")]
        lines.append(f"| {label} | {q:.0f} | {lo:.0f} | {lo / q:.2f} | "
                     f"{', '.join(f'{v:.0f}' for v in rates[(label, 'quiet')])} | "
                     f"{', '.join(f'{v:.0f}' for v in rates[(label, 'loaded')])} |")
    spread = max(med.values()) / min(med.values())
    lines += [
        "",
        f"Recommended default: **{best}**, the setting whose worse case (quiet or loaded) is best "
        f"({worst[best]:.0f} img/s; the others' worse cases: "
        + ", ".join(f"{label} {worst[label]:.0f}" for label in worst if label != best)
        + f"). Largest to smallest median in the table: {spread:.1f}x.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per model per round")
    parser.add_argument("--batch-size", type=int, default=64, help="images per training step")
    parser.add_argument("--machine", default=f"{platform.machine()}-{os.cpu_count()}cpu",
                        help="name in the results file's name")
    parser.add_argument("--out", default=None, help="results file (default: benchmarks/results/...)")
    parser.add_argument("--threads-sweep", action="store_true",
                        help="measure train's thread settings quiet and under a competing load instead")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="--threads-sweep: seconds of timed steps per measurement at most (default 30)")
    parser.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_threads is not None:
        print(child_steps(args.child_threads, args.steps, args.batch_size, args.budget))
        return
    if args.threads_sweep:
        text = threads_sweep(args)
        _write(Path(args.out or Path(__file__).parent / "results" / f"train_threads_{args.machine}.md"), text)
        print(text)
        return

    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_archive(tmp, train_per_class=(args.steps * args.batch_size) // 10 + 1, test_per_class=2)
        data = CifarData("cifar10", tmp)
    batches = list(data.epoch_batches(0, args.batch_size, seed=0))[: args.steps]
    if len(batches[-1][1]) < args.batch_size:
        batches = batches[:-1]

    models = {kind: build(kind) for kind in ("masked", "plain")}
    optimizers = {k: torch.optim.SGD(m.parameters(), 0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
                  for k, m in models.items()}
    eval_x = batches[0][0]
    for kind in models:  # warm-up
        time_train(models[kind], optimizers[kind], batches, 1)
        time_eval(models[kind], eval_x, 1)

    aug_start = time.perf_counter()
    augmented = sum(len(y) for _, y in data.epoch_batches(1, args.batch_size, seed=0))
    aug_rate = augmented / (time.perf_counter() - aug_start)

    train_rates: dict[str, list[float]] = {k: [] for k in models}
    eval_rates: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        for kind in models:
            train_rates[kind].append(time_train(models[kind], optimizers[kind], batches, args.steps))
            eval_rates[kind].append(time_eval(models[kind], eval_x, 2))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} train {train_rates[k][-1]:.1f} img/s eval {eval_rates[k][-1]:.1f} img/s" for k in models),
            file=sys.stderr)

    load = os.getloadavg()
    med = {k: statistics.median(v) for k, v in train_rates.items()}
    med_eval = {k: statistics.median(v) for k, v in eval_rates.items()}
    ratios = [a / b for a, b in zip(train_rates["plain"], train_rates["masked"], strict=True)]
    epoch_s = CIFAR_TRAIN / med["masked"] + CIFAR_VAL / med_eval["masked"]
    lines = [
        f"# Training throughput: CIFAR CondenseNet-86 on {args.machine}",
        "",
        f"Measured with `.venv/bin/python benchmarks/train_throughput.py --rounds {args.rounds} --steps "
        f"{args.steps}` ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, batch {args.batch_size}). Interleaved rounds, medians. Batches are augmented before "
        "timing; the augmentation rate is given on its own line. Load average at the end (1/5/15 min): "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine; above 2 = contention).",
        "",
        "| model | train img/s (median) | train img/s per round | eval img/s (median) |",
        "|---|---:|---|---:|",
    ]
    for kind, label in (("masked", "training form (masked 1x1, LearnedGroupConv)"),
                        ("plain", "same shape, plain 1x1 (unpruned DenseNet)")):
        rounds = ", ".join(f"{v:.1f}" for v in train_rates[kind])
        lines.append(f"| {label} | {med[kind]:.1f} | {rounds} | {med_eval[kind]:.1f} |")
    lines += [
        "",
        f"- training form / plain step time: **{statistics.median(ratios):.3f}x** (median of per-round "
        f"ratios {', '.join(f'{v:.3f}' for v in ratios)}): the training form pays the full dense cost of "
        "an unpruned DenseNet of the same shape plus the mask multiply; pruned connections save nothing "
        "until conversion.",
        f"- augmentation (crop 32 pad 4, flip, normalise; torch ops on uint8): {aug_rate:.0f} img/s, "
        "not the bottleneck.",
        f"- one CIFAR-10 epoch (50,000 train + 10,000 val images): about {epoch_s / 60:.1f} min; "
        f"300 epochs: about **{EPOCHS * epoch_s / 3600:.0f} h** ({EPOCHS * epoch_s / 86400:.1f} days) "
        "on this CPU.",
    ]
    text = "\n".join(lines) + "\n"
    _write(Path(args.out or Path(__file__).parent / "results" / f"train_throughput_{args.machine}.md"), text)
    print(text)


def _write(out: Path, text: str) -> None:
    from condense_deploy._fsutil import make_dirs, write_text

    make_dirs(out.parent, "results folder")
    write_text(out, text)


if __name__ == "__main__":
    main()
