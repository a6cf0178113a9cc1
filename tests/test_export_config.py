"""Per-card export settings: each zoo card's ``export`` field (opset, atol) is what ``export`` and
``verify`` use for that model, as Optimum's per-model export configs; a model without a card gets
``SPEC``'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from condense_deploy.architectures import registry
from condense_deploy.errors import CondenseDeployError
from condense_deploy.export import SPEC, export_config, read_metadata
from condense_deploy.pipeline import export_source, verify_source

NAME = "condensenet50_cifar"


def _with_export(monkeypatch: pytest.MonkeyPatch, name: str, settings: Any) -> None:
    cards = json.loads(json.dumps(registry._all_cards()))
    cards[name]["export"] = settings
    monkeypatch.setattr(registry, "_all_cards", lambda: cards)


@pytest.mark.parametrize("name", registry.list_models())
def test_every_card_has_valid_export_settings(name: str) -> None:
    opset, atol = export_config(name)
    assert SPEC.min_opset <= opset <= onnx.defs.onnx_opset_version() and 0 < atol <= 1e-2


def test_a_model_without_a_card_gets_the_spec() -> None:
    assert export_config(None) == (SPEC.opset, SPEC.atol)


@pytest.mark.parametrize("settings", [None, {"opset": 17}, {"opset": "17", "atol": 1e-4},
                                      {"opset": 17, "atol": 0}])
def test_a_malformed_export_field_is_named(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    _with_export(monkeypatch, NAME, settings)
    with pytest.raises(RuntimeError, match=f"card '{NAME}': export must be"):
        export_config(NAME)


def test_export_and_verify_use_the_cards_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _with_export(monkeypatch, NAME, {"opset": 15, "atol": 1e-3})
    out = tmp_path / "m.onnx"
    result = export_source(NAME, out, optimize="none", simplify=False)
    assert (result.opset, result.atol) == (15, 1e-3)
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [15]
    assert json.loads(read_metadata(out)["condense_deploy.verification"])["atol"] == 1e-3
    assert verify_source(out, NAME).atol == 1e-3
    _with_export(monkeypatch, NAME, {"opset": 15, "atol": 1e-12})  # no float export is this exact
    with pytest.raises(CondenseDeployError, match=r"> atol 1e-12"):
        verify_source(out, NAME)


def test_an_explicit_opset_wins_over_the_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _with_export(monkeypatch, NAME, {"opset": 15, "atol": 1e-3})
    result = export_source(NAME, tmp_path / "m.onnx", opset=16, optimize="none", simplify=False)
    assert (result.opset, result.atol) == (16, 1e-3)


def test_the_cli_exports_at_the_cards_opset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from condense_deploy.cli import cli

    _with_export(monkeypatch, NAME, {"opset": 15, "atol": 1e-3})
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(cli, ["export", NAME, "-o", str(out), "--optimize", "none", "--no-simplify"])
    assert result.exit_code == 0, result.output
    assert "opset 15" in result.output and "(atol 1e-03)" in result.output
    result = CliRunner().invoke(cli, ["verify", str(out), NAME])
    assert result.exit_code == 0 and "(atol 1e-03)" in result.output, result.output
