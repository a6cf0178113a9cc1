"""``condense-deploy list``: the model zoo cards."""

from __future__ import annotations

import json

import click

from ..architectures.registry import get_card, list_models
from ..errors import CondenseDeployError


@click.command("list")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Print the cards as JSON.")
def list_command(pattern: str, as_json: bool) -> None:
    """List the zoo models whose names match PATTERN (shell wildcards)."""
    names = list_models(pattern)
    if not names:
        raise CondenseDeployError(f"no zoo model matches {pattern!r}; 'condense-deploy list' shows them all")
    if as_json:
        click.echo(json.dumps([get_card(name) for name in names], indent=2))
        return
    for name in names:
        card = get_card(name)
        click.echo(f"{name:22s} {card['dataset']:9s} {card['description']}")
