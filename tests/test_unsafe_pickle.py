"""Unsafe pickles: the safe loader refuses them by behaviour (not by torch's
wording), the error names the file and --trust-checkpoint, and the payload never runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from _clean import assert_clean_error

from condense_deploy.cli import cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True])
def test_unsafe_pickle_never_runs_and_names_the_flag(runner, tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, evil, _use_new_zipfile_serialization=not legacy)
    before = evil.read_bytes()
    for args in (
        ["inspect", str(evil)],
        ["convert", str(evil), "-o", str(tmp_path / "c.pth.tar")],
        ["export", str(evil), "-o", str(tmp_path / "e.onnx")],
    ):
        result = runner.invoke(cli, args)
        assert_clean_error(result, 1, str(evil), "--trust-checkpoint", "refused")
    assert not marker.exists(), "the pickle's os.system ran"
    assert evil.read_bytes() == before
    assert not (tmp_path / "c.pth.tar").exists() and not (tmp_path / "e.onnx").exists()
