"""The model zoo: cards in ``models/`` (one JSON file per variant) and the entrypoints that build them.

Cards are data (architecture numbers, preprocessing, published figures) and can be read without
torch, so ``list``, ``inspect`` and the bench report work on a board. Entrypoints are registered by
the architecture modules with ``@register_model``; ``create_model`` is the one way to build a model.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ..errors import CondenseDeployError

__all__ = ["create_model", "dataset_preprocessing", "get_card", "list_models", "register_model",
           "registered_entrypoints"]

# Which module defines the entrypoints of each card family; imported only when a model is built.
_FAMILY_MODULES = {
    "condensenet": "condense_deploy.models.condensenet",
    "densenet": "condense_deploy.models.densenet",
    "vgg16": "condense_deploy.models.baselines",
    "resnet18": "condense_deploy.models.baselines",
    "mobilenet_v1": "condense_deploy.models.baselines",
    "mobilenet_v2": "condense_deploy.models.baselines",
    "shufflenet_v2_x1_0": "condense_deploy.models.baselines",
}

_ENTRYPOINTS: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record ``fn`` under its own name; a second entrypoint with the same name is a bug."""
    if fn.__name__ in _ENTRYPOINTS and _ENTRYPOINTS[fn.__name__] is not fn:
        raise RuntimeError(f"model entrypoint {fn.__name__!r} registered twice")
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def _cards_dir() -> Path:
    """The cards folder: ``models/`` in a source checkout, the packaged copy in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "models"
    if checkout.is_dir() and (package.parent / "pyproject.toml").is_file():
        return checkout
    # An installed wheel: condense_deploy/cards (a namespace package, whose resources.files() is a
    # MultiplexedPath, so its str() is not a path).
    spec = importlib.util.find_spec("condense_deploy.cards")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RuntimeError("the model cards (condense_deploy.cards) are not installed")
    return Path(locations[0])


@functools.lru_cache(maxsize=1)
def _all_cards() -> dict[str, dict[str, Any]]:
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(_cards_dir().glob("*.json")):
        card = json.loads(path.read_text())
        if card.get("name") != path.stem:
            raise RuntimeError(f"{path}: card name {card.get('name')!r} differs from its file name")
        cards[path.stem] = card
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


def _load_family(family: str) -> None:
    module = _FAMILY_MODULES.get(family)
    if module is None:
        raise RuntimeError(f"no module registered for model family {family!r}")
    importlib.import_module(module)


def registered_entrypoints() -> list[str]:
    """Every entrypoint name, after importing all architecture modules (for the card/entrypoint test)."""
    for family in _FAMILY_MODULES:
        _load_family(family)
    return sorted(_ENTRYPOINTS)


def create_model(name: str, **overrides: Any) -> Any:
    """Build the model ``name`` (randomly initialised); ``overrides`` change card values such as
    ``num_classes`` or ``converted=True``."""
    card = get_card(name)
    _load_family(card["family"])
    if name not in _ENTRYPOINTS:
        raise RuntimeError(f"card {name!r} has no registered entrypoint")
    return _ENTRYPOINTS[name](**overrides)
