"""Image data readers shared by the trainer, ``eval`` and ``quantize``'s calibration. numpy (and
Pillow, imported when an image is decoded) only: never torch.

- the CIFAR python batches, through an unpickler that allows numpy arrays and nothing else;
- the image file suffixes an ImageFolder tree may hold;
- the evaluation resize + centre crop (the one the training/eval path always used: the shorter side
  to ``resize``, bilinear, then the centre crop with its offset rounded half to even).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from .errors import CondenseDeployError

__all__ = ["IMAGE_SUFFIXES", "eval_resize", "resize_center_crop", "unpickle_cifar_batch"]

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
