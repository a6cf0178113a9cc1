"""Image data readers shared by the trainer, ``eval`` and ``quantize``'s calibration. numpy (and
Pillow, imported when an image is decoded) only: never torch.

- the CIFAR python batches, through an unpickler that allows numpy arrays and nothing else, read by
  ``read_cifar`` from every layout (the .tar.gz, its extracted folder, a folder holding either): the
  one CIFAR reader of ``train``, ``eval`` and ``quantize``;
- the image file suffixes an ImageFolder tree may hold;
- the evaluation resize + centre crop (the one the training/eval path always used: the shorter side
  to ``resize``, bilinear, then the centre crop with its offset rounded half to even);
- decoding one image file to 8-bit RGB (``load_rgb``: grey, palette and CMYK images are converted,
  16-bit and float images refused) and the model input made from it (``model_input``): the one
  preprocessing of ``eval``, ``predict`` and the trainer's validation split.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

from .errors import CondenseDeployError

__all__ = ["CIFAR", "IMAGE_SUFFIXES", "cifar_files", "eval_crop", "eval_resize", "list_image_folder",
           "load_rgb", "model_input", "normalize", "read_cifar", "resize_center_crop", "unpickle_cifar_batch",
           "which_cifar"]

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


def eval_resize(size: int, dataset: str | None = None) -> int:
    """The shorter side evaluation resizes to before the centre ``size`` crop (256 for 224). A CIFAR
    model was trained on whole 32x32 images, not crops: its images are resized to ``size`` itself."""
    if dataset is not None and dataset.startswith("cifar"):
        return size
    return round(size * 256 / 224)


# Pillow modes that hold more than 8 bits per sample: converting them to RGB clips (a 16-bit PNG
# becomes nearly white), so they are refused rather than silently misread.
_DEEP_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B"}


def load_rgb(path: str | Path) -> Any:
    """``path`` decoded to an 8-bit RGB Pillow image; every failure is one line naming the file.

    Converted (as the trainer's ImageFolder reader always did): grey and black-and-white (copied into
    the three channels), palette, CMYK (Pillow's conversion), RGBA/LA (alpha dropped), YCbCr. Refused:
    16-bit and float images (to save as 8-bit first). The first frame of an animation is used.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise CondenseDeployError(
            "decoding images needs pillow, which is not installed: pip install pillow") from e
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
        raise CondenseDeployError(f"{path}: not an image Pillow can decode") from e
    except FileNotFoundError as e:
        raise CondenseDeployError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise CondenseDeployError(f"{path}: is a folder") from e
    except Exception as e:  # truncated data, decompression bombs, decoder errors: all mean "unusable"
        raise CondenseDeployError(f"{path}: cannot decode the image ({_one_line(e)})") from e


def eval_crop(image: Any, size: int, dataset: str | None = None) -> Any:
    """The evaluation view of ``image``: shorter side to ``eval_resize(size, dataset)``, centre crop
    ``size`` (an image already ``size`` x ``size`` at a CIFAR size is left as it is)."""
    return resize_center_crop(image, eval_resize(size, dataset), size)


def normalize(pixels: Any, mean: Any, std: Any) -> Any:
    """uint8 images (N, 3, H, W) or (3, H, W) -> float32 scaled to [0, 1], minus ``mean``, over ``std``
    (per channel), computed in float32 as the trainer's torch code does."""
    import numpy as np

    x = np.asarray(pixels).astype(np.float32) / np.float32(255)
    shape = (3, 1, 1)
    m = np.asarray(mean, np.float32).reshape(shape)
    s = np.asarray(std, np.float32).reshape(shape)
    return ((x - m) / s).astype(np.float32)


def model_input(path: str | Path, size: int, mean: Any, std: Any, dataset: str | None = None) -> Any:
    """One image file as the float32 (3, size, size) input of an evaluation or a prediction."""
    import numpy as np

    image = eval_crop(load_rgb(path), size, dataset)
    pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    return normalize(pixels, mean, std)


def list_image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """An ImageFolder tree ``root/CLASS/**/*.jpg``: its sorted class folder names and (file, label)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples = [
        (path, label)
        for label, cls in enumerate(classes)
        for path in sorted((root / cls).rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    return classes, samples


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


def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


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
                    f"{candidate}: cannot read the CIFAR batches ({_one_line(e)})") from e
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
            raise CondenseDeployError(f"{archive}: cannot read the archive ({_one_line(e)})") from e
        missing = [f for f in wanted if f not in members]
        if missing:
            raise CondenseDeployError(
                f"{archive}: {len(missing)} batch file(s) missing under {folder}/: {', '.join(missing)}")
        return members
    raise CondenseDeployError(
        f"{name}: no data in {data_dir}: put {archive_name} (from https://www.cs.toronto.edu/~kriz/"
        f"cifar.html) or its extracted {folder}/ folder there; nothing is downloaded")
