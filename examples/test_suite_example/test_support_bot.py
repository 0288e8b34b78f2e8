"""Tests for support_bot.py on the ``fake_provider`` fixture: offline, free, no sleeping.

costguard's pytest plugin provides ``fake_provider``; conftest.py adds a ``guard``. Run:

    python -m pytest -q examples/test_suite_example
"""

from __future__ import annotations

from decimal import Decimal

from support_bot import SORRY, SYSTEM, answer, answer_for

import costguard
from costguard.testing import FakeProvider


def test_returns_the_models_answer(fake_provider: FakeProvider) -> None:
    fake_provider.reply("Go to Settings, then Billing.")

    assert answer(fake_provider.openai(), "Where are my invoices?") == (
        "Go to Settings, then Billing."
    )


def test_sends_the_system_prompt_and_a_limit(fake_provider: FakeProvider) -> None:
    answer(fake_provider.openai(), "Hello?")

    [request] = fake_provider.requests
    assert request.json["messages"][0] == {"role": "system", "content": SYSTEM}
    assert request.json["max_completion_tokens"] == 120


def test_rate_limit_becomes_a_polite_message(fake_provider: FakeProvider) -> None:
    fake_provider.fail(429, retry_after=5)

    assert answer(fake_provider.openai(), "Hello?") == SORRY
    assert fake_provider.pending == 0  # the scripted failure was used


def test_spend_is_attributed_to_the_customer(
    fake_provider: FakeProvider, guard: costguard.CostGuardClient
) -> None:
    fake_provider.reply("Yes.", usage=costguard.Usage(input_tokens=1_000, output_tokens=100))
    client = guard.wrap(fake_provider.openai())

    answer_for(guard, client, "Do you ship to Norway?", customer="acme")

    [record] = guard.ledger.records()
    assert (record.feature, record.tenant) == ("support-bot", "acme")
    # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens
    assert record.cost_usd == Decimal("0.00015") + Decimal("0.00006")


def test_a_repeated_question_is_served_from_the_cache(
    fake_provider: FakeProvider, guard: costguard.CostGuardClient
) -> None:
    client = guard.wrap(fake_provider.openai())

    first = answer_for(guard, client, "Opening hours?", customer="acme")
    second = answer_for(guard, client, "Opening hours?", customer="acme")

    assert first == second
    assert len(fake_provider.requests) == 1  # the second answer never reached the provider
    assert [r.cache for r in guard.ledger.records()] == ["miss", "exact"]
