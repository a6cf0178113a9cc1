"""Image data readers shared by the trainer, ``eval`` and ``quantize``'s calibration. numpy (and
Pillow, imported when an image is decoded) only: never torch, so a board can read images too.

- the CIFAR python batches, through an unpickler that allows numpy arrays and nothing else, read by
  ``read_cifar`` from every layout (the .tar.gz, its extracted folder, a folder holding either): the
  one CIFAR reader of ``train``, ``eval`` and ``quantize``; ``cifar_arrays`` checks a batch's shape;
- ImageFolder trees: ``class_folders`` (class folders -> labels), ``image_files`` and
  ``decode_rgb`` (Pillow to 8-bit RGB: grey, palette and CMYK converted, 16-bit refused; one-line
  errors);
- the evaluation resize + centre crop (the one the training/eval path always used: the shorter side
  to ``resize``, bilinear, then the centre crop with its offset rounded half to even);
- ``load_images``: preprocessed float arrays from either source, for calibration and inference;
  ``model_input``: one image file as a model's input (``eval`` of an .onnx file and ``predict``).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CondenseDeployError, first_line, missing_dependency

__all__ = ["CIFAR", "IMAGE_SUFFIXES", "cifar_arrays", "cifar_files", "class_folders", "decode_rgb",
           "eval_crop", "eval_resize", "image_files", "load_images", "model_input", "normalize", "read_cifar",
           "resize_center_crop", "unpickle_cifar_batch", "which_cifar"]

# name -> (archive, the folder it extracts to, train batch files, test batch files)
CIFAR: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py",
                tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", ("train",), ("test",)),
}

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"})


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts, lists, numpy arrays) and refuses anything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def unpickle_cifar_batch(raw: bytes, where: str) -> dict[str, Any]:
    """One CIFAR python batch file's dict, with str keys; a one-line error naming ``where``."""
    try:
        data = _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # pickle raises many types on corrupt input
        raise CondenseDeployError(f"{where}: not a CIFAR python batch ({e})") from e
    if not isinstance(data, dict):
        raise CondenseDeployError(f"{where}: not a CIFAR python batch (a {type(data).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def eval_resize(size: int) -> int:
    """The shorter side evaluation resizes to before the centre ``size`` crop (256 for 224)."""
    return round(size * 256 / 224)


def resize_center_crop(image: Any, resize: int, crop: int) -> Any:
    """Resize the shorter side to ``resize``, then take the centre ``crop`` x ``crop``."""
    from PIL import Image

    width, height = image.size
    scale = resize / min(width, height)
    new_w, new_h = max(crop, round(width * scale)), max(crop, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - crop) / 2)), int(round((new_h - crop) / 2))
    return image.crop((left, top, left + crop, top + crop))


def cifar_files(name: str, train: bool = True, test: bool = True) -> list[str]:
    """The batch files of ``name`` (``cifar10``/``cifar100``) for the splits asked for."""
    _, _, train_files, test_files = CIFAR[name]
    return [*(train_files if train else ()), *(test_files if test else ())]


def which_cifar(path: str | Path) -> str | None:
    """Which CIFAR ``path`` holds, by its layout: the archive, its extracted folder, or a folder
    holding either (as ``train --data-dir`` takes it); None when it looks like none of them."""
    p = Path(path)
    for name, (archive, folder, _, test_files) in CIFAR.items():
        if p.is_file() and p.name == archive:
            return name
        if p.is_dir() and ((p / archive).is_file() or (p / folder / test_files[0]).is_file()
                           or ((p / test_files[0]).is_file() and (p.name == folder or name == "cifar10"))):
            return name
    return None


def read_cifar(name: str, source: str | Path, train: bool = True, test: bool = True) -> dict[str, bytes]:
    """The wanted batch files' bytes of CIFAR ``name`` from ``source``: the extracted folder (or a
    folder holding it), the archive, or a folder holding the archive (tried in that order). Every
    failure (missing files, a damaged archive) is one line."""
    archive_name, folder, _, _ = CIFAR[name]
    wanted = cifar_files(name, train, test)
    data_dir = Path(source)
    candidates = [data_dir / folder, data_dir] if data_dir.is_dir() else []
    for candidate in candidates:
        if all((candidate / f).is_file() for f in wanted):
            try:
                return {f: (candidate / f).read_bytes() for f in wanted}
            except OSError as e:
                raise CondenseDeployError(
                    f"{candidate}: cannot read the CIFAR batches ({first_line(e)})") from e
    archive = data_dir / archive_name if data_dir.is_dir() else data_dir
    if archive.is_file():
        members: dict[str, bytes] = {}
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in wanted and member.name.startswith(folder + "/"):
                        handle = tar.extractfile(member)
                        if handle is not None:
                            members[base] = handle.read()
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise CondenseDeployError(f"{archive}: cannot read the archive ({first_line(e)})") from e
        missing = [f for f in wanted if f not in members]
        if missing:
            raise CondenseDeployError(
                f"{archive}: {len(missing)} batch file(s) missing under {folder}/: {', '.join(missing)}")
        return members
    raise CondenseDeployError(
        f"{name}: no data in {data_dir}: put {archive_name} (from https://www.cs.toronto.edu/~kriz/"
        f"cifar.html) or its extracted {folder}/ folder there; nothing is downloaded")


def cifar_arrays(batch: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR batch's images as uint8 [N, 3, 32, 32] and its labels (CIFAR-100: the fine ones)."""
    data = np.asarray(batch.get("data"))
    labels = batch.get("labels", batch.get("fine_labels"))
    if data.ndim != 2 or data.shape[1] != 3072 or labels is None or len(labels) != data.shape[0]:
        raise CondenseDeployError(
            f"{where}: a batch has data of shape {data.shape} and {0 if labels is None else len(labels)} "
            "labels; expected uint8 [N, 3072] and N labels")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


# --------------------------------------------------------------------------------- ImageFolder


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (and below it with ``recursive``), by suffix, sorted."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def class_folders(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """ImageFolder: the class folders of ``root`` (sorted names; label = index) and every image
    below each, as (file, label); no class folders gives two empty lists."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples = [(path, label) for label, name in enumerate(classes)
               for path in image_files(root / name, recursive=True)]
    return classes, samples


# Pillow modes that hold more than 8 bits per sample: converting them to RGB clips (a 16-bit PNG
# becomes nearly white), so they are refused rather than silently misread.
_DEEP_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B"}


def decode_rgb(path: Path) -> Any:
    """The image at ``path`` as an 8-bit RGB Pillow image; every failure is one line naming the file.

    Converted (as the trainer's ImageFolder reader always did): grey and black-and-white (copied into
    the three channels), palette, CMYK (Pillow's conversion), RGBA/LA (alpha dropped), YCbCr. Refused:
    16-bit and float images (to save as 8-bit first). The first frame of an animation is used.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise missing_dependency("reading JPEG/PNG", "pillow", "pip install pillow") from e
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in _DEEP_MODES:
                raise CondenseDeployError(
                    f"{path}: a {'float' if mode == 'F' else '16/32-bit'} ({mode}) image; the models take "
                    "8-bit images: save it as 8-bit first")
            image.load()
            return image.convert("RGB")
    except CondenseDeployError:
        raise
    except UnidentifiedImageError as e:
        raise CondenseDeployError(f"{path}: cannot decode the image (not an image Pillow can read)") from e
    except FileNotFoundError as e:
        raise CondenseDeployError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise CondenseDeployError(f"{path}: is a folder") from e
    except Exception as e:  # truncated data, decompression bombs, decoder errors: all mean "unusable"
        raise CondenseDeployError(f"{path}: cannot decode the image ({first_line(e)})") from e


def eval_crop(image: Any, size: int, dataset: str | None = None) -> np.ndarray:
    """uint8 [size, size, 3]: the evaluation crop (``resize_center_crop`` after ``eval_resize``);
    an image whose shorter side is already ``size`` is only cropped. A CIFAR model (``dataset``
    cifar10/cifar100/cifar) was trained on whole 32x32 images, not crops: its images are resized
    to ``size`` itself."""
    whole = dataset is not None and dataset.startswith("cifar")
    resize = size if whole or min(image.size) == size else eval_resize(size)
    return np.asarray(resize_center_crop(image, resize, size), dtype=np.uint8)


def normalize(pixels: Any, mean: Any, std: Any) -> np.ndarray:
    """uint8 images (N, 3, H, W) or (3, H, W) -> float32 scaled to [0, 1], minus ``mean``, over ``std``
    (per channel), computed in float32 as the trainer's torch code does."""
    x = np.asarray(pixels).astype(np.float32) / np.float32(255)
    m = np.asarray(mean, np.float32).reshape(3, 1, 1)
    s = np.asarray(std, np.float32).reshape(3, 1, 1)
    return ((x - m) / s).astype(np.float32)


def model_input(path: str | Path, size: int, mean: Any, std: Any, dataset: str | None = None) -> np.ndarray:
    """One image file as the float32 (3, size, size) input of an evaluation or a prediction."""
    pixels = eval_crop(decode_rgb(Path(path)), size, dataset).transpose(2, 0, 1)
    return normalize(pixels, mean, std)


# ------------------------------------------------------------------------ preprocessed arrays


def _cifar_test_batch(path: Path, name: str | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 32, 32, 3] images and labels of the CIFAR-10/100 test batch (archive, extracted
    folder, or a folder holding either; ``name`` None tries both)."""
    names = [name] if name else list(CIFAR)
    members, error = None, None
    for candidate in names:  # an archive under another name: whichever layout it holds
        try:
            members = read_cifar(candidate, path, train=False)
            name = candidate
            break
        except CondenseDeployError as e:
            error = error or e
    if members is None or name is None:
        assert error is not None
        raise error
    (test_file,) = cifar_files(name, train=False)
    images, labels = cifar_arrays(unpickle_cifar_batch(members[test_file], f"{path}: {test_file}"),
                                  f"{path}: {test_file}")
    return images.transpose(0, 2, 3, 1), labels


def load_images(source: str | Path, size: int, count: int, mean: tuple[float, ...] | None = None,
                std: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Up to ``count`` preprocessed images [N, 3, size, size] float32 and their labels (or None),
    from a CIFAR archive or folder (its test batch) or an image folder (class folders give labels,
    a flat folder none); ``mean``/``std`` default to the ImageNet cards'."""
    if mean is None or std is None:
        from .architectures.registry import dataset_preprocessing

        card_mean, card_std = dataset_preprocessing("imagenet")
        mean, std = mean or tuple(card_mean), std or tuple(card_std)
    path = Path(source)
    if not path.exists():
        raise CondenseDeployError(f"{path}: no such file or folder")
    cifar = which_cifar(path)
    labels: np.ndarray | None
    if cifar is not None or path.is_file():
        images, labels = _cifar_test_batch(path, cifar)
        images, labels = images[:count], labels[:count]
        if size != 32:
            from PIL import Image

            images = np.stack([eval_crop(Image.fromarray(i), size) for i in images])
    else:
        classes, labelled = class_folders(path)
        files: list[tuple[Path, int | None]] = (
            list(labelled) if classes else [(p, None) for p in image_files(path)])
        files = files[:count]
        if not files:
            raise CondenseDeployError(f"{path}: no JPEG/PNG images found (class folders or a flat folder)")
        images = np.stack([eval_crop(decode_rgb(file), size) for file, _ in files])
        labels = None if files[0][1] is None else np.array([label for _, label in files])
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    x = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    return np.ascontiguousarray(x), labels
