from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import costguard


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test writes to the real user data directory."""
    monkeypatch.setenv("COSTGUARD_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    g = costguard.CostGuardClient(ledger=tmp_path / "ledger.db", cache=None)
    yield g
    g.close()
