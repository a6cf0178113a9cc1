"""The model zoo: cards in ``models/`` (one JSON file per variant) and one builder per family.

Cards are data (architecture numbers, preprocessing, export settings, published figures) and are
read without torch, so ``list``, ``inspect`` and the bench report work on a board. Each family
module of this package registers one builder with ``@register_family`` (the decorator is the only
record of which module builds which family: building a model imports the package's modules); every
card of that family is built by it from the card. Each card's ``export`` field holds its own export
settings (opset, validation atol), as Optimum's per-model export configs do. ``create_model`` is the
one way to build a model. The cards ship inside the package as ``condense_deploy.cards``
(pyproject.toml maps that package onto the top-level ``models/`` folder, so a wheel holds a copy); a
checkout run without installing reads ``models/`` itself.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import json
import pkgutil
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ..errors import CondenseDeployError

__all__ = ["create_model", "dataset_preprocessing", "export_settings", "get_card", "list_models",
           "register_family", "registered_entrypoints"]

# family -> builder(card, **overrides)
_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_family(family: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Record the builder of ``family``: ``builder(card, **overrides)``; a second one is a bug."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if family in _BUILDERS and _BUILDERS[family] is not fn:
            raise RuntimeError(f"model family {family!r} registered twice")
        _BUILDERS[family] = fn
        return fn

    return register


def _cards_folder() -> Any:
    """The installed ``condense_deploy.cards`` package, else the checkout's ``models/`` folder."""
    try:
        return importlib.resources.files("condense_deploy.cards")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "models"


@functools.lru_cache(maxsize=1)
def _all_cards() -> dict[str, dict[str, Any]]:
    cards: dict[str, dict[str, Any]] = {}
    folder = _cards_folder()
    files = [f for f in folder.iterdir() if f.name.endswith(".json")]
    for path in sorted(files, key=lambda f: f.name):
        stem = path.name[: -len(".json")]
        card = json.loads(path.read_text())
        if card.get("name") != stem:
            raise RuntimeError(f"{path}: card name {card.get('name')!r} differs from its file name")
        cards[stem] = card
    return cards


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Card names matching a shell-style ``pattern`` (and ``family`` if given), sorted."""
    return [
        name
        for name, card in _all_cards().items()
        if fnmatch(name, pattern) and (family is None or card["family"] == family)
    ]


def get_card(name: str) -> dict[str, Any]:
    """A copy of the card of ``name``; an unknown name is a one-line error listing the known ones."""
    cards = _all_cards()
    if name not in cards:
        raise CondenseDeployError(f"unknown model {name!r}; known models: {', '.join(cards)}")
    return json.loads(json.dumps(cards[name]))


def dataset_preprocessing(dataset: str) -> tuple[list[float], list[float]]:
    """The mean and std every card of ``dataset`` (``cifar10``, ``imagenet``) normalises with."""
    found = {(tuple(c["mean"]), tuple(c["std"])) for c in _all_cards().values() if c["dataset"] == dataset}
    if len(found) != 1:
        raise RuntimeError(f"cards of data set {dataset!r}: {len(found)} different mean/std (expected one)")
    mean, std = found.pop()
    return list(mean), list(std)


def export_settings(name: str) -> tuple[int, float]:
    """The ONNX opset and the validation atol of model ``name``, from its card's ``export`` field."""
    settings = get_card(name).get("export")
    try:
        opset, atol = settings["opset"], settings["atol"]  # type: ignore[index]
        if isinstance(opset, bool) or not isinstance(opset, int) or not float(atol) > 0:
            raise ValueError
    except (TypeError, KeyError, ValueError) as e:
        raise RuntimeError(
            f"card {name!r}: export must be {{'opset': int, 'atol': > 0}}, not {settings!r}") from e
    return opset, float(atol)


@functools.lru_cache(maxsize=1)
def _import_families() -> None:
    """Import every module of this package, so each family's ``@register_family`` has run."""
    package = __name__.rsplit(".", 1)[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        importlib.import_module(module.name)


def registered_entrypoints() -> list[str]:
    """Every card name a registered builder can build (for the card/builder test)."""
    _import_families()
    return sorted(name for name, card in _all_cards().items() if card["family"] in _BUILDERS)


def create_model(name: str, **overrides: Any) -> Any:
    """Build the model ``name`` (randomly initialised); ``overrides`` change card values such as
    ``num_classes`` or ``converted=True``."""
    card = get_card(name)
    _import_families()
    if card["family"] not in _BUILDERS:
        raise RuntimeError(f"card {name!r}: no builder registered for family {card['family']!r}")
    return _BUILDERS[card["family"]](card, **overrides)
