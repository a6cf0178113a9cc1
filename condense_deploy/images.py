"""Image data readers shared by the trainer, ``eval`` and ``quantize``'s calibration. numpy (and
Pillow, imported when an image is decoded) only: never torch.

- the CIFAR python batches, through an unpickler that allows numpy arrays and nothing else, read by
  ``read_cifar`` from every layout (the .tar.gz, its extracted folder, a folder holding either): the
  one CIFAR reader of ``train``, ``eval`` and ``quantize``;
- the image file suffixes an ImageFolder tree may hold;
- the evaluation resize + centre crop (the one the training/eval path always used: the shorter side
  to ``resize``, bilinear, then the centre crop with its offset rounded half to even).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

from .errors import CondenseDeployError, first_line

__all__ = ["CIFAR", "IMAGE_SUFFIXES", "cifar_files", "eval_resize", "read_cifar", "resize_center_crop",
           "unpickle_cifar_batch", "which_cifar"]

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
