"""How far fp16 DenseBlocks (``--precision fp16``) move a model's outputs against fp32, on emulated
aarch64 with FP16 arithmetic (qemu-aarch64, ``QEMU_CPU=neoverse-n1``, the toolkit's runtime path and
the native kernels cross-compiled for aarch64: scripts/aarch64-env.sh).

Two sets, each through the native export at fp32 and at fp16 (the same graph but for the blocks'
arithmetic):

- **digits**: a small CondenseNet trained here on scikit-learn's bundled handwritten digits (the
  data set and architecture of benchmarks/deploy_accuracy.py, whose ``write_digits`` this reuses),
  converted with the full classifier, over its whole validation set (300 images, 32x32).
- **photos**: real photographs that come with PyPI packages (matplotlib's grace_hopper.jpg,
  scikit-learn's china.jpg and flower.jpg, scikit-image's bundled photographs), at 224x224 through
  CondenseNet-74 C=G=8 from the zoo. **Its weights are random** (no trained ImageNet weights exist for
  it here): the outputs measure what fp16 arithmetic does to this network's activations on real image
  statistics, not to a trained classifier's decisions; with random weights the logits are close
  together, so top-1 agreement there is a harsher test than on a trained model.

Per set: max abs difference of the logits and of the softmax probabilities, top-1 agreement, mean
top-5 overlap (|top-5 fp16 & top-5 fp32| / 5), and for digits the top-1 error against the labels;
also fp32 on emulated aarch64 against fp32 in onnxruntime on this x86 machine, so the fp16 figures
are seen against the architecture's own difference. Writes ``benchmarks/results/fp16_accuracy.{json,md}``.

    export AARCH64_CACHE=/work/cache/aarch64
    .venv/bin/python benchmarks/fp16_accuracy.py [--epochs 30] [--work DIR] [--force]

Needs scikit-learn and scikit-image (``pip install scikit-learn scikit-image``: benchmark-only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
AARCH64_ENV = PROJECT / "scripts" / "aarch64-env.sh"
RESULTS = Path(__file__).resolve().parent / "results"
PHOTO_MODEL = "condensenet74_c8g8"
# scikit-image's bundled photographs (grey ones are copied into three channels, as predict does)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "retina.jpg", "camera.png", "moon.png", "coins.png", "brick.png",
                  "grass.png", "gravel.png", "ihc.png")

# Runs on emulated aarch64: the session the toolkit makes (bench's), batches of the saved inputs, one
# progress line per batch on stderr, the outputs saved.
_DRIVER = textwrap.dedent("""
    import sys
    import numpy as np
    from condense_deploy.runtime.sessions import create_session
    model, inputs, outputs, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    session = create_session(model, 1)
    x = np.load(inputs)
    out = []
    for start in range(0, len(x), batch):
        out.append(session.run(None, {session.get_inputs()[0].name: x[start:start + batch]})[0])
        print(f"progress {min(start + batch, len(x))} {len(x)}", file=sys.stderr, flush=True)
    np.save(outputs, np.concatenate(out))
""")


def fail(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(1)


def train_digits(work: Path, epochs: int, stages: str, growth: str, seed: int) -> Path:
    """The converted digits model (reused from ``work`` when it is there): deploy_accuracy's data set and
    training, ``--classifier full`` so the deployed model is the trained one."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from deploy_accuracy import write_digits

    from condense_deploy.train.loop import TrainOptions, train

    savedir = work / f"digits-{stages}-{growth}-{epochs}ep-seed{seed}"
    converted = savedir / "save_models" / "converted_model_best.pth.tar"
    if converted.is_file():
        print(f"fp16_accuracy: reusing {converted}", file=sys.stderr)
        return converted
    data = work / "digits"
    if not (data / ".complete").exists():
        write_digits(data)
        (data / ".complete").write_text("")
    arch = {"stages": [int(n) for n in stages.split("-")], "growth": [int(n) for n in growth.split("-")]}
    print(f"fp16_accuracy: training CondenseNet {stages} growth {growth} on digits, {epochs} epochs",
          file=sys.stderr)
    train(TrainOptions(savedir=str(savedir), data="cifar10", data_dir=str(data), model_overrides=arch,
                       epochs=epochs, batch_size=64, seed=seed, show_progress=True, force=True,
                       classifier="full"))
    return converted


def export_pair(source: str, folder: Path, stem: str) -> dict[str, Path]:
    """The native export of ``source`` at fp32 and at fp16 (each verified here as the toolkit does)."""
    from condense_deploy.pipeline import export_source

    paths = {p: folder / f"{stem}.native-{p}.onnx" for p in ("fp32", "fp16")}
    for precision, path in paths.items():
        if not path.is_file():
            print(f"fp16_accuracy: exporting {source} (native, {precision})", file=sys.stderr)
            export_source(source, path, optimize="native", precision=precision, force=True)
    return paths


def photo_files() -> list[Path]:
    """Photographs shipped inside installed PyPI packages (nothing is downloaded)."""
    import matplotlib
    import skimage.data
    import sklearn.datasets

    files = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    images = Path(sklearn.datasets.__file__).parent / "images"
    files += [images / "china.jpg", images / "flower.jpg"]
    bundled = Path(skimage.data.__file__).parent
    files += [bundled / name for name in SKIMAGE_PHOTOS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        fail(f"photographs missing from the installed packages: {', '.join(missing)}")
    return files


def _meta_list(path: Path, key: str) -> list[float]:
    from condense_deploy.graph.metadata import META, read_metadata

    return [float(v) for v in json.loads(read_metadata(path)[META + key])]


def run_emulated(model: Path, x: np.ndarray, work: Path, qemu_cpu: str, label: str) -> np.ndarray:
    """``model`` on ``x`` on emulated aarch64, with a progress bar over the batches."""
    from condense_deploy.commands.progress import ProgressBar

    driver = work / "driver.py"
    inputs, outputs = work / f"{model.stem}.in.npy", work / f"{model.stem}.out.npy"
    driver.write_text(_DRIVER)
    np.save(inputs, x)
    batch = 25 if x.shape[-1] <= 64 else 1
    env = dict(os.environ, QEMU_CPU=qemu_cpu, OMP_NUM_THREADS="1")
    started = time.time()
    process = subprocess.Popen(["bash", str(AARCH64_ENV), "run", str(driver), str(model), str(inputs),
                                str(outputs), str(batch)], stderr=subprocess.PIPE, text=True, env=env)
    bar = ProgressBar(f"  {label}")
    tail: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("progress "):
            done, total = (int(n) for n in line.split()[1:3])
            bar.counts(done, total)
        else:
            tail = (tail + [line.rstrip()])[-5:]
    bar.close()
    if process.wait() != 0 or not outputs.is_file():
        fail(f"the emulated run of {model.name} ({qemu_cpu}) failed: " + " | ".join(tail))
    print(f"fp16_accuracy: {label}: {len(x)} inputs in {time.time() - started:.0f} s emulated",
          file=sys.stderr)
    return np.load(outputs)


def run_here(model: Path, x: np.ndarray) -> np.ndarray:
    """fp32 ``model`` in onnxruntime on this machine, for the architecture's own difference."""
    from condense_deploy.runtime.sessions import create_session

    session = create_session(model, 1)
    return np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i:i + 25]})[0]
                           for i in range(0, len(x), 25)])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def compare(fp32: np.ndarray, fp16: np.ndarray, x86: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    """The figures of one set: fp16 against fp32 (both emulated aarch64), fp32 aarch64 against x86."""
    k = min(5, fp32.shape[1])
    top32, top16 = np.argsort(-fp32, axis=1)[:, :k], np.argsort(-fp16, axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top32, top16, strict=True)]
    p32, p16 = softmax(fp32), softmax(fp16)
    row: dict[str, Any] = {
        "inputs": int(len(fp32)),
        "classes": int(fp32.shape[1]),
        "logits_max_abs_diff": float(np.abs(fp16.astype(np.float64) - fp32).max()),
        "logits_mean_abs_diff": float(np.abs(fp16.astype(np.float64) - fp32).mean()),
        "logits_std_fp32": float(fp32.std()),
        "logits_max_abs_fp32": float(np.abs(fp32).max()),
        "probabilities_max_abs_diff": float(np.abs(p16 - p32).max()),
        "top1_agreement": float(np.mean(top32[:, 0] == top16[:, 0])),
        "top1_disagreements": int(np.sum(top32[:, 0] != top16[:, 0])),
        "top5_overlap": float(np.mean(overlap)),
        "top1_margin_fp32_median": float(np.median(np.diff(np.sort(fp32, axis=1)[:, -2:], axis=1))),
        "fp32_aarch64_vs_x86_max_abs_diff": float(np.abs(fp32.astype(np.float64) - x86).max()),
    }
    if labels is not None:
        row["top1_err_fp32"] = float(100 * np.mean(fp32.argmax(1) != labels))
        row["top1_err_fp16"] = float(100 * np.mean(fp16.argmax(1) != labels))
    return row


def render(result: dict[str, Any]) -> str:
    sets = result["sets"]
    lines = [f"# fp16 DenseBlocks against fp32 ({result['qemu_cpu']}, emulated)", "",
             f"`{result['command']}` (with `AARCH64_CACHE` set for scripts/aarch64-env.sh; "
             f"{result['seconds']:.0f} s)", "", result["what"], "",
             "| set | model | inputs | logits max abs diff (fp32 logits: std, max abs) | max abs diff / std "
             "| logits mean abs diff | probabilities max abs diff | top-1 agreement | top-5 overlap "
             "| top-1 err % fp32 -> fp16 "
             "| fp32 aarch64 vs x86 max abs diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in sets.items():
        err = (f"{s['top1_err_fp32']:.2f} -> {s['top1_err_fp16']:.2f}" if "top1_err_fp32" in s
               else "- (no labels)")
        lines.append(
            f"| {name} | {s['model']} | {s['inputs']} | {s['logits_max_abs_diff']:.2e} "
            f"({s['logits_std_fp32']:.3g}, {s['logits_max_abs_fp32']:.3g}) | "
            f"{s['logits_max_abs_diff'] / s['logits_std_fp32']:.2%} | {s['logits_mean_abs_diff']:.2e} | "
            f"{s['probabilities_max_abs_diff']:.2e} | {100 * s['top1_agreement']:.1f} % "
            f"({s['top1_disagreements']} differ) | {100 * s['top5_overlap']:.1f} % | {err} | "
            f"{s['fp32_aarch64_vs_x86_max_abs_diff']:.1e} |")
    lines += ["", *[f"- {note}" for note in result["notes"]], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--epochs", type=int, default=30, help="digits training epochs (default 30)")
    parser.add_argument("--stages", default="4-4-4", help="digits CondenseNet stages (default 4-4-4)")
    parser.add_argument("--growth", default="8-8-8", help="digits CondenseNet growth (default 8-8-8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=["digits", "photos"], choices=["digits", "photos"])
    parser.add_argument("--qemu-cpu", default="neoverse-n1", help="an emulated core with FP16 arithmetic")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    parser.add_argument("--work", default=None, help="keep the data, the trained model and the exports here")
    parser.add_argument("--out", default=str(RESULTS), help="folder for fp16_accuracy.{json,md}")
    parser.add_argument("--force", action="store_true", help="overwrite existing result files")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or reuse) the digits model and stop")
    args = parser.parse_args()
    out = Path(args.out)
    targets = [out / "fp16_accuracy.json", out / "fp16_accuracy.md"]
    if not args.force and not args.train_only and any(p.exists() for p in targets):
        fail(f"{targets[0]} exists (use --force to overwrite)")
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fp16_accuracy_") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        jobs: dict[str, tuple[str, dict[str, Path], np.ndarray, np.ndarray | None]] = {}
        if "digits" in args.sets:
            from condense_deploy.images import load_images

            checkpoint = train_digits(work, args.epochs, args.stages, args.growth, args.seed)
            if args.train_only:
                return
            paths = export_pair(str(checkpoint), work, f"digits-{args.stages}-{args.epochs}ep")
            mean, std = _meta_list(paths["fp32"], "mean"), _meta_list(paths["fp32"], "std")
            x, labels = load_images(work / "digits", 32, 10_000, tuple(mean), tuple(std))
            jobs["digits (validation set)"] = (f"CondenseNet {args.stages} growth {args.growth}, C=G=4, "
                                               f"trained {args.epochs} epochs", paths, x, labels)
        if "photos" in args.sets:
            from condense_deploy.images import model_input

            paths = export_pair(PHOTO_MODEL, work, PHOTO_MODEL)
            mean, std = _meta_list(paths["fp32"], "mean"), _meta_list(paths["fp32"], "std")
            files = photo_files()
            x = np.stack([model_input(f, 224, mean, std) for f in files])
            jobs["photos (224x224)"] = (f"{PHOTO_MODEL}, random weights", paths, x, None)
        sets: dict[str, Any] = {}
        for name, (model, paths, x, labels) in jobs.items():
            outputs = {p: run_emulated(paths[p], x, work, args.qemu_cpu, f"{name}, {p}")
                       for p in ("fp32", "fp16")}
            here = run_here(paths["fp32"], x)
            sets[name] = {"model": model, **compare(outputs["fp32"], outputs["fp16"], here, labels)}
            print(f"fp16_accuracy: {name}: {json.dumps(sets[name])}", file=sys.stderr)
    photos = [str(f.name) for f in photo_files()] if "photos" in args.sets else []
    result = {
        "command": "python benchmarks/fp16_accuracy.py " + " ".join(sys.argv[1:]),
        "qemu_cpu": args.qemu_cpu,
        "what": ("Emulated aarch64 (qemu-aarch64 with QEMU_CPU=" + args.qemu_cpu + ", which has ARMv8.2 FP16 "
                 "arithmetic; scripts/aarch64-env.sh): both precisions run by the toolkit's runtime with the "
                 "native kernels cross-compiled for aarch64. qemu computes the fp16 instructions in "
                 "software by the architecture's IEEE rules (what a board's results should be); it says "
                 "nothing about speed."),
        "notes": [
            "digits: scikit-learn's handwritten digits as in benchmarks/deploy_accuracy.py (8x8 upsampled to "
            "32x32, 300 validation images, a seeded split), trained here, converted with --classifier full.",
            f"photos: {', '.join(photos) or '-'} (matplotlib, scikit-learn and scikit-image package data), "
            "the evaluation crop at 224x224. CondenseNet-74 C=G=8 has random weights (the zoo has no trained "
            "ImageNet weights): these rows show how fp16 arithmetic moves this network's activations on real "
            "image statistics, not how a trained classifier's decisions move. With random weights the logits "
            "sit close together (see the median top-1 margin in the JSON), so a top-1 flip there needs only "
            "a tiny move.",
            "fp32 aarch64 vs x86: the same fp32 export in onnxruntime on x86 here, the difference the "
            "architecture alone makes.",
            "Modeled speed of fp16 is in benchmarks/arm_model.py (docs/arm.md); nothing here is timed.",
        ],
        "torch_threads": args.threads,
        "seconds": round(time.time() - started, 1),
        "sets": sets,
    }
    from condense_deploy._fsutil import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_json(targets[0], result)
    write_text(targets[1], render(result))
    print(render(result))


if __name__ == "__main__":
    main()
