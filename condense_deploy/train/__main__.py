"""``python -m condense_deploy.train ...`` = ``condense-deploy train ...``, the torchrun entry point.

``torchrun --nproc_per_node=2 -m condense_deploy.train --data cifar10 --data-dir data --savedir runs/x``
"""

from __future__ import annotations

import sys

import click

from ..commands.train import train_command
from ..errors import CondenseDeployError


def main() -> None:
    """Run the train command; a library error is one ``Error:`` line and exit status 1, as in the CLI."""
    try:
        train_command.main(sys.argv[1:], prog_name="python -m condense_deploy.train")
    except CondenseDeployError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
