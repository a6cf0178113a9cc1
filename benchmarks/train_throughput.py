"""Training throughput of CIFAR CondenseNet-86 on this CPU, and what the masked 1x1 convs cost.

Two models of the same shape, timed interleaved (A B A B ...), medians over rounds:

- ``masked``: the training form, every 1x1 a LearnedGroupConv (conv of weight * mask), as trained;
- ``plain``: the same network with the mask multiply taken out of the 1x1 convs, i.e. an unpruned
  DenseNet of the same shape (same stages, growth, bottleneck, 3x3 groups, no transition convs).

A step is the trainer's: augmentation of an in-memory uint8 batch (crop 32 pad 4, flip, normalise),
forward, cross-entropy, backward, SGD Nesterov. Evaluation throughput (no grad) is measured too, since
each epoch also validates 10,000 images. Writes ``benchmarks/results/train_throughput_<machine>.md``.

    .venv/bin/python benchmarks/train_throughput.py --rounds 5 --steps 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per model per round")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--machine", default=f"{platform.machine()}-{os.cpu_count()}cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

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
    out = Path(args.out or Path(__file__).parent / "results" / f"train_throughput_{args.machine}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(text)
    os.replace(tmp_out, out)
    print(text)


if __name__ == "__main__":
    main()
