"""Static int8 quantization (onnxruntime QDQ, per-channel weights) calibrated on real images,
with the accuracy change and the latency change measured. Torch-free.

Images come from ``images.load_images``: an ImageFolder (class folders of JPEG/PNG -> labels; a flat
folder -> no labels) or a CIFAR python archive (its test batch, with labels), preprocessed as the
model card says (resize + center crop to the model's input size, then mean/std).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import CondenseDeployError, first_line
from ..images import load_images
from ..native.contract import DOMAIN

__all__ = ["quantize_file", "quantize_onnx"]


# ------------------------------------------------------------------------------------ quantization

def quantize_onnx(model: onnx.ModelProto, calibration: np.ndarray) -> onnx.ModelProto:
    """int8 QDQ with per-channel symmetric weights and MinMax activation ranges from ``calibration``."""
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    input_name = model.graph.input[0].name

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{input_name: calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        clean = onnx.ModelProto()
        clean.CopyFrom(model)
        onnx.save(clean, str(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer warns through the root logger for every BN
        try:
            quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as e:  # onnxruntime.quantization raises plain exceptions
            raise CondenseDeployError(f"quantization failed: {first_line(e)}") from e
        finally:
            root.setLevel(level)
        return onnx.load(str(dst))


def _predict(session: Any, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]).argmax(1)


def _card_preprocessing(card: str | None, size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from ..architectures.registry import dataset_preprocessing, get_card

    if card is None:
        mean, std = dataset_preprocessing("cifar10" if size == 32 else "imagenet")
    else:
        info = get_card(card)
        mean, std = info["mean"], info["std"]
    return tuple(mean), tuple(std)


def quantize_file(source: str, target: str, calibration_data: str, card: str | None = None,
                  calibration_size: int = 64, eval_size: int = 256, threads: int = 1,
                  force: bool = False) -> dict[str, Any]:
    """Quantize ``source`` into ``target``; returns calibration size, top-1 (with labels),
    int8/fp32 agreement and interleaved median latencies."""
    from .._fsutil import atomic_path, check_writable
    from ..runtime.sessions import create_session
    from ..runtime.timing import time_models
    from .onnx_info import image_input_size, load_checked
    from .optimize import LOAD_ERROR

    model = load_checked(source, image_classifier=True)
    check_writable(target, force)
    if any(o.domain == DOMAIN for o in model.opset_import):
        raise CondenseDeployError(f"{source}: its dense blocks run on the native kernels, which are float32 "
                                  "only and cannot be quantized; quantize the portable export "
                                  "(--optimize none or fast) instead")
    size = image_input_size(model)
    mean, std = _card_preprocessing(card, size)
    images, labels = load_images(calibration_data, size, calibration_size + eval_size, mean, std)
    if len(images) <= calibration_size and eval_size:
        raise CondenseDeployError(f"{calibration_data}: only {len(images)} images; need more than "
                                  f"--calibration-size {calibration_size} to also evaluate")
    calibration, evaluation = images[:calibration_size], images[calibration_size:]
    quantized = quantize_onnx(model, calibration)
    report: dict[str, Any] = {"calibration_images": len(calibration), "eval_images": len(evaluation)}
    fp32, int8 = (create_session(m, threads, load_error=LOAD_ERROR) for m in (model, quantized))
    if len(evaluation):
        a, b = _predict(fp32, evaluation), _predict(int8, evaluation)
        report["agreement"] = float(np.mean(a == b))
        if labels is not None:
            truth = labels[calibration_size:]
            report["top1_fp32"] = float(np.mean(a == truth))
            report["top1_int8"] = float(np.mean(b == truth))
    else:
        report["agreement"] = float("nan")
    report["fp32_ms"], report["int8_ms"] = time_models([model, quantized], threads, rounds=15, inner=3)
    with atomic_path(target, overwrite=force) as tmp:
        onnx.save(quantized, str(tmp))
    return report
