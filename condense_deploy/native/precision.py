"""The DenseBlock op's arithmetic precision, and whether this CPU can run fp16 blocks. Standard library
only (no numpy, onnx or onnxruntime): ``info`` and the export's "not run here" line use it; a session
on such a CPU is refused by the kernels themselves, in one message naming what the CPU lacks.

``fp32`` (the default, and what a DenseBlock without a ``precision`` attribute computes) runs
everywhere. ``fp16`` computes the block in ARMv8.2 FP16 arithmetic (inputs and outputs stay float32
tensors): it needs a CPU with FP16 arithmetic (the ``fphp`` and ``asimdhp`` hardware capabilities,
e.g. Cortex-A76 / Raspberry Pi 5, Neoverse-N1); no x86 CPU and no Cortex-A72 (Raspberry Pi 4) has it.
"""

from __future__ import annotations

import ctypes

from ..libcheck import host_machine, library_problem, library_queries
from .contract import DENSE_BLOCK_OPTIONAL_ATTRIBUTES, DENSE_BLOCK_PRECISIONS

__all__ = ["DEFAULT_PRECISION", "FP16_NEEDS", "FP16_REFUSAL", "PRECISIONS", "PRECISION_ATTRIBUTE",
           "cpu_fp16_problem", "fp16_refusal", "uses_fp16"]

PRECISIONS = DENSE_BLOCK_PRECISIONS  # ("fp32", "fp16"): the op contract's values
DEFAULT_PRECISION = PRECISIONS[0]
PRECISION_ATTRIBUTE = DENSE_BLOCK_OPTIONAL_ATTRIBUTES[0]  # "precision", a string; absent means fp32
FP16_NEEDS = "ARMv8.2 FP16 arithmetic (fphp + asimdhp: Cortex-A76 / Raspberry Pi 5, Neoverse-N1)"
# How the kernels (csrc/ops/dense_block.cc) start their refusal of an fp16 block on a CPU without it.
FP16_REFUSAL = "DenseBlock: precision fp16 needs FP16 arithmetic"

# The attribute as protobuf serializes it (name = field 1, s = field 4, in field order): a model holds
# these bytes exactly when one of its nodes has precision="fp16".
_FP16_ATTRIBUTE_BYTES = (b"\n" + bytes([len(PRECISION_ATTRIBUTE)]) + PRECISION_ATTRIBUTE.encode()
                         + b'"\x04fp16')

_HWCAP_FPHP, _HWCAP_ASIMDHP = 1 << 9, 1 << 10  # Linux asm/hwcap.h (aarch64)


def fp16_refusal(error_text: str) -> str | None:
    """The kernels' refusal of fp16 blocks on this CPU, cut out of onnxruntime's error text; None for
    any other error. The file is a valid model there: it is the CPU that lacks, and saying so beats
    onnxruntime's "cannot load" framing."""
    start = error_text.find(FP16_REFUSAL)
    return error_text[start:].strip() if start >= 0 else None


def uses_fp16(data: bytes) -> bool:
    """True when the serialized model ``data`` has a node with ``precision="fp16"``."""
    return _FP16_ATTRIBUTE_BYTES in data


def _hwcap_fp16() -> bool:
    try:
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        getauxval.argtypes = [ctypes.c_ulong]
        hwcap = int(getauxval(16))  # AT_HWCAP: what the kernel (or qemu-user) grants
    except (OSError, AttributeError):
        return False
    return bool(hwcap & _HWCAP_FPHP) and bool(hwcap & _HWCAP_ASIMDHP)


def cpu_fp16_problem(library: str | None = None) -> str | None:
    """What this CPU lacks to run fp16 DenseBlocks, as the end of a sentence; None when it can.

    On aarch64 the kernel library's own probe decides (``condense_deploy_cpu_features``, the one the
    kernels dispatch on) when ``library`` is given and loadable, else the same hardware capabilities
    read here.
    """
    host = host_machine()
    if host != "aarch64":
        return f"this CPU ({host}) has no {FP16_NEEDS}"
    features: str | None = None
    if library is not None and library_problem(library) is None:
        try:
            found = library_queries(library, "condense_deploy_cpu_features")["condense_deploy_cpu_features"]
        except OSError:
            found = None
        features = found if isinstance(found, str) else None
    has = ("fp16" in features.split()) if features is not None else _hwcap_fp16()
    return None if has else f"this CPU (aarch64 without fphp/asimdhp) has no {FP16_NEEDS}"

