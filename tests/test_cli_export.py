"""``condense-deploy export`` and ``verify`` end to end: checkpoint -> ONNX -> onnxruntime, the flags,
and every error path as one ``Error:`` line with a non-zero exit and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _ckpt_factory import original_training_checkpoint, tiny_config, trained_model

from condense_deploy.cli import cli
from condense_deploy.convert import convert_model
from condense_deploy.runtime.sessions import create_session


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """An original-layout training checkpoint, fully condensed (C=4, G=4), and its converted model."""
    model = trained_model(tiny_config(4, 4), seed=7)
    path = original_training_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "checkpoint.pth.tar")
    return path, convert_model(model).eval()


def _fails(result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_checkpoint_to_onnx_to_onnxruntime(runner, tmp_path: Path, checkpoint) -> None:
    source, deployed = checkpoint
    out = tmp_path / "model.onnx"
    result = runner.invoke(cli, ["export", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout and "optimize fast" in result.stdout
    assert "max abs diff vs PyTorch: batch 1 " in result.stdout and "batch 3 " in result.stdout
    assert "validating in onnxruntime" in result.stderr  # progress goes to stderr
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)
    session = create_session(out, threads=None, log_severity=None)
    with torch.no_grad():
        want = deployed(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(["logits"], {"input": x})[0] - want).max() < 1e-4

    verified = runner.invoke(cli, ["verify", str(out), str(source)])
    assert verified.exit_code == 0, verified.output
    assert "matches" in verified.output and "batch 3" in verified.output

    info = json.loads(runner.invoke(cli, ["inspect", str(out), "--json"]).output)
    assert info["inputs"][0]["shape"][0] == "batch"
    assert info["metadata"]["condense_deploy.form"] == "converted"
    assert len(info["metadata"]["condense_deploy.source_sha256"]) == 64


def test_flags_reach_the_file(runner, tmp_path: Path, checkpoint) -> None:
    source, _ = checkpoint
    out = tmp_path / "fixed.onnx"
    result = runner.invoke(cli, ["export", str(source), "-o", str(out), "--opset", "13", "--batch",
                                 "2", "--no-simplify", "--optimize", "none", "--exporter", "torchscript",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["batch"] == 2 and report["opset"] == 13 and report["simplified"] is False
    assert list(report["max_abs_diff"]) == ["2"]
    proto = onnx.load(str(out))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert {i.domain: i.version for i in proto.opset_import}[""] == 13
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["condense_deploy.optimize"]) == {"mode": "none"}
    assert json.loads(meta["condense_deploy.export"])["simplified"] is False


def test_force_overwrites_and_without_it_the_file_is_kept(runner, tmp_path: Path, checkpoint) -> None:
    source, _ = checkpoint
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    _fails(runner.invoke(cli, ["export", str(source), "-o", str(out)]), "already exists", "--force")
    assert out.read_bytes() == b"old"
    result = runner.invoke(cli, ["export", str(source), "-o", str(out), "--force", "--optimize", "none"])
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(onnx.load(str(out)))


def test_help_lists_the_contract(runner) -> None:
    text = runner.invoke(cli, ["export", "--help"]).output
    for flag in ["-o, --output", "--arch", "--opset", "--batch", "--simplify / --no-simplify", "--exporter",
                 "torchscript|dynamo", "--optimize", "none|fast|tuned", "--force"]:
        assert flag in text, flag
    assert "verify" in runner.invoke(cli, ["--help"]).output


def test_unknown_zoo_name(runner, tmp_path: Path) -> None:
    _fails(runner.invoke(cli, ["export", "condensenet_nope", "-o", str(tmp_path / "x.onnx")]),
           "condensenet_nope")


def test_unwritable_output(runner, tmp_path: Path) -> None:
    _fails(runner.invoke(cli, ["export", "condensenet50_cifar", "-o", str(tmp_path / "no" / "x.onnx")]),
           "does not exist")


def test_checkpoint_that_fails_to_load(runner, tmp_path: Path, checkpoint) -> None:
    source, _ = checkpoint
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    result = runner.invoke(cli, ["export", str(truncated), "-o", str(tmp_path / "x.onnx")])
    _fails(result, "truncated.pth.tar")
    assert not (tmp_path / "x.onnx").exists()


def test_not_condensed_checkpoint(runner, tmp_path: Path) -> None:
    early = original_training_checkpoint(trained_model(tiny_config(4, 4), progress=0.3), tmp_path / "e.pth")
    _fails(runner.invoke(cli, ["export", str(early), "-o", str(tmp_path / "x.onnx")]), "stage")


def test_arch_mismatch(runner, tmp_path: Path, checkpoint) -> None:
    source, _ = checkpoint
    _fails(runner.invoke(cli, ["export", str(source), "-o", str(tmp_path / "x.onnx"), "--arch",
                               "condensenet74_cifar"]), "condensenet74_cifar")


@pytest.mark.parametrize("args", [["--batch", "0"], ["--batch", "lots"], ["--exporter", "jit"],
                                  ["--optimize", "max"], ["--opset", "x"]])
def test_bad_flags_are_usage_errors(runner, tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(cli, ["export", "condensenet50_cifar", "-o", str(tmp_path / "x.onnx"), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_unsupported_opset(runner, tmp_path: Path) -> None:
    import onnx

    from condense_deploy.commands.export import MIN_OPSET
    from condense_deploy.export import SPEC

    newest = onnx.defs.onnx_opset_version()
    for opset in ("9", str(newest + 1)):
        _fails(runner.invoke(cli, ["export", "condensenet50_cifar", "-o", str(tmp_path / "x.onnx"), "--opset",
                                   opset]), f"{opset} is not in the range 13<=x<={newest}", code=2)
    help_text = " ".join(runner.invoke(cli, ["export", "--help"]).output.split())
    assert f"[13<=x<={newest}]" in help_text and MIN_OPSET == SPEC.min_opset


def test_verify_mismatch_and_missing_file(runner, tmp_path: Path, checkpoint) -> None:
    source, _ = checkpoint
    out = tmp_path / "model.onnx"
    assert runner.invoke(cli, ["export", str(source), "-o", str(out), "--optimize", "none"]).exit_code == 0
    other = original_training_checkpoint(trained_model(tiny_config(4, 4), seed=8), tmp_path / "other.pth")
    _fails(runner.invoke(cli, ["verify", str(out), str(other)]), "differs from PyTorch", "atol 1e-04")
    result = runner.invoke(cli, ["verify", str(tmp_path / "missing.onnx"), str(source)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    _fails(runner.invoke(cli, ["verify", str(junk), str(source)]), "junk.onnx")
    fast = tmp_path / "fast.onnx"
    assert runner.invoke(cli, ["export", str(source), "-o", str(fast)]).exit_code == 0
    zero = onnx.load(str(fast))  # a file whose batch axis is fixed at 0: nothing can run through it
    zero.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0
    onnx.save(zero, str(tmp_path / "zero.onnx"))
    _fails(runner.invoke(cli, ["verify", str(tmp_path / "zero.onnx"), str(source)]), "zero.onnx",
           "batch axis is fixed at 0")


def test_optimize_tuned_from_the_cli(runner, tmp_path: Path, checkpoint) -> None:
    source, _ = checkpoint
    out = tmp_path / "tuned.onnx"
    result = runner.invoke(cli, ["export", str(source), "-o", str(out), "--optimize", "tuned"])
    assert result.exit_code == 0, result.output
    assert "optimize tuned" in result.stdout and "optimizing for onnxruntime (tuned)" in result.stderr
    assert "tuning grouped convs" not in result.stderr  # no progress bar where stderr is not a terminal
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "choices" in json.loads(meta["condense_deploy.optimize"])


def test_command_module_leaves_torch_out() -> None:
    import subprocess
    import sys

    code = "import sys, condense_deploy.commands.export; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["condensenet74_c4g4"])
def test_shipped_imagenet_fast_export_matches_pytorch_independently(
    runner, tmp_path: Path, name: str,
) -> None:
    """The shipped ImageNet export (default --optimize fast) reopened in a plain onnxruntime session and
    compared with the zoo model in PyTorch on inputs of our own, at batches the export never checked:
    not the export's own max_abs_diff, which cannot exceed atol once the export succeeded."""
    import onnxruntime as ort

    from condense_deploy.checkpoint import load_model

    target = tmp_path / f"{name}.onnx"
    result = runner.invoke(cli, ["export", name, "-o", str(target)])
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    model = load_model(name).model.eval()
    rng = np.random.default_rng(123)
    for batch in (2, 5):
        x = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (batch, 1000)
        diff = float(np.abs(got - want).max())
        assert diff <= 1e-4, f"batch {batch}: max abs diff {diff:.2e} > 1e-4"
        assert (got.argmax(1) == want.argmax(1)).all()
