"""fp16 DenseBlocks on emulated aarch64: they run on a core with FP16 arithmetic (qemu's neoverse-n1)
and stay close to fp32, and a core without it (cortex-a72, the Raspberry Pi 4) refuses the model in
one line.

Slow (emulation): deselected by `make test`, run by .ci/run with `-m slow`. It skips, saying why, only
where this machine cannot run the emulated userland at all (scripts/aarch64-env.sh exit 77).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_aarch64_emulated import SCRIPT, _setup_emulation

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SIZE = 30
INPUTS = 6
# fp16 keeps 11 significant bits: through the two dense blocks of this model the logits moved by
# 2.9e-4 with |logits| at most 2.68 (1.1e-4 of it, measured under qemu neoverse-n1); the bound leaves
# about 18x room and still catches a block computed wrongly (moves of the order of the logits)
RELATIVE_TOLERANCE = 2e-3

_DRIVER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from condense_deploy.runtime.sessions import create_session
    x = np.load(sys.argv[1])
    for name, path in json.loads(sys.argv[2]).items():
        session = create_session(path, 1)
        np.save(path + ".out.npy", session.run(None, {"input": x})[0])
    print("done")
""")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """A random converted CondenseNet (C=G=8, two dense blocks), exported native at fp32 and fp16,
    its logits scaled to about unit size; INPUTS random inputs."""
    import torch
    from test_onnx_passes import random_converted

    from condense_deploy.export import export_onnx

    _setup_emulation()
    folder = tmp_path_factory.mktemp("fp16_emulated")
    model = random_converted(8, 8, seed=2)[0]
    x = np.random.default_rng(5).standard_normal((INPUTS, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        last_weight = [p for n, p in model.named_parameters() if n.endswith("weight")][-1]
        last_weight.mul_(1.0 / float(model(torch.from_numpy(x)).std()))
    paths = {p: folder / f"{p}.onnx" for p in ("fp32", "fp16")}
    for precision, path in paths.items():
        export_onnx(model, path, input_size=(3, SIZE, SIZE), optimize="native", precision=precision)
    export_onnx(model, folder / "none.onnx", input_size=(3, SIZE, SIZE), optimize="none")
    np.save(folder / "x.npy", x)
    return paths, folder / "x.npy"


def _emulated(cpu: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python3.11 ARGS`` on emulated aarch64 in ``cwd`` (not the checkout: `-m condense_deploy` there
    would import the checkout's package, with its x86 kernels, instead of the installed one)."""
    return subprocess.run(["bash", str(SCRIPT), "run", *args], capture_output=True, text=True, check=False,
                          timeout=1800, env=dict(os.environ, QEMU_CPU=cpu), cwd=cwd)


def test_fp16_blocks_run_with_fp16_arithmetic_and_stay_close_to_fp32(models, tmp_path: Path) -> None:
    paths, x_path = models
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    jobs = json.dumps({k: str(v) for k, v in paths.items()})
    done = _emulated("neoverse-n1", str(driver), str(x_path), jobs, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    fp32, fp16 = (np.load(f"{paths[p]}.out.npy") for p in ("fp32", "fp16"))
    assert fp32.shape == fp16.shape == (INPUTS, 10)
    scale = float(np.abs(fp32).max())
    diff = float(np.abs(fp16 - fp32).max())
    print(f"neoverse-n1: fp16 vs fp32 logits max abs diff {diff:.2e} (|logits| max {scale:.2f})")
    assert np.isfinite(fp16).all()
    assert 0 < diff <= RELATIVE_TOLERANCE * scale  # 0 would mean the blocks did not compute in fp16
    np.testing.assert_array_equal(fp16.argmax(1), fp32.argmax(1))


def test_a_core_without_fp16_arithmetic_refuses_the_model_in_one_line(models, tmp_path: Path) -> None:
    paths, _ = models
    done = _emulated("cortex-a72", "-m", "condense_deploy", "bench", str(paths["fp16"]), "--runs", "1",
                     "--warmup", "0", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    refusal = "this CPU cannot run it: DenseBlock: precision fp16 needs FP16 arithmetic (ARMv8.2"
    assert f'{paths["fp16"]}: {refusal}' in errors[0]
    assert "this CPU has: asimd" in errors[0]
    info = _emulated("cortex-a72", "-m", "condense_deploy", "info", cwd=tmp_path)
    assert info.returncode == 0 and "fp16 blocks:  no: this CPU (aarch64" in info.stdout, info.stdout
    info = _emulated("neoverse-n1", "-m", "condense_deploy", "info", cwd=tmp_path)
    assert info.returncode == 0 and "fp16 blocks:  yes" in info.stdout, info.stdout


def test_optimize_on_a_core_with_fp16_runs_and_reports_the_fp16_blocks(models, tmp_path: Path) -> None:
    """What a Pi 5 user runs to check fp16 on the board: optimize verifies the graph at fp32, then runs
    the fp16 blocks and prints how far they move."""
    paths, _ = models
    source = paths["fp32"].parent / "none.onnx"
    out = tmp_path / "m16.onnx"
    done = _emulated("neoverse-n1", "-m", "condense_deploy", "optimize", str(source), "-o", str(out),
                     "--optimize", "native", "--precision", "fp16", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dense blocks on the native kernels: 2, precision fp16" in done.stdout, done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("fp16 blocks vs "))
    assert "top-1 agreement 100% on 2 random input(s)" in line, line
    assert out.is_file()
