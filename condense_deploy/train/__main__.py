"""``python -m condense_deploy.train ...`` = ``condense-deploy train ...``, the torchrun entry point.

``torchrun --nproc_per_node=2 -m condense_deploy.train --data cifar10 --data-dir data --savedir runs/x``
"""

from __future__ import annotations

import sys

import click

from ..commands.train import train_command
from ..errors import CondenseDeployError


def main() -> None:
    """Run the train command; a library error is one ``Error:`` line and exit status 1 (130 after
    Ctrl-C), as in the CLI."""
    try:  # not standalone: click would turn Ctrl-C into "Aborted!" and exit 1
        train_command.main(sys.argv[1:], prog_name="python -m condense_deploy.train", standalone_mode=False)
    except click.ClickException as e:  # usage errors (2) and the like, as click prints them
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Error: aborted", err=True)
        sys.exit(1)
    except CondenseDeployError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt as e:  # as the CLI: one line, 128 + SIGINT
        click.echo(f"Error: {e or 'interrupted'}", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
