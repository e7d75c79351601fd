from __future__ import annotations

import pytest

from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every `turnout serve` it spawns) keeps data-replica tables in a directory of its own."""
    monkeypatch.setenv("TURNOUT_STATE_DIR", str(tmp_path_factory.mktemp("state")))
