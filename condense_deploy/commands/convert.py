"""``condense-deploy convert``: training checkpoint -> converted file in the original layout."""

from __future__ import annotations

import click

from .options import arch_option, trust_option


@click.command("convert")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Converted file to write ({'state_dict'} with module. keys, as the 2017 release).")
@click.option("--classifier", type=click.Choice(["half", "full", "finetune"]), default=None,
              help="half: keep the half of the classifier's inputs with the largest weights (the original "
                   "converted format); full: keep every input (the trained classifier; not loadable by the "
                   "original code); finetune: half, then retrain the kept classifier on --data. Default: "
                   "what the checkpoint's run chose, else half.")
@click.option("--data", type=click.Choice(["cifar10", "cifar100", "imagefolder"]), default=None,
              help="Measure the trained and the converted model's validation error on this data set.")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=True),
              help="Folder holding the --data set (as for train and eval).")
@arch_option
@trust_option
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def convert_command(checkpoint: str, output: str, classifier: str | None, data: str | None,
                    data_dir: str, arch: str | None, trust_checkpoint: bool, force: bool) -> None:
    """Convert a fully condensed training CHECKPOINT to the deployed form, prove the learned group convs
    compute the same outputs, report what the classifier keeps (with --data: the trained and the deployed
    validation error), and write it to OUTPUT."""
    from ..convert import ATOL

    if data is None:
        from ..pipeline import convert_checkpoint

        result = convert_checkpoint(checkpoint, output, arch=arch, trust_checkpoint=trust_checkpoint,
                                    force=force, classifier=classifier)
    else:
        from ..train.deploy import convert_on_data

        result = convert_on_data(checkpoint, output, data, data_dir, arch=arch,
                                 trust_checkpoint=trust_checkpoint, force=force, classifier=classifier)
    click.echo(f"model:        {result.name or 'CondenseNet (no zoo card matches)'}")
    click.echo(f"equivalence:  LGC conversion exact: max abs diff {result.max_abs_diff:.3e} "
               f"(atol {ATOL:.0e}) vs the training model with the same classifier inputs")
    if result.classifier is not None:
        after = " (before fine-tuning)" if result.mode == "finetune" else ""
        click.echo(f"classifier:   {result.classifier.describe()}{after}; --classifier {result.mode}")
    if result.gap is not None:
        click.echo(f"accuracy:     {result.gap.describe()} on {result.gap.data} (trained -> deployed)")
    elif result.classifier is not None and not result.classifier.exact:
        click.echo("accuracy:     not measured; --data measures what the classifier choice costs")
    click.echo(f"FLOPs:        {result.flops:,}")
    click.echo(f"params:       {result.params:,}")
    click.echo(f"wrote:        {result.output}")
    if result.warning:
        click.echo(result.warning, err=True)
