"""Malformed and hostile result files for `report`: every field checked for type and range on load, one
line naming the file and the field; names escaped in markdown."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
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


@pytest.fixture(scope="module")
def good_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real bench result of a tiny model, to damage one field at a time."""
    from click.testing import CliRunner

    root = tmp_path_factory.mktemp("good")
    path = root / "r.json"
    result = CliRunner().invoke(cli, ["bench", str(conv_net(root / "a.onnx")), "--runs", "3", "--warmup", "1",
                                      "--json", str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(path.read_text())


def _set(path: str, value: object) -> Callable[[dict], None]:
    keys = path.split(".")

    def damage(data: dict) -> None:
        target = data
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return damage


# damage -> what the one error line must name
_DAMAGED = {
    "model null": (_set("results.0.model", None), "result 0 has no model"),
    "model a number": (_set("results.0.model", 7), "model is 7, expected a non-empty string"),
    "cpu_features a number": (_set("machine.cpu_features", 3), "machine: cpu_features is 3"),
    "latency 1e400": (_set("results.0.latency_p50_ms", "1e400"), "latency_p50_ms is inf"),
    "latency nan": (_set("results.0.latency_p90_ms", "NaN"), "latency_p90_ms is nan"),
    "latency negative": (_set("results.0.latency_mean_ms", -1.5), "latency_mean_ms is -1.5"),
    "threads zero": (_set("results.0.threads", 0), "threads is 0, expected a whole number >= 1"),
    "threads a float": (_set("results.0.threads", 1.5), "threads is 1.5"),
    "a result that is a list": (_set("results.0", [1]), "result 0 is [1], expected an object"),
    "settings a string": (_set("settings", "fast"), "settings is 'fast', expected an object"),
    "profile shares text": (_set("results.0.profile", {"Conv": {"share": "most"}}), "profile is"),
    "machine slug a list": (_set("machine.slug", ["x"]), "machine: slug is ['x'], expected a string"),
}


@pytest.mark.parametrize("case", list(_DAMAGED))
def test_every_field_is_checked_on_load(runner, good_report: dict, case: str, tmp_path: Path) -> None:
    """Type and range of every field a table, ratio or plot reads: one line naming the file and the
    field, before any output; also with --plot (which would draw the numbers)."""
    damage, fragment = _DAMAGED[case]
    data = copy.deepcopy(good_report)
    damage(data)
    bad = tmp_path / "bad.json"
    # 1e400 and NaN as JSON text (Python's json writes inf/nan as Infinity/NaN, not as these numbers)
    bad.write_text(json.dumps(data).replace('"1e400"', "1e400").replace('"NaN"', "NaN"))
    out, plot = tmp_path / "table.md", tmp_path / "p.png"
    result = runner.invoke(cli, ["report", str(bad), "-o", str(out), "--plot", str(plot)])
    assert_clean_error(result, 1, str(bad), fragment)
    assert not out.exists() and not plot.exists()


def test_deep_nesting_is_one_line(runner, tmp_path: Path) -> None:
    bad = tmp_path / "deep.json"
    bad.write_text("[" * 100_000 + "]" * 100_000)
    assert_clean_error(runner.invoke(cli, ["report", str(bad)]), 1, str(bad), "nested too deeply")


def test_markdown_cells_are_escaped(runner, good_report: dict, tmp_path: Path) -> None:
    """A model or machine name with `|` or a line break stays in its own cell of its own row."""
    data = copy.deepcopy(good_report)
    data["results"][0]["model"] = "evil | x\n| injected | row |"
    data["machine"]["slug"] = "box|1\n# heading"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(cli, ["report", str(path)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert len(rows) == 2  # the header and the one result
    assert r"evil \| x \| injected \| row \|" in rows[1] and r"box\|1 # heading" in rows[1]
    assert not any(line.startswith("#") and "heading" in line for line in result.output.splitlines())
    assert all(line.count(" | ") == rows[0].count(" | ") for line in rows)
