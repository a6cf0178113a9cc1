"""``condense-deploy predict``: top-k classes of image files with an exported model (no torch)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import _fsutil
from ..classnames import labels_file
from ..predict import collect_images, open_image_model, predict_images
from .options import count
from .progress import ProgressBar


@click.command("predict")
@click.argument("model", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, metavar="IMAGE|FOLDER...")
@click.option("-k", "--top-k", type=count(1, 100_000), default=5, show_default=True,
              help="Classes shown per image.")
@click.option("-b", "--batch-size", type=count(1, 4096), default=8, show_default=True,
              help="Images per run (a model with a fixed batch uses its own).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Class names, one per line in class order [default: the model's metadata, or its "
                   "data set's list].")
@click.option("--threads", type=count(1, 1024), default=None,
              help="onnxruntime intra-op threads [default: onnxruntime's].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the predictions as JSON.")
@click.option("--force", is_flag=True, help="Overwrite an existing --json file.")
def predict_command(model: str, images: tuple[str, ...], top_k: int, batch_size: int, labels: str | None,
                    threads: int | None, json_path: Path | None, force: bool) -> None:
    """Classify IMAGE files (JPEG, PNG, BMP, WebP, TIFF; folders are searched) with MODEL.onnx.

    Each image is resized (shorter side), centre-cropped and normalised as the model's metadata says,
    exactly as `eval` prepares images; grey, palette and CMYK images are converted to RGB, 16-bit
    images refused. Prints the top-k classes with probabilities (softmax of the outputs) and names
    from --labels, the model's metadata or its data set; indices when there are none.
    """
    if json_path is not None:
        _fsutil.check_writable(json_path, force)
    names = labels_file(labels) if labels is not None else None
    paths = collect_images(images)
    loaded = open_image_model(model, threads=threads, labels=names)
    for note in loaded.notes:
        click.echo(f"note: {model}: {note}", err=True)
    bar = ProgressBar(f"predict {len(paths)} images")
    try:
        results = predict_images(loaded, paths, top_k=top_k, batch=batch_size,
                                 progress=bar.counts if len(paths) > batch_size else None)
    finally:
        bar.close()
    for r in results:
        click.echo(r.path)
        for index, name, probability in r.top:
            label = f"{name} ({index})" if name is not None else f"class {index}"
            click.echo(f"  {100 * probability:6.2f} %  {label}")
    if json_path is not None:
        _fsutil.write_json(json_path, {"model": model, "classes_named": loaded.class_names is not None,
                                       "predictions": [r.to_dict() for r in results]})
        click.echo(f"wrote {json_path}", err=True)
