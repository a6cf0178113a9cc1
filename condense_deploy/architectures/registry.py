"""The model zoo: cards in ``models/`` (one JSON file per variant) and one builder per family.

Cards are data (architecture numbers, preprocessing, export settings, published figures) and are
read without torch, so ``list``, ``inspect`` and the bench report work on a board. Each family
module registers one builder with ``@register_family``; every card of that family is built by it
from the card. ``create_model`` is the one way to build a model. The cards ship inside the package
as ``condense_deploy.cards`` (pyproject.toml maps that package onto the top-level ``models/``
folder, so a wheel holds a copy); a checkout run without installing reads ``models/`` itself.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import json
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ..errors import CondenseDeployError

__all__ = ["create_model", "dataset_preprocessing", "export_settings", "get_card", "list_models",
           "register_family", "registered_entrypoints"]

# Which module defines the builder of each card family; imported only when a model is built.
_FAMILY_MODULES = {
    "condensenet": "condense_deploy.architectures.condensenet",
    "densenet": "condense_deploy.architectures.densenet",
    "vgg16": "condense_deploy.architectures.baselines",
    "resnet18": "condense_deploy.architectures.baselines",
    "mobilenet_v1": "condense_deploy.architectures.baselines",
    "mobilenet_v2": "condense_deploy.architectures.baselines",
    "shufflenet_v2_x1_0": "condense_deploy.architectures.baselines",
}

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


def export_settings() -> dict[str, Any]:
    """The cards' ``export`` field (opset, atol): one setting for every card, which ``export``
    uses as its defaults (a card that needs another would need per-model export settings)."""
    found = {json.dumps(c["export"], sort_keys=True) for c in _all_cards().values()}
    if len(found) != 1:
        raise RuntimeError(f"the cards have {len(found)} different export settings (expected one)")
    return dict(json.loads(found.pop()))


def _load_family(family: str) -> None:
    module = _FAMILY_MODULES.get(family)
    if module is None:
        raise RuntimeError(f"no module registered for model family {family!r}")
    importlib.import_module(module)


def registered_entrypoints() -> list[str]:
    """Every card name a registered builder can build, after importing all family modules (for the
    card/builder test)."""
    for family in _FAMILY_MODULES:
        _load_family(family)
    return sorted(name for name, card in _all_cards().items() if card["family"] in _BUILDERS)


def create_model(name: str, **overrides: Any) -> Any:
    """Build the model ``name`` (randomly initialised); ``overrides`` change card values such as
    ``num_classes`` or ``converted=True``."""
    card = get_card(name)
    _load_family(card["family"])
    if card["family"] not in _BUILDERS:
        raise RuntimeError(f"card {name!r}: no builder registered for family {card['family']!r}")
    return _BUILDERS[card["family"]](card, **overrides)
