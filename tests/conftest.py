"""Shared fixtures: small models and a CLI runner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session", autouse=True)
def _torch_on_one_thread():
    """Tests use tiny models: on the shared 2-core machine one torch thread is faster than two, and
    results are reproducible. torch is imported lazily, so torch-free checks stay meaningful."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
