"""``condense-deploy info``: versions, CPU, the kernel library and the commands this install can run."""

from __future__ import annotations

from pathlib import Path

import click

from .. import _fsutil
from ..runtime.install_info import describe_install, format_install


@click.command("info")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as JSON.")
@click.option("--force", is_flag=True, help="Overwrite an existing --json file.")
def info_command(json_path: Path | None, force: bool) -> None:
    """What this install is: versions (toolkit, onnxruntime and its custom-op API, numpy, Python, torch),
    the CPU and the ISA the native kernels take on it, where the kernel library is (or why it cannot be
    used), and which commands this install can run. Needs no torch."""
    if json_path is not None:
        _fsutil.check_writable(json_path, force)
    info = describe_install()
    click.echo(format_install(info), nl=False)
    if json_path is not None:
        _fsutil.write_json(json_path, info)
        click.echo(f"wrote {json_path}", err=True)
