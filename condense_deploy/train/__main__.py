"""``python -m condense_deploy.train ...`` = ``condense-deploy train ...``, the torchrun entry point.

``torchrun --nproc_per_node=2 -m condense_deploy.train --data cifar10 --data-dir data --savedir runs/x``

It runs the CLI's ``train`` command through the CLI's one error handler (one ``Error:`` line; exit 1,
130 on Ctrl-C, usage errors 2).
"""

from __future__ import annotations

from ..cli import run_command


def main() -> None:
    run_command("train", prog_name="python -m condense_deploy.train")


if __name__ == "__main__":
    main()
