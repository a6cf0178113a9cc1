"""condense-deploy: CondenseNet from training checkpoint to fast onnxruntime inference.

Importing the package is cheap and torch-free; the torch-backed API is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily so a board without torch can import us)
_LAZY = {
    "CondenseDeployError": "condense_deploy.errors",
    "create_model": "condense_deploy.architectures.registry",
    "list_models": "condense_deploy.architectures.registry",
    "get_card": "condense_deploy.architectures.registry",
    "export_onnx": "condense_deploy.export",
    "validate_onnx": "condense_deploy.export",
    "describe_onnx": "condense_deploy.graph.onnx_info",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'condense_deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
