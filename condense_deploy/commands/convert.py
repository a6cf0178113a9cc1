"""``condense-deploy convert``: training checkpoint -> converted file in the original layout."""

from __future__ import annotations

import click

from .options import arch_option, trust_option


@click.command("convert")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Converted file to write ({'state_dict'} with module. keys, as the 2017 release).")
@arch_option
@trust_option
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def convert_command(checkpoint: str, output: str, arch: str | None, trust_checkpoint: bool,
                    force: bool) -> None:
    """Convert a fully condensed training CHECKPOINT to the deployed form, prove the two compute the
    same outputs, and write it to OUTPUT."""
    from ..convert import ATOL
    from ..pipeline import convert_checkpoint

    result = convert_checkpoint(checkpoint, output, arch=arch, trust_checkpoint=trust_checkpoint, force=force)
    click.echo(f"model:        {result.name or 'CondenseNet (no zoo card matches)'}")
    click.echo(f"equivalence:  max abs diff {result.max_abs_diff:.3e} (atol {ATOL:.0e}) vs the masked model")
    click.echo(f"FLOPs:        {result.flops:,}")
    click.echo(f"params:       {result.params:,}")
    click.echo(f"wrote:        {result.output}")
