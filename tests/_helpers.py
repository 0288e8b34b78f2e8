"""Scaffolding shared by the test modules: an injectable clock, request builders, batch checks.

Fixtures live in conftest.py; this module holds what tests import by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

import costguard
from costguard.pricing import PriceTable, compute_cost

GPT = "gpt-4o-mini"
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC: the clocks' default start


class Crash(BaseException):
    """Stands for the process dying: nothing in costguard catches it."""


class Clock:
    """Seconds that move only when the test moves them or when the code under test sleeps.

    Pass the instance as a ``clock`` (it is callable), ``clock.sleep`` / ``clock.asleep`` as
    the injected sleeps; ``waits`` lists every wait asked for, and ``during_sleep``, if set, runs
    inside each sleep (to change the world while the code under test waits).
    """

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.waits: list[float] = []
        self.during_sleep: Callable[[], object] | None = None

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self.during_sleep is not None:
            self.during_sleep()

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def chat(text: str, model: str = GPT, **params: Any) -> dict[str, Any]:
    """The arguments of an OpenAI ``chat.completions.create`` asking ``text``."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **params}


def ask(text: str, model: str = HAIKU, **params: Any) -> dict[str, Any]:
    """The arguments of an Anthropic ``messages.create`` asking ``text`` (max_tokens 60)."""
    base = {"model": model, "max_tokens": 60, "messages": [{"role": "user", "content": text}]}
    return {**base, **params}


def assert_rows_at_batch_rates(guard: costguard.CostGuardClient, batch_id: str) -> None:
    """Every ledger row is priced at its own model's batch rate and linked to ``batch_id``."""
    rows = guard.ledger.records()
    assert rows
    prices = PriceTable.default()
    for row in rows:
        price = prices.require(row.requested_model or "")
        assert row.cost_usd == compute_cost(price, row.usage, batch=True).usd
        assert (row.service_tier, row.batch_id) == ("batch", batch_id)


BATCHES_REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/batches")


def connection_error() -> openai.APIConnectionError:
    """The SDK's error for a provider it could not reach."""
    return openai.APIConnectionError(request=BATCHES_REQUEST)


def status_error(error: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    """The SDK's ``error`` for an HTTP ``status`` answer to a batch creation."""
    response = httpx2.Response(status, request=BATCHES_REQUEST)
    return error("refused", response=response, body=None)


def refuse_batches(client: Any, monkeypatch: pytest.MonkeyPatch, refusal: Exception) -> None:
    """Make ``client.batches.create`` raise ``refusal`` instead of creating a batch."""

    def refuse(**kwargs: Any) -> Any:
        raise refusal

    monkeypatch.setattr(client.batches, "create", refuse)
