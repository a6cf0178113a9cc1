"""The inference table (paper Table 5 on this machine) and the demo.

Fast tests put tiny stand-in .onnx files, carrying the metadata ``export_source`` writes, where the
table looks for its exports, so the table reuses them instead of exporting 224x224 networks; the
real export path runs in the slow test.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from _blocked_imports import run_cli_without
from _onnx_models import table_stand_in

from condense_deploy import table as T
from condense_deploy.architectures.registry import get_card
from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError
from condense_deploy.runtime.machine import describe_machine

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SLUG = describe_machine()["slug"]


def _stand_ins(folder: Path, names: list[str], optimize: str = "fast") -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    # more channels for bigger models, so their latencies differ
    channels = {"vgg16": 64, "resnet18": 32, "mobilenet_v1": 8, "condensenet74_c4g4": 8,
                "condensenet74_c8g8": 4, "mobilenet_v2": 8, "shufflenet_v2_x1_0": 4}
    return {n: table_stand_in(folder / f"{n}.{optimize}.onnx", n, flops=get_card(n)["published"]["flops"],
                              params=get_card(n)["published"]["params"], optimize=optimize,
                              channels=channels[n]) for n in names}


@pytest.fixture(autouse=True)
def _no_native_rows_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the kernels are built must not change these tests: the default is 'not built'."""
    from condense_deploy.native import library as native

    monkeypatch.setattr(native, "is_available", lambda: False)


def test_native_rows_follow_each_condensenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner) -> None:
    from condense_deploy.native import library as native

    names = ["mobilenet_v1", "condensenet74_c8g8"]
    _stand_ins(tmp_path / "onnx", names)
    _stand_ins(tmp_path / "onnx", ["condensenet74_c8g8"], optimize="native")
    monkeypatch.setattr(native, "is_available", lambda: True)
    result = T.run_table(T.TableOptions(out_dir=tmp_path, onnx_dir=tmp_path / "onnx", models=names, runs=2,
                                        warmup=0, threads="1"))
    rows = result.data["rows"]
    assert [(r["model"], r["optimize"]) for r in rows] == [
        ("mobilenet_v1", "fast"), ("condensenet74_c8g8", "fast"), ("condensenet74_c8g8 native", "native")]
    assert rows[2]["flops"] == rows[1]["flops"] and rows[2]["ratio_to_mobilenet_ort_1t"] > 0
    assert "| condensenet74_c8g8 native |" in result.markdown and "optimize=native" in result.markdown
    assert result.data["settings"]["native"] is True
    # --no-native leaves them out; asking for them where the kernels are not built is one clear error
    plain = runner.invoke(cli, ["table", "--out-dir", str(tmp_path), "--onnx-dir", str(tmp_path / "onnx"),
                                "--models", ",".join(names), "--runs", "1", "--threads", "1", "--force",
                                "--optimize", "fast"])
    assert plain.exit_code == 0 and "native |" not in plain.stdout
    old = runner.invoke(cli, ["table", "--out-dir", str(tmp_path), "--onnx-dir", str(tmp_path / "onnx"),
                              "--models", ",".join(names), "--runs", "1", "--threads", "1", "--force",
                              "--no-native"])  # the deprecated spelling still works, and says so
    assert old.exit_code == 0 and "native |" not in old.stdout
    assert "warning: --no-native is deprecated: use --optimize fast" in old.output
    for bad in ("fast,tuned", "native,native", "quick"):
        refused = runner.invoke(cli, ["table", "--out-dir", str(tmp_path), "--optimize", bad])
        assert refused.exit_code == 2 and "optionally followed by ',native'" in refused.output
    monkeypatch.setenv("CONDENSE_DEPLOY_KERNELS", str(tmp_path / "missing.so"))
    missing = runner.invoke(cli, ["table", "--out-dir", str(tmp_path), "--models", ",".join(names),
                                  "--force", "--optimize", "fast,native"])
    assert missing.exit_code == 1 and "make kernels" in missing.output and "Traceback" not in missing.output


def test_table_writes_md_csv_json_png_with_the_contract_columns(tmp_path: Path) -> None:
    names = ["vgg16", "mobilenet_v1", "condensenet74_c4g4", "shufflenet_v2_x1_0"]
    _stand_ins(tmp_path / "onnx", names)
    options = T.TableOptions(out_dir=tmp_path, onnx_dir=tmp_path / "onnx", models=names, runs=4, warmup=1,
                             threads="1,2")
    result = T.run_table(options)
    assert set(result.paths) == {"md", "csv", "json", "png"}
    for ext, path in result.paths.items():
        assert path == tmp_path / f"{SLUG}.{ext}" and path.is_file()
    assert result.paths["png"].read_bytes()[:8] == PNG_MAGIC

    md = result.paths["md"].read_text()
    assert md == result.markdown
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header == ("| model | FLOPs | params | top-1 err % (published) | paper ARM time s (published) | "
                      "paper ratio to MobileNet (published) | p50 ms ORT 1 thread | p50 ms ORT 2 threads | "
                      "ratio to MobileNet ORT 1 thread | ratio to MobileNet ORT 2 threads |")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in md.splitlines()
            if line.startswith("| ") and not line.startswith("| model")}
    assert list(rows) == names  # the paper's order, whatever order they were benched in
    vgg = rows["vgg16"]
    assert vgg[1:6] == ["15.30G", "138M", "28.5", "354", f"{354 / 1.96:.2f}"]  # published, from the card
    assert rows["mobilenet_v1"][5] == "1.00" and rows["mobilenet_v1"][-1].rstrip(" |") == "1.00"
    assert rows["shufflenet_v2_x1_0"][4:6] == ["-", "-"]  # no paper ARM time
    assert "interleaved" in md and "published" in md and "Load average" in md

    data = json.loads(result.paths["json"].read_text())
    assert data["schema"] == "condense-deploy/table-v1" and data["machine"]["slug"] == SLUG
    assert [r["model"] for r in data["rows"]] == names
    assert data["settings"]["threads"] == [1, 2] and data["settings"]["runs"] == 4
    bench = data["bench"][0]["results"]
    assert [r["model"] for r in bench[:4]] == ["mobilenet_v1", "vgg16", "condensenet74_c4g4",
                                               "shufflenet_v2_x1_0"]  # reference first
    assert all(entry["reused"] for entry in data["onnx"].values())
    row = data["rows"][0]
    assert row["flops"] == 15_300_000_000
    assert row["p50_ms_ort_1t"] > 0 and row["ratio_to_mobilenet_ort_2t"] > 0

    with result.paths["csv"].open() as handle:
        lines = list(csv.DictReader(handle))
    assert [line["model"] for line in lines] == names and lines[0]["machine"] == SLUG
    assert float(lines[0]["p50_ms_ort_1t"]) == row["p50_ms_ort_1t"]


def test_existing_results_need_force_and_stale_exports_are_redone(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["mobilenet_v1", "shufflenet_v2_x1_0"]
    _stand_ins(tmp_path / "onnx", names)
    options = T.TableOptions(out_dir=tmp_path, onnx_dir=tmp_path / "onnx", models=names, runs=2, warmup=0,
                             threads="1")
    T.run_table(options)
    with pytest.raises(CondenseDeployError, match="already exists"):
        T.run_table(options)
    # a file exported with another optimize mode is not reused: export is called for it
    _stand_ins(tmp_path / "onnx", ["shufflenet_v2_x1_0"], optimize="none")
    onnx_dir = tmp_path / "onnx"
    (onnx_dir / "shufflenet_v2_x1_0.none.onnx").rename(onnx_dir / "shufflenet_v2_x1_0.fast.onnx")
    exported: list[str] = []

    class Result:
        metadata = {"condense_deploy.flops": "146000000", "condense_deploy.params": "2278604"}

    def fake_export(name: str, path: Path, **kwargs: object) -> Result:
        exported.append(name)
        assert kwargs["optimize"] == "fast" and kwargs["force"] is True
        return Result()

    import condense_deploy.pipeline as pipeline

    monkeypatch.setattr(pipeline, "export_source", fake_export)
    T.run_table(T.TableOptions(**{**options.__dict__, "force": True}))
    assert exported == ["shufflenet_v2_x1_0"]
    # a file older than the export code is stale: exported again
    os.utime(onnx_dir / "mobilenet_v1.fast.onnx", (0, 0))
    T.run_table(T.TableOptions(**{**options.__dict__, "force": True}))
    assert exported == ["shufflenet_v2_x1_0", "mobilenet_v1", "shufflenet_v2_x1_0"]  # fake wrote no file


def test_torch_column(tmp_path: Path) -> None:
    names = ["mobilenet_v1", "shufflenet_v2_x1_0"]
    _stand_ins(tmp_path / "onnx", names)
    result = T.run_table(T.TableOptions(out_dir=tmp_path, onnx_dir=tmp_path / "onnx", models=names, runs=1,
                                        warmup=0, threads="1", torch=True))
    assert "| p50 ms PyTorch eager 1 thread |" in result.markdown
    torch_rows = result.data["torch"]["results"]
    assert [r["model"] for r in torch_rows] == names and torch_rows[0]["paired_ratio_to_first"] == 1.0
    assert result.data["rows"][1]["p50_ms_torch_1t"] > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"models": ["resnet50"]}, "not a table model"),
        ({"models": []}, "no model"),
        ({"threads": "0"}, "must be in 1..256"),
        ({"optimize": "max"}, "optimize 'max'"),
        ({"runs": 0}, "runs 0"),
        ({"out_dir": Path("/proc/no/such/folder")}, "cannot create the output folder"),
        ({"onnx_dir": Path("/proc/no/such/folder")}, "cannot create the folder"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(CondenseDeployError, match=message):
        T.run_table(T.TableOptions(**{"out_dir": tmp_path, "onnx_dir": tmp_path, "models": ["mobilenet_v1"],
                                      **options}))


def test_table_command_and_errors(tmp_path: Path, runner) -> None:
    _stand_ins(tmp_path / "onnx", ["mobilenet_v1", "condensenet74_c8g8"])
    args = ["table", "--out-dir", str(tmp_path), "--onnx-dir", str(tmp_path / "onnx"), "--models",
            "condensenet74_c8g8,mobilenet_v1", "--runs", "2", "--threads", "1", "--quick"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Inference time") and "| condensenet74_c8g8 |" in result.stdout
    assert f"{SLUG}.md" in result.stderr
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and again.output.count("Error:") == 1 and "Traceback" not in again.output
    bad = runner.invoke(cli, ["table", "--models", "alexnet", "--out-dir", str(tmp_path)])
    assert bad.exit_code == 1 and "not a table model" in bad.output and "Traceback" not in bad.output


def test_demo_runs_all_seven_quick_into_demo_output_and_overwrites(tmp_path: Path, runner,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _stand_ins(tmp_path / "cache" / "condense-deploy" / "onnx", list(T.TABLE_MODELS))
    for _ in range(2):  # the second run replaces the first one's files
        result = runner.invoke(cli, ["demo"])
        assert result.exit_code == 0, result.output
        assert all(f"| {name} |" in result.stdout for name in T.TABLE_MODELS)
    data = json.loads((tmp_path / "demo-output" / f"{SLUG}.json").read_text())
    assert data["settings"]["quick"] is True and data["settings"]["runs"] == 5
    assert len(data["rows"]) == 7


@pytest.mark.slow
def test_real_export_of_two_mobile_models(tmp_path: Path) -> None:
    result = T.run_table(T.TableOptions(out_dir=tmp_path, onnx_dir=tmp_path / "onnx",
                                        models=["mobilenet_v1", "shufflenet_v2_x1_0"], quick=True,
                                        threads="1"))
    rows = {r["model"]: r for r in result.data["rows"]}
    assert abs(rows["mobilenet_v1"]["flops"] - 569e6) / 569e6 < 0.02  # count agrees with the paper
    assert rows["shufflenet_v2_x1_0"]["p50_ms_ort_1t"] > 0
    assert (tmp_path / "onnx" / "mobilenet_v1.fast.onnx").is_file()


def test_demo_on_a_runtime_install_says_which_install_and_leaves_nothing(tmp_path) -> None:
    """Where torch and matplotlib cannot be imported, demo fails in one line before creating anything."""
    done = run_cli_without(tmp_path, ("torch", "matplotlib"), "demo")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs torch and matplotlib" in done.stderr and "condense-deploy[full]" in done.stderr
    assert not (tmp_path / "demo-output").exists()


def test_the_reuse_check_watches_files_that_exist():
    """An export is reused only when newer than the code it depends on: every file of that list is
    in the package (a renamed module would silently stop counting)."""
    package = Path(T.__file__).resolve().parent
    missing = [name for name in T._EXPORT_SOURCES if not (package / name).is_file()]
    assert not missing
