"""export.py: every CondenseNet C/G combination and every baseline exported, checked, simplified,
optimized and run in onnxruntime at two batch sizes; graph properties; metadata; failure paths."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _ckpt_factory import (
    original_converted_file,
    original_training_checkpoint,
    tiny_config,
    trained_model,
)
from _prereq import missing_prerequisite
from onnx import numpy_helper

from condense_deploy import __version__
from condense_deploy.architectures.registry import list_models
from condense_deploy.checkpoint import load_model
from condense_deploy.convert import convert_model
from condense_deploy.count import count_model
from condense_deploy.errors import CondenseDeployError
from condense_deploy.export import META, SPEC, export_onnx, read_metadata, validate_onnx
from condense_deploy.pipeline import export_source, verify_source
from condense_deploy.runtime.sessions import create_session

FACTORS = [2, 4, 8]
CG = [(c, g) for c in FACTORS for g in FACTORS]
CIFAR, IMAGENET = (3, 32, 32), (3, 224, 224)



def converted(condense: int, groups: int, kind: str = "cifar", seed: int = 0) -> torch.nn.Module:
    """A small converted CondenseNet with real indices and random BN statistics."""
    return convert_model(trained_model(tiny_config(groups, condense, kind=kind), seed=seed))


def run(path: Path, batch: int, size: tuple[int, int, int], seed: int = 5) -> np.ndarray:
    session = create_session(path, threads=None, log_severity=None)
    x = np.random.default_rng(seed).standard_normal((batch, *size), dtype=np.float32)
    return session.run(["logits"], {"input": x})[0]


def torch_logits(model: torch.nn.Module, batch: int, size: tuple[int, int, int], seed: int = 5) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((batch, *size), dtype=np.float32)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


# ------------------------------------------------------------------------------ C/G matrix, forms


@pytest.mark.parametrize("kind", ["cifar", "imagenet"])
@pytest.mark.parametrize("condense,groups", CG)
def test_every_condense_group_combination_exports_exactly(tmp_path: Path, condense: int, groups: int,
                                                         kind: str) -> None:
    model = converted(condense, groups, kind)
    size = CIFAR if kind == "cifar" else IMAGENET
    result = export_onnx(model, tmp_path / "m.onnx", input_size=size)  # default: simplify + optimize fast
    assert set(result.max_abs_diff) == {1, 3}
    assert max(result.max_abs_diff.values()) <= SPEC.atol
    # independently of the built-in check: another input and batch size (the trace used 2 as well)
    assert np.abs(run(result.path, 2, size) - torch_logits(model, 2, size)).max() < 1e-4
    assert "GatherElements" not in {n.op_type for n in onnx.load(result.path).graph.node}


def test_unconverted_training_form_exports_too(tmp_path: Path) -> None:
    """The masked training form (what the conversion is compared against) is exportable as well."""
    model = trained_model(tiny_config(4, 4))
    result = export_onnx(model, tmp_path / "masked.onnx", input_size=CIFAR, optimize="none")
    assert max(result.max_abs_diff.values()) <= SPEC.atol
    assert "Gather" not in {n.op_type for n in onnx.load(result.path).graph.node}


_FAST_CIFAR_CARDS = {"condensenet50_cifar"}  # the deeper cards take 10-60 s each here: slow tier


@pytest.mark.parametrize("name", [
    n if n in _FAST_CIFAR_CARDS else pytest.param(n, marks=pytest.mark.slow)
    for n in list_models(family="condensenet") if n.endswith("_cifar")
])
def test_zoo_cifar_condensenets(tmp_path: Path, name: str) -> None:
    result = export_source(name, tmp_path / f"{name}.onnx")
    assert max(result.max_abs_diff.values()) <= SPEC.atol
    assert result.metadata[META + "architecture"] == name
    assert result.metadata[META + "form"] == "converted"


@pytest.mark.parametrize("name", ["condensenet74_c4g4", "condensenet74_c8g8"])
def test_zoo_imagenet_condensenets(tmp_path: Path, name: str) -> None:
    result = export_source(name, tmp_path / f"{name}.onnx")
    assert max(result.max_abs_diff.values()) <= SPEC.atol
    expected = {"condensenet74_c4g4": (529_328_264, 4_773_944),
                "condensenet74_c8g8": (274_233_480, 2_935_416)}
    meta = read_metadata(result.path)
    assert (int(meta[META + "flops"]), int(meta[META + "params"])) == expected[name]


@pytest.mark.parametrize("optimize", ["none", "fast"])
def test_densenet_exports(tmp_path: Path, optimize: str) -> None:
    """The zoo DenseNet-BC as it comes (random init), plain and through the optimizer."""
    result = export_source("densenet_bc100_cifar", tmp_path / "d.onnx", optimize=optimize)
    assert max(result.max_abs_diff.values()) <= SPEC.atol


# ------------------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v1", "mobilenet_v2", "shufflenet_v2_x1_0"])
def test_baselines_export(tmp_path: Path, name: str) -> None:
    result = export_source(name, tmp_path / f"{name}.onnx")
    assert max(result.max_abs_diff.values()) <= SPEC.atol
    assert set(result.max_abs_diff) == {1, 3}
    assert result.metadata[META + "form"] == "plain"
    out = run(result.path, 2, IMAGENET)
    assert out.shape == (2, 1000) and np.isfinite(out).all()


@pytest.mark.slow
def test_vgg16_export(tmp_path: Path) -> None:
    result = export_source("vgg16", tmp_path / "vgg16.onnx")
    assert max(result.max_abs_diff.values()) <= SPEC.atol
    # onnxsim stores identical (all-zero) biases once, so the file is a little under 4 bytes x params
    assert 0.999 * 138_357_544 * 4 < result.size_bytes < 138_357_544 * 4 + 1_000_000


# --------------------------------------------------------------------------------- graph contract


@pytest.fixture(scope="module")
def plain_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A converted CondenseNet (C=4, G=2: group counts differ) exported without optimization."""
    path = tmp_path_factory.mktemp("plain") / "c4g2.onnx"
    model = converted(4, 2)
    export_onnx(model, path, input_size=CIFAR, optimize="none")
    return path, model


def test_index_layers_are_gather_axis1_with_int64_constant(plain_export) -> None:
    path, model = plain_export
    proto = onnx.load(str(path))
    consts = initializers(proto)
    gathers = [n for n in proto.graph.node if n.op_type == "Gather"]
    indexed = sum(1 for m in model.modules() if hasattr(m, "index"))
    assert len(gathers) == indexed and indexed > 0
    expected = sorted(tuple(m.index.tolist()) for m in model.modules() if hasattr(m, "index"))
    found = []
    for node in gathers:
        assert {a.name: a.i for a in node.attribute}.get("axis") == 1
        indices = consts[node.input[1]]
        assert indices.dtype == np.int64
        found.append(tuple(indices.tolist()))
    assert sorted(found) == expected
    assert not any(n.op_type == "GatherElements" for n in proto.graph.node)


def test_shuffle_does_not_bake_in_the_batch(plain_export) -> None:
    path, model = plain_export
    proto = onnx.load(str(path))
    consts = initializers(proto)
    reshapes = [n for n in proto.graph.node if n.op_type == "Reshape"]
    assert reshapes, "the channel shuffle should be in the graph"
    for node in reshapes:
        if node.input[1] in consts:  # a constant target shape must leave the batch to the input
            assert consts[node.input[1]][0] in (0, -1), (node.name, consts[node.input[1]])
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == SPEC.batch_dim
    for batch in (1, 2, 5):  # the example batch was 2; other sizes must run and agree
        assert np.abs(run(path, batch, CIFAR) - torch_logits(model, batch, CIFAR)).max() < 1e-4


def test_names_and_opset(plain_export) -> None:
    path, _ = plain_export
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert {i.domain: i.version for i in proto.opset_import}[""] == 17
    onnx.checker.check_model(proto, full_check=True)


def test_fixed_batch_and_other_opset(tmp_path: Path) -> None:
    model = converted(4, 4)
    result = export_onnx(model, tmp_path / "b2.onnx", input_size=CIFAR, batch=2, opset=13, simplify=False)
    assert result.max_abs_diff.keys() == {2}
    proto = onnx.load(result.path)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert {i.domain: i.version for i in proto.opset_import}[""] == 13


@pytest.mark.slow
def test_dynamo_exporter(tmp_path: Path) -> None:
    """torch.export-based exporter with a symbolic batch Dim (example batch 2); ~10-20 s here."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        missing_prerequisite("the dynamo exporter needs onnxscript")
    model = converted(4, 2)
    result = export_onnx(model, tmp_path / "dyn.onnx", input_size=CIFAR, exporter="dynamo")
    assert set(result.max_abs_diff) == {1, 3} and max(result.max_abs_diff.values()) <= SPEC.atol
    proto = onnx.load(result.path)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert not any(n.op_type == "GatherElements" for n in proto.graph.node)
    assert np.abs(run(result.path, 5, CIFAR) - torch_logits(model, 5, CIFAR)).max() < 1e-4


def test_dynamo_without_onnxscript_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(CondenseDeployError, match="onnxscript"):
        export_onnx(converted(2, 2), tmp_path / "x.onnx", input_size=CIFAR, exporter="dynamo")
    assert not list(tmp_path.iterdir())


def test_optimize_report_and_modes(tmp_path: Path, plain_export) -> None:
    path, model = plain_export
    assert json.loads(read_metadata(path)[META + "optimize"]) == {"mode": "none"}
    fast = export_onnx(model, tmp_path / "fast.onnx", input_size=CIFAR)
    assert fast.optimize["mode"] == "fast" and fast.optimize["passes"]
    assert json.loads(read_metadata(fast.path)[META + "optimize"])["mode"] == "fast"
    # the fast rewrites remove the shuffle's Reshape/Transpose and the standalone BN after the 1x1 conv
    ops = {n.op_type for n in onnx.load(fast.path).graph.node}
    assert "Transpose" not in ops


def test_tuned_optimization_is_validated_too(tmp_path: Path) -> None:
    result = export_onnx(converted(4, 4), tmp_path / "tuned.onnx", input_size=CIFAR, optimize="tuned")
    assert result.optimize["mode"] == "tuned" and "choices" in result.optimize
    assert max(result.max_abs_diff.values()) <= SPEC.atol


# ---------------------------------------------------------------------------------------- metadata


def test_metadata_from_a_training_checkpoint(tmp_path: Path) -> None:
    model = trained_model(tiny_config(4, 4), seed=3)
    ckpt = original_training_checkpoint(model, tmp_path / "checkpoint.pth.tar")
    result = export_source(ckpt, tmp_path / "out.onnx", optimize="none")
    meta = read_metadata(result.path)
    assert meta[META + "source_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta[META + "weights"] == "checkpoint"
    assert meta[META + "version"] == __version__
    assert meta[META + "form"] == "converted"  # converted before export
    assert meta[META + "family"] == "condensenet"
    params = json.loads(meta[META + "arch_params"])
    assert params["group_1x1"] == 4 and params["condense_factor"] == 4 and params["stages"] == [2, 2, 2]
    assert json.loads(meta[META + "input_size"]) == [3, 32, 32]
    assert json.loads(meta[META + "mean"]) == pytest.approx([0.4914, 0.4822, 0.4465], abs=2e-3)
    deployed = convert_model(model)
    flops, count = count_model(deployed, CIFAR)
    assert (int(meta[META + "flops"]), int(meta[META + "params"])) == (flops, count)
    verification = json.loads(meta[META + "verification"])
    assert verification["atol"] == SPEC.atol and set(verification["max_abs_diff"]) == {"batch_1", "batch_3"}
    assert json.loads(meta[META + "export"])["opset"] == 17
    # the file computes the converted model (the classifier keeps half its inputs, as the original)
    assert np.abs(run(result.path, 3, CIFAR) - torch_logits(deployed, 3, CIFAR)).max() < 1e-4


def test_original_converted_file_and_verify(tmp_path: Path) -> None:
    model = converted(8, 8, seed=1)
    ckpt = original_converted_file(model, tmp_path / "converted_condensenet_8.pth.tar")
    out = tmp_path / "c8.onnx"
    export_source(ckpt, out, optimize="none")
    diffs = verify_source(out, ckpt).max_abs_diff
    assert set(diffs) == {1, 3} and max(diffs.values()) <= SPEC.atol
    other = original_converted_file(converted(8, 8, seed=2), tmp_path / "other.pth.tar")
    with pytest.raises(CondenseDeployError, match="differs from PyTorch"):
        verify_source(out, other)


@pytest.fixture(scope="module")
def zoo50(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "condensenet50_cifar.onnx"
    export_source("condensenet50_cifar", path, optimize="none")
    return path


def test_zoo_name_has_no_sha_and_same_weights_every_time(zoo50: Path) -> None:
    meta = read_metadata(zoo50)
    assert META + "source_sha256" not in meta
    assert meta[META + "weights"].startswith("random")
    assert meta[META + "architecture"] == "condensenet50_cifar"
    verify_source(zoo50, "condensenet50_cifar")  # a second load builds the same weights


# ----------------------------------------------------------------------------------- torch-free run


def test_written_file_runs_with_torch_unimportable(plain_export) -> None:
    path, model = plain_export
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
        "import numpy as np\n"
        "from condense_deploy.runtime.sessions import create_session\n"
        "from condense_deploy.graph.onnx_info import describe_onnx\n"
        f"s = create_session({str(path)!r}, threads=None, log_severity=None)\n"
        "x = np.random.default_rng(5).standard_normal((3, 3, 32, 32), dtype=np.float32)\n"
        "np.save(sys.argv[1], s.run(['logits'], {'input': x})[0])\n"
        f"assert describe_onnx({str(path)!r})['inputs'][0]['name'] == 'input'\n"
        "try:\n    import torch\nexcept ImportError:\n    print('no torch')\n"
    )
    out_file = path.parent / "out.npy"
    done = subprocess.run([sys.executable, "-c", code, str(out_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no torch"
    assert np.abs(np.load(out_file) - torch_logits(model, 3, CIFAR)).max() < 1e-4


# ------------------------------------------------------------------------------------- error paths


class _DriftingModel(torch.nn.Module):
    """Adds a Python-side counter: the trace bakes in one value, PyTorch keeps changing it, so the
    exported file genuinely computes something else than the model."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean((2, 3)) + self.calls


def test_validation_failure_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "bad.onnx"
    with pytest.raises(CondenseDeployError, match=r"bad.onnx: differs from PyTorch: batch 1: logits max abs "
                                                  r"diff .* > atol 1e-04"):
        export_onnx(_DriftingModel(), target, input_size=(3, 8, 8), optimize="none")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_existing_file_byte_identical(tmp_path: Path) -> None:
    target = tmp_path / "keep.onnx"
    target.write_bytes(b"previous contents")
    with pytest.raises(CondenseDeployError, match="differs from PyTorch"):
        export_onnx(_DriftingModel(), target, input_size=(3, 8, 8), optimize="none", force=True)
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]


def test_existing_output_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "x.onnx"
    target.write_bytes(b"x")
    with pytest.raises(CondenseDeployError, match="already exists"):
        export_onnx(converted(2, 2), target, input_size=CIFAR)
    assert target.read_bytes() == b"x"


@pytest.mark.parametrize("where", ["missing-folder", "directory"])
def test_unwritable_output(tmp_path: Path, where: str) -> None:
    target = tmp_path / "nope" / "x.onnx" if where == "missing-folder" else tmp_path
    with pytest.raises(CondenseDeployError, match="does not exist|is a directory"):
        export_source("condensenet50_cifar", target, force=where == "directory")


def test_unknown_zoo_name(tmp_path: Path) -> None:
    with pytest.raises(CondenseDeployError, match="condensenet51_cifar"):
        export_source("condensenet51_cifar", tmp_path / "x.onnx")


def test_checkpoint_that_fails_to_load(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pth.tar"
    bad.write_bytes(b"definitely not a torch file" * 10)
    with pytest.raises(CondenseDeployError, match="broken.pth.tar"):
        export_source(bad, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_not_fully_condensed_checkpoint_is_refused(tmp_path: Path) -> None:
    model = trained_model(tiny_config(4, 4), progress=0.2)
    ckpt = original_training_checkpoint(model, tmp_path / "early.pth.tar")
    with pytest.raises(CondenseDeployError, match="stage"):
        export_source(ckpt, tmp_path / "x.onnx", arch=None)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("options,message", [
    ({"opset": 7}, "opset 7"),
    ({"batch": 0}, "batch"),
    ({"batch": "many"}, "batch"),
    ({"exporter": "jit"}, "exporter"),
    ({"optimize": "max"}, "optimize"),
])
def test_bad_options(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(CondenseDeployError, match=message):
        export_onnx(converted(2, 2), tmp_path / "x.onnx", input_size=CIFAR, **options)
    assert not list(tmp_path.iterdir())


def test_validate_rejects_a_file_for_another_input_size(plain_export) -> None:
    path, model = plain_export
    with pytest.raises(CondenseDeployError, match="input axis 2 is 32"):
        validate_onnx(path, model, (3, 64, 64))


def test_verify_names_the_architecture_the_file_came_from(zoo50: Path) -> None:
    with pytest.raises(CondenseDeployError,
                       match="exported from condensenet50_cifar, not condensenet74_cifar"):
        verify_source(zoo50, "condensenet74_cifar")


def test_loaded_model_state_is_untouched(tmp_path: Path) -> None:
    model = converted(4, 4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx", input_size=CIFAR, optimize="none")
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_load_model_then_export_api(tmp_path: Path) -> None:
    """The Python API under the CLI, as the docs show it."""
    model = trained_model(tiny_config(2, 2))
    ckpt = original_training_checkpoint(model, tmp_path / "ckpt.pth.tar")
    loaded = load_model(ckpt)
    deployed = convert_model(loaded.model)
    result = export_onnx(deployed, tmp_path / "api.onnx", input_size=loaded.input_size,
                         metadata={"note": {"k": 1}})
    assert read_metadata(result.path)["note"] == '{"k": 1}'


def test_top_level_api_names() -> None:
    import condense_deploy

    assert condense_deploy.export_onnx is export_onnx
    assert condense_deploy.validate_onnx is validate_onnx
