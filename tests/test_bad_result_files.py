"""Malformed result files for `report`: one line naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _clean import assert_clean_error
from _onnx_models import conv_net

from condense_deploy.cli import cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_report_of_a_string_latency(runner, tmp_path: Path) -> None:
    source = conv_net(tmp_path / "a.onnx")
    good = tmp_path / "r.json"
    assert (
        runner.invoke(
            cli, ["bench", str(source), "--runs", "3", "--warmup", "1", "--json", str(good)]
        ).exit_code
        == 0
    )
    data = json.loads(good.read_text())
    data["results"][0]["latency_p50_ms"] = "fast"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "table.md"
    result = runner.invoke(cli, ["report", str(bad), "-o", str(out)])
    assert_clean_error(result, 1, str(bad), "latency_p50_ms", "expected a number")
    assert not out.exists()
