"""guard.batch through Anthropic Message Batches, on the fake provider, through the real SDK."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from anthropic.types import Message

import costguard
from _helpers import HAIKU, SONNET, Clock, ask, assert_rows_at_batch_rates
from costguard import InvalidRequestError
from costguard.batch import BatchItemError, BatchLimits, BatchOptions
from costguard.testing import FakeProvider


@pytest.fixture
def guard(cached_guard: costguard.CostGuardClient) -> costguard.CostGuardClient:
    """Batches here run with the exact cache on."""
    return cached_guard


def created(fake: FakeProvider) -> list[dict[str, Any]]:
    return [
        r.json for r in fake.requests if r.endpoint == "messages.batches" and r.method == "POST"
    ]


def test_answers_are_messages_in_the_order_of_the_requests(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Each request's Message comes back in its slot, rebuilt as the SDK's own type."""
    fake.reply("one", provider="anthropic")
    fake.reply("two", provider="anthropic")
    first, second = guard.batch(guard.wrap(fake.anthropic()), [ask("a"), ask("b")], options=options)
    assert isinstance(first, Message) and isinstance(second, Message)
    assert [first.content[0].text, second.content[0].text] == ["one", "two"]  # type: ignore[union-attr]
    [body] = created(fake)
    assert [r["params"]["messages"][0]["content"] for r in body["requests"]] == ["a", "b"]


def test_models_may_mix_in_one_message_batch(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Anthropic batches take mixed models: one batch, each row priced at its model's batch rate."""
    guard.batch(fake.anthropic(), [ask("a"), ask("b", model=SONNET)], options=options)
    assert len(fake.batches.ids) == 1
    assert sorted(r.requested_model or "" for r in guard.ledger.records()) == [HAIKU, SONNET]
    assert_rows_at_batch_rates(guard, fake.batches.ids[0])


def test_errored_requests_are_errors_in_their_slots(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """An errored result is a BatchItemError carrying the API's error type and message."""
    fake.fail(529, provider="anthropic")
    failed, ok = guard.batch(fake.anthropic(), [ask("a"), ask("b")], options=options)
    assert isinstance(failed, BatchItemError)
    assert (failed.kind, failed.code, failed.message) == ("error", "overloaded_error", "Overloaded")
    assert isinstance(ok, Message)
    assert [r.cost_usd == 0 for r in guard.ledger.records() if r.status == "error"] == [True]


def test_expired_and_cancelled_message_batches_leave_errors_of_that_kind(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Expired results are "expired" errors; cancelled ones are "cancelled"."""
    fake.batches.script("expired", done=1)
    done, expired = guard.batch(fake.anthropic(), [ask("a"), ask("b")], options=options)
    assert isinstance(done, Message)
    assert isinstance(expired, BatchItemError) and expired.kind == "expired"
    fake.batches.script("cancelled")
    [cancelled] = guard.batch(fake.anthropic(), [ask("c")], options=options)
    assert isinstance(cancelled, BatchItemError) and cancelled.kind == "cancelled"


def test_a_message_batch_is_split_at_the_request_limit(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """max_requests cuts a large input into several message batches; order is kept."""
    options = BatchOptions(
        sleep=clock.sleep, clock=clock, limits=BatchLimits(max_requests=2, max_bytes=10**6)
    )
    answers = guard.batch(fake.anthropic(), [ask(f"q{n}") for n in range(5)], options=options)
    assert len(fake.batches.ids) == 3
    assert [len(body["requests"]) for body in created(fake)] == [2, 2, 1]
    assert all(isinstance(a, Message) for a in answers)
    quoted = [a.content[0].text.split('"')[1] for a in answers]  # the fake quotes the question
    assert quoted == [f"q{n}" for n in range(5)]


def test_cache_hits_and_fills_work_for_messages(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A batched answer serves the same live messages.create from the cache, and the reverse."""
    claude = guard.wrap(fake.anthropic())
    [batched] = guard.batch(claude, [ask("same")], options=options)
    assert claude.messages.create(**ask("same")) == batched
    live = claude.messages.create(**ask("live first"))
    [hit] = guard.batch(claude, [ask("live first")], options=options)
    assert hit == live
    assert len(fake.batches.ids) == 1
    assert [r.cache for r in guard.ledger.records()] == ["miss", "exact", "miss", "exact"]
    assert guard.ledger.records()[-1].saved_usd > Decimal(0)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (ask("x", stream=True), "requests[0].stream"),
        ({"model": HAIKU, "messages": [{"role": "user", "content": "x"}]}, "requests[0]"),
        ({"operation": "responses", **ask("x")}, "requests[0].operation"),
        (ask("x", model="gpt-4o-mini"), "requests[0].model"),
        (ask("x", max_tokens=0), "requests[0].max_tokens"),
    ],
)
def test_a_request_message_batches_would_refuse_is_refused_before_sending(
    guard: costguard.CostGuardClient, fake: FakeProvider, bad: dict[str, Any], field: str
) -> None:
    """stream, a missing max_tokens, an OpenAI operation or model: refused naming the index."""
    with pytest.raises(InvalidRequestError) as raised:
        guard.batch(fake.anthropic(), [bad])
    assert raised.value.field == field
    assert fake.requests == []


def test_the_create_request_carries_custom_ids_and_params(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Each entry is {custom_id, params}: the handle, and the create() arguments as given."""
    [answer] = guard.batch(fake.anthropic(), [ask("x", system="Be brief.")], options=options)
    [body] = created(fake)
    [entry] = body["requests"]
    assert set(entry) == {"custom_id", "params"}
    assert entry["params"] == ask("x", system="Be brief.")
    assert len(entry["custom_id"]) == 26
    assert answer.usage.service_tier == "batch"
