"""What deploying costs: trained vs deployed validation error for each ``--classifier`` choice, on a
small real image set and on the synthetic one.

Real data with no download: scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``,
1,797 8x8 images, 10 classes) upsampled to 32x32 (nearest), grey in 3 channels, written as a CIFAR-10
python folder: 1,497 training and 300 validation images (a seeded permutation). scikit-learn is a
dependency of this benchmark only (``pip install scikit-learn``), never of the toolkit. The synthetic
set is ``condense_deploy.train.synthetic.write_cifar_archive`` (500 training / 200 validation images).

Per data set and seed, two training runs through the toolkit's trainer: ``--classifier half`` (the
original; its best epoch is then also converted with ``--classifier full`` and ``finetune``, which
train identically and differ only at conversion) and ``--classifier condense``. Every figure is the
error of the converted epoch: trained (the training-form model, as validated during training) and
deployed (the converted model). Writes ``benchmarks/results/deploy_accuracy.{json,md}``.

    .venv/bin/python benchmarks/deploy_accuracy.py --epochs 20 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from condense_deploy.train.deploy import convert_on_data
from condense_deploy.train.loop import TrainOptions, train
from condense_deploy.train.synthetic import write_cifar10, write_cifar_archive

RESULTS = Path(__file__).resolve().parent / "results"
ARCH = {"stages": [4, 4, 4], "growth": [8, 8, 8]}
VAL = 300


def write_digits(target: Path, seed: int = 0) -> Path:
    """scikit-learn's digits as a CIFAR-10 folder (32x32, 3 channels), ``VAL`` validation images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.repeat(np.repeat(digits.images, 4, axis=1), 4, axis=2)  # 8x8 -> 32x32
    images = np.clip(images * (255 / 16), 0, 255).astype(np.uint8)
    images = np.repeat(images[:, None], 3, axis=1)  # [N, 3, 32, 32]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    val, train_part = order[:VAL], order[VAL:]
    parts = [(images[i], labels[i]) for i in np.array_split(train_part, 5)]
    return write_cifar10(target, parts, (images[val], labels[val]), [str(k) for k in range(10)], True)


def run(name: str, data_dir: Path, work: Path, epochs: int, seed: int, modes: list[str]) -> list[dict]:
    rows = []
    base = dict(data="cifar10", data_dir=str(data_dir), model_overrides=dict(ARCH), epochs=epochs,
                batch_size=64, seed=seed, show_progress=False, force=True)
    for mode in modes:
        savedir = work / f"{name}-{mode}-{seed}"
        started = time.perf_counter()
        result = train(TrainOptions(savedir=str(savedir), classifier=mode, **base))
        seconds = time.perf_counter() - started
        rows.append(_row(name, seed, mode, result.converted_trained_err1, result.converted_err1, epochs,
                         seconds, result.flops, result.params))
        print(rows[-1], flush=True)
        if mode != "half":
            continue
        for other in ("full", "finetune"):
            started = time.perf_counter()
            epoch = result.converted_epoch  # the best epoch that ended fully condensed, as the trainer's
            done = convert_on_data(savedir / "save_models" / f"checkpoint_{epoch:03d}.pth.tar",
                                   work / f"{name}-{other}-{seed}.pth.tar", "cifar10", data_dir,
                                   classifier=other, force=True, seed=seed)
            gap = done.gap
            rows.append(_row(name, seed, other, gap.trained_err1, gap.deployed_err1, epochs,
                             seconds + time.perf_counter() - started, done.flops, done.params))
            print(rows[-1], flush=True)
    return rows


def _row(data: str, seed: int, mode: str, trained: float | None, deployed: float | None, epochs: int,
         seconds: float, flops: int | None, params: int | None) -> dict:
    return {"data": data, "seed": seed, "classifier": mode, "epochs": epochs, "trained_err1": trained,
            "deployed_err1": deployed, "seconds": round(seconds, 1), "flops": flops, "params": params}


def summary(rows: list[dict]) -> str:
    lines = ["| data | --classifier | trained top-1 err % | deployed top-1 err % | cost (points) | FLOPs | "
             "params | runs |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["data"], r["classifier"]) for r in rows},
                  key=lambda k: (k[0], ["half", "condense", "full", "finetune"].index(k[1])))
    for data, mode in keys:
        group = [r for r in rows if r["data"] == data and r["classifier"] == mode]
        trained = [r["trained_err1"] for r in group]
        deployed = [r["deployed_err1"] for r in group]
        cost = [d - t for t, d in zip(trained, deployed, strict=True)]
        lines.append(f"| {data} | {mode} | {_fmt(trained)} | {_fmt(deployed)} | {_fmt(cost, '+.2f')} | "
                     f"{group[0]['flops']:,} | {group[0]['params']:,} | {len(group)} |")
    return "\n".join(lines)


def _fmt(values: list[float], spec: str = ".2f") -> str:
    """Median, with every run in brackets when there are several."""
    text = format(statistics.median(values), spec)
    return text if len(values) == 1 else f"{text} ({', '.join(format(v, spec) for v in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data", nargs="+", default=["digits", "synthetic"], choices=["digits", "synthetic"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--modes", nargs="+", default=["half", "condense"], choices=["half", "condense"],
                        help="training runs (half also converts its best epoch with full and finetune)")
    parser.add_argument("--stages", default="4-4-4")
    parser.add_argument("--growth", default="8-8-8")
    parser.add_argument("--keep", default=None, help="keep the data sets and runs in this folder")
    parser.add_argument("--out", default="deploy_accuracy")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ARCH.update(stages=[int(n) for n in args.stages.split("-")],
                growth=[int(n) for n in args.growth.split("-")])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        folders = {}
        if "digits" in args.data:
            write_digits(work / "digits")
            folders["digits"] = work / "digits"
        if "synthetic" in args.data:
            write_cifar_archive(work / "synthetic")
            folders["synthetic"] = work / "synthetic"
        for seed in args.seeds:
            for name, folder in folders.items():
                rows.extend(run(name, folder, work, args.epochs, seed, args.modes))
    command = (f".venv/bin/python benchmarks/deploy_accuracy.py --epochs {args.epochs} --seeds "
               f"{' '.join(map(str, args.seeds))} --data {' '.join(args.data)} --modes "
               f"{' '.join(args.modes)} --stages {args.stages} --growth {args.growth} "
               f"--threads {args.threads}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"command": command, "arch": ARCH, "rows": rows},
                                                          indent=2) + "\n")
    text = (f"# Trained vs deployed top-1 error per --classifier choice\n\n`{command}`\n\n"
            f"CondenseNet stages {args.stages}, growth {args.growth} (C=G=4), {args.epochs} epochs, "
            f"batch 64, cosine lr 0.1, torch {torch.__version__}, {args.threads} thread(s).\n\n"
            f"{summary(rows)}\n")
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
