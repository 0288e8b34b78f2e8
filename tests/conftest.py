from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import costguard
from _helpers import Clock
from costguard.batch import BatchOptions
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


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


@pytest.fixture
def cached_guard(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    """A guard with the exact cache on (in tmp_path/cache)."""
    g = costguard.CostGuardClient(
        ledger=tmp_path / "ledger.db", cache=costguard.ExactCache(tmp_path / "cache")
    )
    yield g
    g.close()


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def options(clock: Clock) -> BatchOptions:
    """Batch options whose sleeps (sync and async) and clock are ``clock``: no real waiting."""
    return BatchOptions(sleep=clock.sleep, asleep=clock.asleep, clock=clock)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    """A ledger of three calls made through the real SDKs on the fake provider."""
    path = tmp_path / "ledger.db"
    guard = costguard.CostGuardClient(ledger=path)
    fake = FakeProvider()
    gpt, claude = guard.wrap(fake.openai()), guard.wrap(fake.anthropic())
    with guard.scope(feature="chat", user="u1"):
        gpt.chat.completions.create(model="gpt-4o-mini", messages=HI)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)
    with guard.scope(feature="search", user="u2"):
        gpt.embeddings.create(model="text-embedding-3-small", input="hi")
    guard.close()
    return path
