"""``condense-deploy inspect``: architecture, FLOPs and params of a zoo model, checkpoint or .onnx file.

torch is imported only for models and checkpoints, so inspecting an .onnx file works on a board.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .options import arch_option, classes_option, trust_option


@click.command("inspect")
@click.argument("source")
@click.option("--form", type=click.Choice(["converted", "training"]), default=None,
              help="Form to count a zoo CondenseNet in (default converted); a checkpoint is counted as is.")
@arch_option
@classes_option
@trust_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (flops and params are integers).")
def inspect_command(source: str, form: str | None, arch: str | None, num_classes: int | None,
                    trust_checkpoint: bool, as_json: bool) -> None:
    """Print the architecture, FLOPs and params of SOURCE: a zoo name, a checkpoint or an .onnx file."""
    if source.lower().endswith(".onnx"):
        from ..graph.onnx_info import describe_onnx, format_description

        info = describe_onnx(source)
        click.echo(json.dumps(info, indent=2) if as_json else format_description(info))
        return
    from ..pipeline import describe_model

    info = describe_model(source, form=form, arch=arch, trust_checkpoint=trust_checkpoint,
                          num_classes=num_classes)
    click.echo(json.dumps(info, indent=2) if as_json else _format(info))


def _format(info: dict[str, Any]) -> str:
    lines = [
        f"source:       {info['source']}",
        f"model:        {info['name'] or '(no zoo card matches)'}",
        f"family:       {info['family']}",
        f"form:         {info['form']}",
        f"format:       {info['source_format']}",
        f"input:        {'x'.join(str(n) for n in info['input_size'])}",
    ]
    config = info.get("config")
    if config:
        arch = ", ".join(f"{key}={_short(value)}" for key, value in config.items())
        lines.append(f"architecture: {arch}")
    classifier = info.get("classifier")
    if classifier:
        lines.append(f"classifier:   {_classifier(classifier)}")
    if info.get("sha256"):
        lines.append(f"sha256:       {info['sha256']}")
    lines.append(f"FLOPs:        {info['flops']:,} ({info['flops'] / 1e6:.2f}M)")
    lines.append(f"params:       {info['params']:,} ({info['params'] / 1e6:.2f}M)")
    return "\n".join(lines)


def _classifier(record: dict[str, Any]) -> str:
    """``kept 120 of 240 inputs (half), --classifier condense; val err 3.33 -> 3.33 % on cifar10``."""
    parts = []
    if "kept" in record:
        parts.append(f"kept {record['kept']} of {record['features']} inputs ({record['form']})")
    if record.get("mode"):
        parts.append(f"--classifier {record['mode']}")
    text = ", ".join(parts)
    if "trained_err1" in record and "deployed_err1" in record:
        text += (f"; val err {float(record['trained_err1']):.2f} -> {float(record['deployed_err1']):.2f} % "
                 f"on {record.get('data', '?')} (trained -> deployed)")
    return text


def _short(value: Any) -> str:
    return "-".join(str(v) for v in value) if isinstance(value, list) else str(value)
