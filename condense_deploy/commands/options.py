"""Options that several commands share, defined once so a flag reads the same everywhere."""

from __future__ import annotations

import click

__all__ = ["arch_option", "classes_option", "trust_option"]

arch_option = click.option("--arch", default=None, metavar="ZOO_NAME",
                           help="Zoo name the checkpoint must match (default: inferred from its shapes).")
trust_option = click.option("--trust-checkpoint", is_flag=True,
                            help="Allow full unpickling (runs code from the file: only for files you trust).")
classes_option = click.option("--num-classes", type=int, default=None,
                              help="Classes of a zoo model (e.g. 100 for CIFAR-100).")
