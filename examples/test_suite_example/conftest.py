"""Fixtures for the example suite. ``fake_provider`` needs none: costguard's pytest plugin
provides it (a fresh ``costguard.testing.FakeProvider`` per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import costguard


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    """A guard whose ledger and cache live in the test's own temporary directory."""
    g = costguard.CostGuardClient(
        ledger=tmp_path / "ledger.db", cache=costguard.ExactCache(tmp_path / "cache")
    )
    yield g
    g.close()
