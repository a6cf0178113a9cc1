"""runtime/sessions.py and runtime/timing.py: the one session factory and the one timer."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import pytest
from _onnx_models import conv_net

from condense_deploy.errors import CondenseDeployError
from condense_deploy.runtime import sessions as S
from condense_deploy.runtime.timing import interleaved, time_models


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return conv_net(tmp_path / "m.onnx")


def test_path_bytes_and_proto_give_the_same_outputs(model_path: Path) -> None:
    proto = onnx.load(str(model_path))
    outs = []
    for source in (model_path, str(model_path), model_path.read_bytes(), proto):
        session = S.create_session(source, threads=1)
        outs.append(session.run(None, S.random_feeds(session, seed=3, batch=2))[0])
    for out in outs[1:]:
        np.testing.assert_array_equal(outs[0], out)


def test_options_as_asked() -> None:
    options = S.session_options(3, graph_opt_level="basic", profile_prefix="/tmp/p")
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.enable_profiling
    with pytest.raises(CondenseDeployError, match="graph optimization level"):
        S.session_options(1, graph_opt_level="max")


def test_a_broken_model_raises_our_error_in_the_callers_words(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CondenseDeployError, match=r"^bad\.onnx: cannot \("):
        S.create_session(bad, load_error="bad.onnx: cannot ({reason})")


def test_custom_op_libraries_registered_for_imported_domains(model_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    proto = onnx.load(str(model_path))
    registry = {"ai.condense_deploy": "/nowhere/libops.so"}
    assert S.libraries_for(proto, registry) == []
    proto.opset_import.add(domain="ai.condense_deploy", version=1)
    for source in (proto, proto.SerializeToString()):
        assert S.libraries_for(source, registry) == ["/nowhere/libops.so"]
    registered: list[str] = []

    class Options:
        def register_custom_ops_library(self, path: str) -> None:
            registered.append(path)

    monkeypatch.setitem(S.CUSTOM_OP_LIBRARIES, "ai.condense_deploy", "/nowhere/libops.so")
    def no_session() -> None:
        raise RuntimeError("stop before onnxruntime")

    monkeypatch.setattr(S, "_ort", no_session)
    with pytest.raises(RuntimeError, match="stop before"):
        S.create_session(proto, options=Options(), custom_op_libraries=["/extra.so"])
    assert registered == ["/extra.so", "/nowhere/libops.so"]


def test_timer_interleaves_and_pauses_gc() -> None:
    order: list[str] = []
    enabled: list[bool] = []

    def call(name: str) -> None:
        order.append(name)
        enabled.append(gc.isenabled())

    samples = interleaved([lambda: call("a"), lambda: call("b")], rounds=3, inner=2)
    assert order == ["a", "a", "b", "b"] * 3
    assert not any(enabled) and gc.isenabled()
    assert [len(s) for s in samples] == [3, 3]
    assert len(interleaved([lambda: None], budget_s=0.01)[0]) >= 1


def test_time_models(model_path: Path) -> None:
    times = time_models([model_path, model_path.read_bytes()], threads=1, rounds=2, inner=1, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)
