"""One name per concept across commands: model names in bench and table rows, --json, --arch,
--optimize, and the deprecated spellings that still work and say so."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _onnx_models import conv_net, table_stand_in

from condense_deploy.cli import cli
from condense_deploy.runtime import reports
from condense_deploy.runtime.bench import BenchSettings, model_label, run_bench

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--runs", "2", "--warmup", "0"]


def test_bench_names_a_zoo_export_as_the_table_names_its_row(tmp_path: Path) -> None:
    from condense_deploy.table import _table_rows

    fast = table_stand_in(tmp_path / "mobilenet_v1.fast.onnx", "mobilenet_v1", 1, 1, "fast")
    native = table_stand_in(tmp_path / "condensenet74_c8g8.native.onnx", "condensenet74_c8g8", 1, 1, "native")
    plain = conv_net(tmp_path / "mine.onnx")
    report = run_bench([fast, native, plain], BenchSettings(threads=[1], runs=2, warmup=0))
    names = [r.model for r in report.results]
    assert names == ["mobilenet_v1", "condensenet74_c8g8 native", "mine"]
    rows = [r.label for r in _table_rows(["mobilenet_v1", "condensenet74_c8g8"], "fast", native=True)]
    assert rows == ["mobilenet_v1", "condensenet74_c8g8", "condensenet74_c8g8 native"]
    assert model_label("mobilenet_v1", "tuned") == "mobilenet_v1 tuned"


def test_two_files_of_one_model_keep_their_file_names(tmp_path: Path) -> None:
    a = table_stand_in(tmp_path / "a.onnx", "mobilenet_v1", 1, 1)
    b = table_stand_in(tmp_path / "b.onnx", "mobilenet_v1", 1, 1)
    report = run_bench([a, b], BenchSettings(threads=[1], runs=2, warmup=0))
    assert [r.model for r in report.results] == ["a", "b"]


def test_report_merging_a_table_and_a_board_bench_lists_each_model_once(tmp_path: Path) -> None:
    """The table's bench rows and a board's bench of the same cached file carry one name."""
    path = table_stand_in(tmp_path / "mobilenet_v1.fast.onnx", "mobilenet_v1", 1, 1)
    board = run_bench([path], BenchSettings(threads=[1], runs=2, warmup=0)).to_dict()
    table = {"schema": reports.TABLE_SCHEMA, "bench": [json.loads(json.dumps(board))]}
    table["bench"][0]["results"][0]["model"] = model_label("mobilenet_v1", "fast")  # as run_table names it
    table["bench"][0]["machine"]["slug"] = "laptop"
    (tmp_path / "table.json").write_text(json.dumps(table))
    (tmp_path / "board.json").write_text(json.dumps(board))
    text = reports.write_merged([tmp_path / "table.json", tmp_path / "board.json"], None)
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ")][1:]
    assert [(cells[0].strip(), cells[2].strip()) for cells in rows] == [
        ("laptop", "mobilenet_v1"), (board["machine"]["slug"], "mobilenet_v1")]


def test_json_prints_and_output_writes_in_bench(runner, tmp_path: Path) -> None:
    model = conv_net(tmp_path / "m.onnx")
    printed = runner.invoke(cli, ["bench", str(model), *QUICK, "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout)["results"][0]["model"] == "m"
    written = runner.invoke(cli, ["bench", str(model), *QUICK, "-o", str(tmp_path / "r.json")])
    assert written.exit_code == 0 and "model" in json.loads((tmp_path / "r.json").read_text())["results"][0]
    old = runner.invoke(cli, ["bench", str(model), *QUICK, "--json", str(tmp_path / "old.json")])
    assert old.exit_code == 0, old.output
    assert f"warning: --json {tmp_path / 'old.json'} is deprecated: use -o" in old.stderr
    assert json.loads((tmp_path / "old.json").read_text())["schema"] == "condense-deploy/bench-v1"
    both = runner.invoke(cli, ["bench", str(model), "--json", str(tmp_path / "x.json"), "-o", "y.json"])
    assert both.exit_code == 2 and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("args", [["list", "condensenet74_c8g8", "--json"], ["inspect", "{model}", "--json"]])
def test_json_prints_json_in_every_command(runner, tmp_path: Path, args: list[str]) -> None:
    model = conv_net(tmp_path / "m.onnx")
    result = runner.invoke(cli, [a.format(model=model) for a in args])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)


def test_every_json_option_means_print_json(runner) -> None:
    """--json has one meaning in every command's help: JSON on stdout, never a file to write."""
    for command in ("list", "inspect", "export", "bench"):
        text = " ".join(runner.invoke(cli, [command, "--help"]).output.split())
        assert "--json" in text and "Print" in text.split("--json", 1)[1][:80], (command, text)


def test_optimize_takes_the_export_modes(runner) -> None:
    for command in ("export", "optimize", "table"):
        text = runner.invoke(cli, [command, "--help"]).output
        assert "--optimize" in text, command
        assert "--tuned" not in text and "--native" not in text, (command, text)


def test_table_never_writes_the_committed_reference_by_default(runner, tmp_path: Path, monkeypatch) -> None:
    from condense_deploy.commands import table as table_command

    seen = {}

    def fake_run(**kwargs: object) -> None:
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before any work

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)  # a checkout
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(table_command, "_run", fake_run)
    assert runner.invoke(cli, ["table"]).exit_code == 130
    assert seen["out_dir"] == Path("table-results")
    assert (seen["optimize"], seen["native"]) == ("fast", None)
    runner.invoke(cli, ["table", "--optimize", "tuned,native"])
    assert (seen["optimize"], seen["native"]) == ("tuned", True)
    runner.invoke(cli, ["table", "--optimize", "native"])
    assert (seen["optimize"], seen["native"]) == ("native", False)


def test_inference_table_script_help_is_its_own_usage() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "inference_table.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: inference_table.py [OPTIONS]"), done.stdout
    assert "--out-dir" in done.stdout


def test_native_summary_help_and_a_missing_output_folder(tmp_path: Path) -> None:
    script = str(ROOT / "benchmarks" / "native_summary.py")
    help_text = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                               timeout=120).stdout
    assert "#" not in help_text and "issue" not in help_text.lower()
    assert "timed interleaved rounds" in help_text and "folder for native_summary" in help_text
    start = time.monotonic()
    done = subprocess.run([sys.executable, script, "--out", str(tmp_path / "missing")], capture_output=True,
                          text=True, timeout=120)
    assert time.monotonic() - start < 60  # nothing exported or timed first
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'missing'}/native_summary_{__import__('platform').machine()}.json: "
        f"folder {tmp_path / 'missing'} does not exist"]
