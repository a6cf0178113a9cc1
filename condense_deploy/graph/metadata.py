"""The keys we write into a model's ``metadata_props``. No dependencies: the table, the exporter and
``inspect`` read them on a board."""

from __future__ import annotations

import os

__all__ = ["META", "OPTIMIZE_KEY", "PRECISION_KEY", "read_metadata"]

META = "condense_deploy."  # prefix of every metadata_props key we write
OPTIMIZE_KEY = META + "optimize"  # optimize's report (JSON): mode, passes, tuned choices
PRECISION_KEY = META + "precision"  # a native model's DenseBlock arithmetic: fp32 or fp16


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (weights are not read; onnx only, no torch)."""
    import onnx

    proto = onnx.load(os.fspath(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
