"""``python -m condense_deploy.train ...`` = ``condense-deploy train ...``, the torchrun entry point.

``torchrun --nproc_per_node=2 -m condense_deploy.train --data cifar10 --data-dir data --savedir runs/x``
"""

from __future__ import annotations

import sys

from ..cli import cli


def main() -> None:
    cli(["train", *sys.argv[1:]], prog_name="python -m condense_deploy.train")


if __name__ == "__main__":
    main()
