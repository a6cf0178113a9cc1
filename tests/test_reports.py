"""Reports: JSON key order and no silent overwrite, CSV appends with one header, markdown and text
tables, merging runs from several machines, the plot, and the `report` command."""

from __future__ import annotations

import copy
import csv
import json
import sys
from pathlib import Path

import pytest
from _onnx_models import conv_net

from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError
from condense_deploy.runtime import reports as R
from condense_deploy.runtime.bench import BenchSettings, run_bench

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("models")
    models = [conv_net(folder / "alpha.onnx", channels=4),
              conv_net(folder / "beta.onnx", channels=32, seed=1)]
    return run_bench(models, BenchSettings(threads=[1, 2], warmup=1, runs=4, profile=True)).to_dict()


def _other_machine(report: dict) -> dict:
    other = copy.deepcopy(report)
    other["machine"].update(slug="aarch64-cortex-a72-4c", arch="aarch64", cpu_model="Cortex-A72",
                            cpu_features=["neon"], hostname="pi")
    for r in other["results"]:
        r["latency_p50_ms"] *= 7
    return other


def test_json_keeps_key_order_and_refuses_to_overwrite(report: dict, tmp_path: Path) -> None:
    path = R.write_json(tmp_path / "r.json", report)
    data = json.loads(path.read_text())
    assert list(data) == list(report) and list(data["results"][0]) == list(report["results"][0])
    before = path.read_bytes()
    with pytest.raises(CondenseDeployError, match="already exists"):
        R.write_json(path, {"other": 1})
    assert path.read_bytes() == before
    R.write_json(path, report, force=True)


def test_csv_appends_rows_and_writes_the_header_once(report: dict, tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    R.append_csv(path, report)
    R.append_csv(path, report)
    rows = list(csv.reader(path.open()))
    assert tuple(rows[0]) == R.CSV_COLUMNS
    assert len(rows) == 1 + 2 * 4  # 2 models x 2 thread counts, twice
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["model"] == "alpha" and first["threads"] == "1" and first["input_shape"] == "1x3x16x16"
    assert float(first["latency_p50_ms"]) == report["results"][0]["latency_p50_ms"]
    assert first["machine_arch"] == report["machine"]["arch"] and "%" in first["top_ops"]


def test_csv_with_another_header_is_refused_untouched(report: dict, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CondenseDeployError, match="header"):
        R.append_csv(path, report)
    with pytest.raises(CondenseDeployError, match="header"):
        R.check_csv(path)
    assert path.read_text() == "a,b,c\n1,2,3\n"
    with pytest.raises(CondenseDeployError, match="does not exist"):
        R.check_csv(tmp_path / "no-such-folder" / "runs.csv")


def test_markdown_and_text_show_every_result(report: dict) -> None:
    md = R.format_markdown(report)
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    for column in ("p50 ms", "mean ms", "std ms", "min ms", "p90 ms", "p99 ms", "max ms", "img/s", "x first",
                   "session ms", "first run ms", "size MB", "peak RSS MB"):
        assert f"| {column} |" in header or header.endswith(f"| {column} |")
    table_rows = [line for line in md.splitlines() if line.startswith("| alpha") or line.startswith("| beta")]
    assert len(table_rows) == 4
    assert report["machine"]["cpu_model"] in md and "onnxruntime" in md
    assert "profile beta @ 2 thread(s):" in md
    text = R.format_text(report)
    assert text.startswith("machine: ")
    assert len([ln for ln in text.splitlines() if ln.startswith("beta")]) == 2
    assert "median over interleaved rounds" in text


def test_merge_runs_from_two_machines(report: dict, tmp_path: Path) -> None:
    a, b = tmp_path / "x86.json", tmp_path / "pi.json"
    R.write_json(a, report)
    R.write_json(b, _other_machine(report))
    text = R.write_merged([a, b], tmp_path / "table.md", plot=tmp_path / "plot.png")
    assert (tmp_path / "table.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 8
    assert rows[0].startswith(f"| {report['machine']['slug']} |") and "| alpha |" in rows[0]
    assert any(r.startswith("| aarch64-cortex-a72-4c | aarch64 | alpha | 1 |") for r in rows)
    assert "## Machines" in text and "Cortex-A72" in text and "![p50 latency per model](plot.png)" in text
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG_MAGIC


def test_load_results_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"schema": "something-else"}')
    with pytest.raises(CondenseDeployError, match="no such result file"):
        R.load_results([tmp_path / "missing.json"])
    with pytest.raises(CondenseDeployError, match="not a JSON file"):
        R.load_results([tmp_path / "bad.json"])
    with pytest.raises(CondenseDeployError, match="schema 'something-else'"):
        R.load_results([tmp_path / "other.json"])
    (tmp_path / "cut.json").write_text(json.dumps({"schema": R.BENCH_SCHEMA, "machine": {},
                                                   "results": [{"model": "m", "threads": 1}]}))
    with pytest.raises(CondenseDeployError, match="result 0 has no batch, latency_p50_ms"):
        R.load_results([tmp_path / "cut.json"])


def test_table_results_merge_through_their_bench_section(report: dict, tmp_path: Path) -> None:
    table = {"schema": R.TABLE_SCHEMA, "rows": [], "bench": [report]}
    (tmp_path / "t.json").write_text(json.dumps(table))
    assert R.load_results([tmp_path / "t.json"]) == [report]


def test_missing_matplotlib_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(CondenseDeployError, match=r"condense-deploy\[full\]"):
        R.require_matplotlib()


def test_report_command(report: dict, tmp_path: Path, runner) -> None:
    a = R.write_json(tmp_path / "a.json", report)
    b = R.write_json(tmp_path / "b.json", _other_machine(report))
    printed = runner.invoke(cli, ["report", str(a), str(b)])
    assert printed.exit_code == 0, printed.output
    assert "| machine | arch | model | threads |" in printed.stdout
    out, png = tmp_path / "table.md", tmp_path / "t.png"
    done = runner.invoke(cli, ["report", str(a), str(b), "-o", str(out), "--plot", str(png)])
    assert done.exit_code == 0, done.output
    assert out.read_text().count("| alpha |") == 4 and png.read_bytes()[:8] == PNG_MAGIC
    again = runner.invoke(cli, ["report", str(a), "-o", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    assert runner.invoke(cli, ["report", str(a), "-o", str(out), "--force"]).exit_code == 0
    missing = runner.invoke(cli, ["report", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and missing.output.count("Error:") == 1
    assert "Traceback" not in missing.output
