"""Exported CondenseNet-74 gives the same outputs on aarch64 onnxruntime as on x86 onnxruntime.

aarch64 is emulated (scripts/aarch64-env.sh: qemu-aarch64-static, arm64 Debian python3.11, aarch64
wheels of the same onnxruntime/numpy versions): this checks correctness only, never speed. The
emulated side runs the toolkit's own runtime path (installed as on a board: no torch).

Slow (about a minute and a half of emulation): deselected by `make test`, run by .ci/run on every CI
run with `-m slow`. It fails when the emulated run fails; it skips, saying why, only when this
machine cannot run the setup at all (not root, or no qemu-user-static package).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _prereq import missing_prerequisite

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "scripts" / "aarch64-env.sh"
MODELS = ("condensenet74_c4g4", "condensenet74_c8g8")
ATOL = 1e-5
CANNOT_RUN_HERE = 77  # aarch64-env.sh's exit status for "this machine cannot run the setup at all"

# The same driver runs on x86 (this venv) and on emulated aarch64: for each (model, input, output),
# one session made the way the toolkit's bench makes it, one run, the output saved.
_DRIVER = textwrap.dedent("""
    import json, platform, sys
    import numpy as np
    from pathlib import Path
    from condense_deploy.runtime.bench import BenchSettings, _open_session, _session_options
    def make_session(path):  # exactly the session `condense-deploy bench` measures
        return _open_session(Path(path), _session_options(BenchSettings(), 1))
    jobs = json.loads(open(sys.argv[1]).read())
    key = sys.argv[2]
    for job in jobs:
        session = make_session(job["model"])
        x = np.load(job["input"])
        np.save(job[key], session.run(None, {session.get_inputs()[0].name: x})[0])
    if "torch" in sys.modules:
        sys.exit("torch was imported on the board path")
    print(json.dumps({"machine": platform.machine(), "done": len(jobs)}))
""")


def _setup_emulation() -> None:
    if os.geteuid() != 0:
        missing_prerequisite("emulated aarch64 needs root (apt-get install, unshare -m, mount)")
    done = subprocess.run(["bash", str(SCRIPT), "setup"], capture_output=True, text=True, check=False)
    if done.returncode == CANNOT_RUN_HERE:
        last = done.stderr.strip().splitlines()[-1]
        missing_prerequisite(f"this machine cannot run emulated aarch64: {last}")
    assert done.returncode == 0, f"aarch64-env.sh setup failed:\n{done.stderr[-3000:]}"


def _export(name: str, plain: Path, fast: Path, native: Path) -> None:
    """CondenseNet-74 in converted (deployment) form, logits scaled to about unit size so that 1e-5
    is a strict bound, exported by the toolkit (validated against PyTorch): as is, and optimized."""
    import torch

    from condense_deploy.architectures.registry import create_model
    from condense_deploy.export import export_onnx

    torch.manual_seed(0)
    model = create_model(name, converted=True).eval()
    with torch.no_grad():
        last_weight = [p for n, p in model.named_parameters() if n.endswith("weight")][-1]
        last_weight.mul_(1.0 / float(model(torch.randn(2, 3, 224, 224)).std()))
    export_onnx(model, plain, input_size=(3, 224, 224), optimize="none")
    export_onnx(model, fast, input_size=(3, 224, 224), optimize="fast")
    export_onnx(model, native, input_size=(3, 224, 224), optimize="native")  # our kernels (NEON there)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    _setup_emulation()
    d = tmp_path_factory.mktemp("aarch64")
    rng = np.random.default_rng(0)
    out: list[dict[str, str]] = []
    for name in MODELS:
        models = [d / f"{name}.onnx", d / f"{name}_fast.onnx", d / f"{name}_native.onnx"]
        _export(name, *models)
        x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
        np.save(d / f"{name}_input.npy", x)
        for model in models:
            out.append({"model": str(model), "input": str(d / f"{name}_input.npy"),
                        "aarch64": str(d / f"{model.stem}_aarch64.npy"),
                        "x86": str(d / f"{model.stem}_x86.npy")})
    return out


def _run_driver(command: list[str], tmp_path: Path, jobs: list[dict[str, str]], key: str,
                env: dict[str, str] | None = None) -> dict:
    manifest = tmp_path / "jobs.json"
    manifest.write_text(json.dumps(jobs))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    done = subprocess.run([*command, str(driver), str(manifest), key],
                          capture_output=True, text=True, check=False, timeout=1800, env=env)
    assert done.returncode == 0, f"{key} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# The emulated cores: a Pi 4's (the NEON kernels' narrow tiles) and the Pi 5 stand-in (wide tiles,
# chosen by the kernels' MIDR/HWCAP probe).
EMULATED_CPUS = ("cortex-a72", "neoverse-n1")


@pytest.mark.parametrize("cpu", EMULATED_CPUS)
def test_aarch64_outputs_match_x86(jobs: list[dict[str, str]], tmp_path: Path, cpu: str) -> None:
    emulated = _run_driver(["bash", str(SCRIPT), "run"], tmp_path, jobs, "aarch64",
                           env=dict(os.environ, QEMU_CPU=cpu))
    assert emulated == {"machine": "aarch64", "done": len(jobs)}
    native = _run_driver([sys.executable], tmp_path, jobs, "x86")
    assert native == {"machine": "x86_64", "done": len(jobs)}

    report = []
    for job in jobs:
        a, b = np.load(job["aarch64"]), np.load(job["x86"])
        assert a.shape == b.shape == (1, 1000), job["model"]
        diff = float(np.abs(a - b).max())
        name = Path(job["model"]).name
        report.append(f"{cpu} {name}: max abs diff {diff:.2e} (|logits| max {np.abs(b).max():.2f})")
        assert diff <= ATOL, f"{cpu} {name}: aarch64 vs x86 max abs diff {diff:.3e} > atol {ATOL:g}"
    print("\n".join(report), file=sys.stderr)


def test_bench_command_on_emulated_aarch64(jobs: list[dict[str, str]], tmp_path: Path) -> None:
    """`python -m condense_deploy bench` as a board runs it: the runtime install, no torch."""
    model = next(j["model"] for j in jobs if j["model"].endswith("condensenet74_c8g8_fast.onnx"))
    out = tmp_path / "aarch64.json"
    done = subprocess.run(["bash", str(SCRIPT), "run", "-m", "condense_deploy", "bench", model,
                           "--warmup", "0", "--runs", "1", "--json", str(out)],
                          capture_output=True, text=True, check=False, timeout=1800)
    assert done.returncode == 0, f"emulated bench failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(out.read_text())
    assert report["machine"]["arch"] == "aarch64"
    assert report["machine"]["onnxruntime"] == "1.32.0"
    [result] = report["results"]
    assert result["model"] == "condensenet74_c8g8_fast" and result["runs"] == 1
    assert result["latency_p50_ms"] > 0


def test_installed_toolkit_finds_zoo_cards_on_aarch64() -> None:
    """The emulated side has the toolkit installed from a built wheel (not this checkout), so this is
    the board's `pip install .`: the cards must come from the package."""
    _setup_emulation()
    done = subprocess.run(["bash", str(SCRIPT), "run", "-m", "condense_deploy", "list", "condensenet74_*"],
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert {"condensenet74_c4g4", "condensenet74_c8g8", "condensenet74_cifar"} <= set(names)


# DenseBlock precision "fp16" through the toolkit's session factory on the emulated cores: computed
# in ARMv8.2 FP16 arithmetic where the core has it (the Pi 5 stand-in), refused in one message where
# it has not (the Pi 4's Cortex-A72). Blocks 1, 3 and 5 of CondenseNet-74 C=G=8, random parameters
# as a converted model has them.
_FP16_DRIVER = textwrap.dedent("""
    import json
    import numpy as np
    from condense_deploy.errors import CondenseDeployError
    from condense_deploy.native.op_models import dense_block_model, dense_params
    from condense_deploy.runtime.sessions import create_session
    rng = np.random.default_rng(0)
    out = []
    for c0, growth, layers, hw in [(16, 8, 4, 112), (144, 32, 8, 28), (1040, 128, 8, 7)]:
        p = dense_params(rng, c0, growth, layers, 8, 8)
        x = rng.standard_normal((1, c0, hw, hw)).astype(np.float32)
        y = {}
        for precision in ("fp32", "fp16"):
            model = dense_block_model(dict(p, attrs=dict(p["attrs"], precision=precision)), c0)
            try:
                y[precision] = create_session(model).run(None, {"X": x})[0]
            except CondenseDeployError as e:
                y[precision] = str(e)
        row = {"block": f"{c0}+{layers}x{growth} {hw}x{hw}"}
        if isinstance(y["fp16"], str):
            row["error"] = y["fp16"]
        else:
            row["max_abs_diff"] = float(np.abs(y["fp16"] - y["fp32"]).max())
            row["max_abs"] = float(np.abs(y["fp32"]).max())
            row["inputs_exact"] = bool(np.array_equal(y["fp16"][:, :c0], x))
        out.append(row)
    print(json.dumps(out))
""")


@pytest.mark.parametrize("cpu", EMULATED_CPUS)
def test_dense_block_fp16_on_emulated_aarch64(tmp_path: Path, cpu: str) -> None:
    _setup_emulation()
    driver = tmp_path / "fp16.py"
    driver.write_text(_FP16_DRIVER)
    done = subprocess.run(["bash", str(SCRIPT), "run", str(driver)], capture_output=True, text=True,
                          check=False, timeout=1800, env=dict(os.environ, QEMU_CPU=cpu))
    assert done.returncode == 0, f"emulated run failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    print("\n".join(f"{cpu} {row}" for row in rows), file=sys.stderr)
    for row in rows:
        if cpu == "cortex-a72":
            refusal = "DenseBlock: precision fp16 needs FP16 arithmetic (ARMv8.2 fphp+asimdhp"
            assert row["error"].count(refusal) == 1, row
            assert "this CPU has: asimd midr=0x410fd083" in row["error"]
        else:
            assert "error" not in row, row
            assert row["inputs_exact"], row
            # fp16 accumulation: well within 2% of the largest output (measured 0.3-0.5%)
            assert row["max_abs_diff"] <= 0.02 * row["max_abs"], row
