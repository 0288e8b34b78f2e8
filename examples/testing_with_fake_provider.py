"""Testing your own code with costguard's FakeProvider: no network, no spend, no sleeping.

FakeProvider hands out the real SDK clients on an in-memory transport. Script answers with
``reply()`` and failures with ``fail()``; inspect what was sent with ``requests``.

    python -m pytest -q examples/testing_with_fake_provider.py
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

import costguard
from costguard.testing import FakeProvider

# -- the application code under test -------------------------------------------------------


def label_ticket(client: openai.OpenAI, ticket: str) -> str:
    """Ask a model for one label; fall back to "other" when rate-limited."""
    try:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Answer with one word: billing, bug or other."},
                {"role": "user", "content": ticket},
            ],
            max_completion_tokens=5,
        )
    except openai.RateLimitError:
        return "other"
    return (reply.choices[0].message.content or "other").strip().lower()


# -- tests ---------------------------------------------------------------------------------


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    """A guard whose ledger lives in the test's temporary directory."""
    g = costguard.CostGuardClient(
        ledger=tmp_path / "ledger.db", cache=costguard.ExactCache(tmp_path / "cache")
    )
    yield g
    g.close()


def test_scripted_reply_is_returned_and_priced(guard: costguard.CostGuardClient) -> None:
    """A scripted reply reaches the app, and the ledger prices the call."""
    fake = FakeProvider()
    fake.reply("Billing")
    client = guard.wrap(fake.openai())

    with guard.scope(feature="triage"):
        assert label_ticket(client, "I was charged twice.") == "billing"

    [request] = fake.requests
    assert request.endpoint == "chat.completions"
    assert request.json["model"] == "gpt-4o-mini"
    assert request.json["max_completion_tokens"] == 5
    [record] = guard.ledger.records()
    assert record.feature == "triage"
    assert record.cost_usd is not None and record.cost_usd > 0
    assert fake.pending == 0


def test_rate_limit_falls_back(guard: costguard.CostGuardClient) -> None:
    """A scripted 429 reaches the app as the SDK's own RateLimitError and is recorded."""
    fake = FakeProvider()
    fake.fail(429, retry_after=2)
    client = guard.wrap(fake.openai())

    assert label_ticket(client, "The export button is broken.") == "other"

    [record] = guard.ledger.records()
    assert (record.status, record.error_type, record.cost_usd) == ("error", "RateLimitError", 0)


def test_retry_after_header_is_sent() -> None:
    """The scripted failure carries retry-after headers, and the SDK exception is unchanged."""
    fake = FakeProvider()
    fake.fail(429, retry_after=1.5, provider="anthropic")
    guard = costguard.CostGuardClient(ledger=":memory:", cache=None)
    claude = guard.wrap(fake.anthropic())

    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "2"  # whole seconds, rounded up
    assert caught.value.response.headers["retry-after-ms"] == "1500"


def test_sdk_retries_do_not_sleep() -> None:
    """With max_retries, the SDK retries each scripted failure at once."""
    fake = FakeProvider()
    fake.fail(429, retry_after=30, times=2)
    fake.reply("bug")
    client = fake.openai(max_retries=2)

    assert label_ticket(client, "Crash on save.") == "bug"
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]


def test_exact_cost_from_scripted_usage(guard: costguard.CostGuardClient) -> None:
    """Scripted usage gives a cost you can check to the picodollar."""
    fake = FakeProvider()
    fake.reply("ok", usage=costguard.Usage(input_tokens=1_000, output_tokens=200))
    client = guard.wrap(fake.openai())

    label_ticket(client, "anything")

    # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens
    [record] = guard.ledger.records()
    assert record.cost_usd == Decimal("0.00015") + Decimal("0.00012")


def test_with_the_plugin_fixture(fake_provider: FakeProvider) -> None:
    """costguard's pytest plugin provides a fresh FakeProvider as ``fake_provider``."""
    fake_provider.reply("other")
    assert label_ticket(fake_provider.openai(), "Hello?") == "other"
