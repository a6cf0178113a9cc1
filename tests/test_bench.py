"""The onnxruntime bench: report fields, thread sweeps, interleaving, profiling, bad input, the CLI,
--remote hand-off, and a run in a Python where torch and onnx cannot be imported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _blocked_imports import run_cli_without
from _onnx_models import conv_net, int_image_net, vector_net

from condense_deploy.cli import cli
from condense_deploy.errors import CondenseDeployError
from condense_deploy.runtime import bench as B
from condense_deploy.runtime.bench import (
    BenchSettings,
    latency_stats,
    parse_threads,
    roll_up_profile,
    run_bench,
)

LATENCY_FIELDS = ("latency_min_ms", "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p90_ms",
                  "latency_p99_ms", "latency_max_ms")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {
        "small": conv_net(folder / "small.onnx", channels=4),
        "big": conv_net(folder / "big.onnx", channels=64, size=32, seed=1),
        "fixed": conv_net(folder / "fixed.onnx", batch=1),
        "vector": vector_net(folder / "vector.onnx"),
        "int": int_image_net(folder / "int.onnx"),
    }


def test_report_fields_and_statistics(models: dict[str, Path]) -> None:
    report = run_bench([models["small"], models["big"]], BenchSettings(threads=[1], warmup=2, runs=12))
    data = report.to_dict()
    assert list(data) == ["schema", "tool_version", "created", "machine", "settings", "results"]
    assert data["schema"] == B.SCHEMA
    for key in ("cpu_model", "arch", "cores_usable", "cpu_features", "governor", "cur_mhz", "onnxruntime",
                "python", "os", "hostname", "slug"):
        assert key in data["machine"]
    assert [r["model"] for r in data["results"]] == ["small", "big"]
    for r in data["results"]:
        assert r["runs"] == 12 and r["threads"] == 1 and r["batch"] == 1 and r["graph_opt_level"] == "all"
        values = [r[k] for k in LATENCY_FIELDS]
        assert all(v > 0 for v in values)
        assert r["latency_min_ms"] <= r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
        assert r["latency_p99_ms"] <= r["latency_max_ms"]
        assert r["latency_min_ms"] <= r["latency_mean_ms"] <= r["latency_max_ms"]
        assert r["throughput_ips"] == pytest.approx(1e3 / r["latency_mean_ms"], rel=1e-3)
        assert r["session_create_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["peak_rss_mb"] > 10  # a Python process with onnxruntime loaded
        assert r["file_size_bytes"] == Path(r["path"]).stat().st_size
        assert r["input_shape"] == ([1, 3, 16, 16] if r["model"] == "small" else [1, 3, 32, 32])
        assert r["profile"] is None
    first, second = data["results"]
    assert first["ratio_to_first"] == 1.0 and first["paired_ratio_to_first"] == 1.0
    # 64 channels at 32x32 is ~85x the convolution work of 4 channels at 16x16
    assert second["paired_ratio_to_first"] > 1.5
    p50_ratio = second["latency_p50_ms"] / first["latency_p50_ms"]
    assert second["ratio_to_first"] == pytest.approx(p50_ratio, rel=1e-2)


def test_thread_sweep_gives_a_result_per_model_and_thread_count(models: dict[str, Path]) -> None:
    report = run_bench([models["small"], models["big"]], BenchSettings(threads=[1, 2], warmup=0, runs=3))
    pairs = [(r.model, r.threads) for r in report.results]
    assert pairs == [("small", 1), ("big", 1), ("small", 2), ("big", 2)]
    assert report.settings["threads"] == [1, 2]


def test_runs_are_interleaved(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_open = B._open_session

    class Logged:
        def __init__(self, session: object, name: str) -> None:
            self.session, self.name = session, name

        def __getattr__(self, attr: str) -> object:
            return getattr(self.session, attr)

        def run(self, *args: object) -> object:
            calls.append(self.name)
            return self.session.run(*args)

    monkeypatch.setattr(B, "_open_session", lambda path, options: Logged(real_open(path, options), path.stem))
    run_bench([models["small"], models["big"]], BenchSettings(warmup=2, runs=4))
    # first inference of each as its session opens, then warm-up and timed rounds in turn
    assert calls == ["small", "big"] + ["small", "big"] * (2 + 4)


def test_duration_mode_times_for_about_that_long(models: dict[str, Path]) -> None:
    report = run_bench([models["small"]], BenchSettings(warmup=0, duration_s=0.2))
    result = report.results[0]
    assert result.runs >= 2
    assert report.settings["duration_s"] == 0.2 and report.settings["runs"] is None


def test_batch_and_graph_opt_level(models: dict[str, Path]) -> None:
    report = run_bench([models["small"]], BenchSettings(batch=4, runs=3, graph_opt_level="disable"))
    result = report.results[0]
    assert result.input_shape == [4, 3, 16, 16] and result.batch == 4 and result.graph_opt_level == "disable"
    assert result.throughput_ips == pytest.approx(4e3 / result.latency_mean_ms, rel=1e-3)


def test_profile_rolls_up_op_types(models: dict[str, Path]) -> None:
    settings = BenchSettings(runs=5, warmup=1, profile=True, graph_opt_level="basic")
    report = run_bench([models["big"]], settings)
    profile = report.results[0].profile
    assert profile is not None and "Conv" in profile
    assert sum(v["share"] for v in profile.values()) == pytest.approx(1.0, abs=1e-3)
    shares = [v["share"] for v in profile.values()]
    assert shares == sorted(shares, reverse=True)


def test_roll_up_profile_keeps_only_the_last_runs(tmp_path: Path) -> None:
    def run(ts: int, conv_us: int) -> list[dict]:
        def node(name: str, op: str, t: int, dur: int) -> dict:
            return {"cat": "Node", "name": name, "ts": t, "dur": dur, "args": {"op_name": op}}

        return [node("c_kernel_time", "Conv", ts + 1, conv_us), node("r_kernel_time", "Relu", ts + 2, 10),
                node("r_fence_before", "Relu", ts + 2, 99),
                {"cat": "Session", "name": "model_run", "ts": ts, "dur": 500}]

    trace = tmp_path / "p.json"
    trace.write_text(json.dumps(run(0, 1000) + run(1000, 30) + run(2000, 30)))
    rolled = roll_up_profile(trace, last_runs=2)
    assert list(rolled) == ["Conv", "Relu"]
    assert rolled["Conv"] == {"ms_per_run": 0.03, "share": 0.75}
    assert rolled["Relu"]["share"] == 0.25
    with pytest.raises(CondenseDeployError, match="cannot read"):
        roll_up_profile(tmp_path / "missing.json")


def test_latency_stats_and_thread_parsing() -> None:
    stats = latency_stats([float(v) for v in range(1, 101)])
    assert stats["min"] == 1 and stats["max"] == 100 and stats["mean"] == 50.5
    assert stats["p50"] == pytest.approx(50.5) and stats["p90"] == pytest.approx(90.1)
    assert parse_threads("1,2,4") == [1, 2, 4]
    assert parse_threads("all") == [len(os.sched_getaffinity(0))]
    assert parse_threads(f"{len(os.sched_getaffinity(0))},all") == [len(os.sched_getaffinity(0))]
    for bad in ("0", "x", "", "1,-2", "1,,2", "2,2", "1,2,4,2", "nan", "999"):
        with pytest.raises(CondenseDeployError):
            parse_threads(bad)


@pytest.mark.parametrize(
    ("key", "settings", "message"),
    [
        ("missing", BenchSettings(runs=1), "no such file"),
        ("not_onnx", BenchSettings(runs=1), "cannot load it as an ONNX model"),
        ("vector", BenchSettings(runs=1), r"shape \['N', 10\], expected N,3,H,W"),
        ("int", BenchSettings(runs=1), r"tensor\(int64\), expected tensor\(float\)"),
        ("fixed", BenchSettings(runs=1, batch=2), "fixed batch of 1; --batch 2"),
        ("small", BenchSettings(runs=1, duration_s=1.0), "not both"),
        ("small", BenchSettings(runs=0), "runs 0"),
        ("small", BenchSettings(graph_opt_level="max"), "graph optimization level"),
    ],
)
def test_bad_input_is_one_clear_error(models: dict[str, Path], tmp_path: Path, key: str,
                                      settings: BenchSettings, message: str) -> None:
    paths = {**models, "missing": tmp_path / "nope.onnx", "not_onnx": tmp_path / "junk.onnx"}
    paths["not_onnx"].write_text("this is not a protobuf")
    with pytest.raises(CondenseDeployError, match=message):
        run_bench([paths[key]], settings)


# ------------------------------------------------------------------------------------------- CLI


def test_cli_bench_outputs(models: dict[str, Path], tmp_path: Path, runner) -> None:
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    args = ["bench", str(models["small"]), str(models["big"]), "--threads", "1,2", "--runs", "3",
            "--warmup", "1", "--json", str(out_json), "--csv", str(out_csv)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "p50 ms" in result.stdout and "x first" in result.stdout and "machine:" in result.stdout
    data = json.loads(out_json.read_text())
    assert len(data["results"]) == 4 and data["settings"]["runs"] == 3
    assert len(out_csv.read_text().splitlines()) == 1 + 4
    again = runner.invoke(cli, args)  # --json exists now: refused, nothing measured
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    md = runner.invoke(cli, ["bench", str(models["small"]), "--runs", "2", "--markdown",
                             "--csv", str(out_csv)])
    assert md.exit_code == 0, md.output
    assert "| model | threads | p50 ms |" in md.stdout and "**Machine:**" in md.stdout
    assert len(out_csv.read_text().splitlines()) == 1 + 4 + 1  # header written once


def test_cli_profile_prints_op_shares(models: dict[str, Path], runner) -> None:
    result = runner.invoke(cli, ["bench", str(models["big"]), "--runs", "3", "--profile"])
    assert result.exit_code == 0, result.output
    assert "profile big @ 1 thread(s): " in result.stdout and "%" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{missing}", "--runs", "1"], 1, "no such file"),
        (["{not_onnx}", "--runs", "1"], 1, "cannot load it as an ONNX model"),
        (["{vector}", "--runs", "1"], 1, "expected N,3,H,W"),
        (["{small}", "--threads", "0"], 2, "must be in 1..256"),
        (["{small}", "--csv", "{not_onnx}"], 1, "differ from the bench CSV"),
        (["{small}", "--runs", "3", "--duration", "1"], 2, "not both"),
        (["{small}", "--graph-opt-level", "max"], 2, "Invalid value"),
    ],
)
def test_cli_errors_are_one_line(models: dict[str, Path], tmp_path: Path, runner, args: list[str], code: int,
                                 message: str) -> None:
    paths = {k: str(v) for k, v in models.items()}
    paths["missing"] = str(tmp_path / "missing.onnx")
    paths["not_onnx"] = str(tmp_path / "model.onnx")
    Path(paths["not_onnx"]).write_bytes(b"\x00\x01garbage")
    result = runner.invoke(cli, ["bench", *[a.format(**paths) for a in args]])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("Error:") == 1


def test_cli_remote_hands_off_and_keeps_outputs_local(models: dict[str, Path], tmp_path: Path, runner,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import condense_deploy.runtime.remote as remote

    seen: dict[str, object] = {}

    def fake_remote(host: str, model_paths: list[Path], settings: BenchSettings, threads: str | None):
        seen.update(host=host, models=model_paths, args=settings.to_args(threads))
        return run_bench(model_paths, BenchSettings(runs=2, warmup=0))

    monkeypatch.setattr(remote, "run_remote_bench", fake_remote)
    out = tmp_path / "remote.json"
    result = runner.invoke(cli, ["bench", str(models["small"]), "--remote", "pi@board", "--threads", "1,4",
                                 "--runs", "7", "--profile", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "pi@board" and seen["models"] == [models["small"]]
    assert seen["args"] == ["--threads", "1,4", "--batch", "1", "--warmup", "10", "--graph-opt-level", "all",
                            "--runs", "7", "--profile"]
    assert json.loads(out.read_text())["results"][0]["model"] == "small"


# ------------------------------------------------------------------------------- torch-free path

def test_bench_runs_where_torch_and_onnx_cannot_be_imported(models: dict[str, Path], tmp_path: Path) -> None:
    blocked = ("torch", "onnx", "onnxsim", "torchvision")
    out = tmp_path / "r.json"
    done = run_cli_without(tmp_path, blocked, "bench", str(models["small"]), str(models["big"]),
                           "--threads", "1,2", "--runs", "3", "--profile", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["results"]) == 4
    report = run_cli_without(tmp_path, blocked, "report", str(out))
    assert report.returncode == 0, report.stderr
    assert "| machine | arch | model |" in report.stdout


def test_report_round_trips_through_from_dict(models: dict[str, Path]) -> None:
    data = run_bench([models["small"]], BenchSettings(runs=2, warmup=0)).to_dict()
    again = B.BenchReport.from_dict(json.loads(json.dumps(data))).to_dict()
    assert json.dumps(again) == json.dumps(data)  # same keys, same order: the JSON is byte-identical
    with pytest.raises(CondenseDeployError, match="schema"):
        B.BenchReport.from_dict({"schema": "other"})


def test_peak_rss_is_each_models_own(tmp_path: Path) -> None:
    """Several models in one bench: each row's peak RSS is its own (a child process per model), so a
    model with 64 MB of weights shows it and a tiny one does not; the report says how it was measured.
    """
    from condense_deploy.runtime.bench import MEMORY_NOTE
    from condense_deploy.runtime.reports import format_text

    small = conv_net(tmp_path / "small.onnx")
    big = conv_net(tmp_path / "big.onnx", channels=4096, classes=4096)  # 64 MB fc weights
    report = run_bench([small, big, small], BenchSettings(threads=[1], warmup=1, runs=3)).to_dict()
    first, second, again = (r["peak_rss_mb"] for r in report["results"])
    assert second - first > 50, (first, second)
    assert abs(again - first) < 20, (first, again)  # measured alone, not after the big one
    assert report["settings"]["memory"] == MEMORY_NOTE
    assert "each model alone in a child process" in format_text(report)
