"""guard.batch through the OpenAI Batch API, on the fake provider, through the real SDK."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import costguard
from _helpers import GPT, Clock, chat, connection_error, refuse_batches
from costguard import ConfigurationError, InvalidRequestError
from costguard.batch import (
    BatchHandle,
    BatchItemError,
    BatchLimits,
    BatchNotReadyError,
    BatchOptions,
    BatchProgress,
)
from costguard.pricing import PriceTable, compute_cost
from costguard.testing import FakeProvider


@pytest.fixture
def guard(cached_guard: costguard.CostGuardClient) -> costguard.CostGuardClient:
    """Batches here run with the exact cache on."""
    return cached_guard


def created_batches(fake: FakeProvider) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.endpoint == "batches" and r.method == "POST"]


def test_answers_are_the_sdks_objects_in_the_order_of_the_requests(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Chat, Responses and embeddings requests come back as their SDK types, in order."""
    fake.reply("first", endpoint="chat.completions")
    fake.reply("second", endpoint="chat.completions")
    requests = [
        chat("one"),
        {"operation": "responses", "model": GPT, "input": "two"},
        {"operation": "embeddings", "model": "text-embedding-3-small", "input": ["a", "b"]},
        chat("three"),
    ]
    first, second, third, fourth = guard.batch(guard.wrap(fake.openai()), requests, options=options)
    assert isinstance(first, ChatCompletion) and first.choices[0].message.content == "first"
    assert isinstance(second, Response) and second.output_text
    assert isinstance(third, CreateEmbeddingResponse) and len(third.data) == 2
    assert isinstance(fourth, ChatCompletion) and fourth.choices[0].message.content == "second"
    endpoints = sorted(body["endpoint"] for body in created_batches(fake))
    assert endpoints == ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]


def test_each_request_is_one_ledger_row_at_batch_rates_linked_to_its_batch(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Rows cost the batch rates exactly, carry the batch id, tier "batch" and the scope."""
    with guard.scope(feature="nightly", user="u1", tenant="acme", tags={"job": "7"}):
        answers = guard.batch(fake.openai(), [chat("a"), chat("b")], options=options)
    rows = guard.ledger.records()
    assert len(rows) == 2
    price = PriceTable.default().require(GPT)
    [batch_id] = {r.batch_id for r in rows}
    assert batch_id == fake.batches.ids[0]
    for row in rows:
        assert (row.operation, row.status, row.service_tier, row.cache) == (
            "chat.completions.create",
            "ok",
            "batch",
            "miss",
        )
        assert (row.feature, row.user, row.tenant, dict(row.tags)) == (
            "nightly",
            "u1",
            "acme",
            {"job": "7"},
        )
        assert row.cost_usd == compute_cost(price, row.usage, batch=True).usd
        assert row.cost_usd == compute_cost(price, row.usage).usd / 2
        assert row.rates is not None and row.rates["input"] == "0.075"
    assert sorted(r.usage.output_tokens for r in rows) == sorted(
        a.usage.completion_tokens for a in answers
    )


def test_a_request_the_api_answered_with_an_error_is_an_error_in_its_slot(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A per-request failure becomes a BatchItemError in that slot and an unbilled error row."""
    fake.fail(400, message="bad image", endpoint="chat.completions")
    failed, ok = guard.batch(fake.openai(), [chat("a"), chat("b")], options=options)
    assert isinstance(failed, BatchItemError)
    assert (failed.kind, failed.status_code, failed.message, failed.index) == (
        "error",
        400,
        "bad image",
        0,
    )
    assert failed.batch_id == fake.batches.ids[0]
    assert isinstance(ok, ChatCompletion)
    error_row = next(r for r in guard.ledger.records() if r.status == "error")
    assert (error_row.error_type, error_row.cost_usd) == ("BatchItemError", Decimal(0))


def test_cache_hits_are_not_sent_and_are_recorded_as_savings(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A request the exact cache holds is answered from it: no batch, a $0 row with savings."""
    client = guard.wrap(fake.openai())
    live = client.chat.completions.create(**chat("cached"))
    [hit] = guard.batch(client, [chat("cached")], options=options)
    assert hit == live
    assert fake.batches.ids == []
    row = guard.ledger.records()[-1]
    price = PriceTable.default().require(GPT)
    assert (row.cache, row.cost_usd, row.batch_id) == ("exact", Decimal(0), None)
    assert (
        row.saved_usd
        == compute_cost(
            price,
            costguard.Usage(
                input_tokens=live.usage.prompt_tokens, output_tokens=live.usage.completion_tokens
            ),
            batch=True,
        ).usd
    )


def test_batch_answers_fill_the_cache_under_the_key_a_live_call_uses(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """After a batch, the same request made live is an exact-cache hit, in the same tenant only."""
    client = guard.wrap(fake.openai())
    with guard.scope(tenant="acme"):
        [answer] = guard.batch(client, [chat("fill me")], options=options)
        sent = len(fake.requests)
        assert client.chat.completions.create(**chat("fill me")) == answer
        assert len(fake.requests) == sent
    with guard.scope(tenant="other"):
        client.chat.completions.create(**chat("fill me"))
    assert len(fake.requests) == sent + 1
    assert [r.cache for r in guard.ledger.records()] == ["miss", "exact", "miss"]


def test_a_scope_that_turns_the_cache_off_sends_every_request(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Inside scope(cache="off") a held answer is not used and the new one is not stored."""
    client = guard.wrap(fake.openai())
    client.chat.completions.create(**chat("x"))
    with guard.scope(cache="off"):
        guard.batch(client, [chat("x"), chat("y")], options=options)
    assert len(fake.batches.ids) == 1
    [sent] = created_batches(fake)
    assert sent["endpoint"] == "/v1/chat/completions"
    guard.batch(client, [chat("y")], options=options)
    assert len(fake.batches.ids) == 2


def test_requests_for_different_models_go_in_separate_openai_batches(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """One OpenAI batch per endpoint and model; the answers still come back in order."""
    answers = guard.batch(
        fake.openai(), [chat("a"), chat("b", model="gpt-4o"), chat("c")], options=options
    )
    assert [a.model for a in answers] == [GPT, "gpt-4o", GPT]
    assert len(fake.batches.ids) == 2
    for batch_id in fake.batches.ids:
        rows = [r for r in guard.ledger.records() if r.batch_id == batch_id]
        assert len({r.requested_model for r in rows}) == 1


def test_large_inputs_are_split_to_respect_the_request_and_byte_limits(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """max_requests and max_bytes cut the input into several batches, order kept."""
    requests = [chat(f"question {n}") for n in range(5)]
    by_count = BatchOptions(sleep=clock.sleep, clock=clock, limits=BatchLimits(2, 10**6))
    answers = guard.batch(fake.openai(), requests, options=by_count)
    assert len(fake.batches.ids) == 3
    assert [a.choices[0].message.content.split('"')[1] for a in answers] == [
        f"question {n}" for n in range(5)
    ]
    files = [fake.batches.file(b["input_file_id"]) for b in created_batches(fake)]
    line = max(len(f.splitlines()[0]) + 1 for f in files)
    by_bytes = BatchOptions(sleep=clock.sleep, clock=clock, limits=BatchLimits(99, 3 * line + 64))
    guard.batch(fake.openai(), [chat(f"other {n}") for n in range(5)], options=by_bytes)
    assert len(fake.batches.ids) == 5
    assert all(
        len(fake.batches.file(b["input_file_id"])) <= 3 * line for b in created_batches(fake)
    )


def test_embedding_batches_respect_the_total_input_limit(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """max_embedding_inputs counts every input of the embeddings requests in one batch."""
    limits = BatchLimits(100, 10**6, max_embedding_inputs=3)
    requests = [
        {"operation": "embeddings", "model": "text-embedding-3-small", "input": ["a", "b"]}
        for _ in range(3)
    ]
    guard.batch(
        fake.openai(), requests, options=BatchOptions(sleep=clock.sleep, clock=clock, limits=limits)
    )
    assert len(fake.batches.ids) == 3


def test_a_request_larger_than_a_whole_batch_is_refused_naming_its_index(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """A request over max_bytes on its own is an InvalidRequestError before anything is sent."""
    small = BatchOptions(limits=BatchLimits(10, 400))
    with pytest.raises(InvalidRequestError, match=r"requests\[1\]") as raised:
        guard.batch(fake.openai(), [chat("ok"), chat("x" * 500)], options=small)
    assert raised.value.field == "requests[1]"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"operation": "messages", **chat("x")}, "requests[1].operation"),
        ({"operation": "moderations", **chat("x")}, "requests[1].operation"),
        (chat("x", stream=True), "requests[1].stream"),
        ({"messages": [{"role": "user", "content": "x"}]}, "requests[1].model"),
        (chat("x", temperature=object()), "requests[1].temperature"),
        (chat("x", model="claude-haiku-4-5"), "requests[1].model"),
        (chat("x", extra_headers={"a": "b"}), "requests[1].extra_headers"),
        (chat("x", not_a_parameter=1), "requests[1]"),
        ({"model": GPT}, "requests[1]"),
        ("not a dict", "requests[1]"),
        (
            {**chat("x"), "messages": [{"role": "robot", "content": "x"}]},
            "requests[1].messages[0].role",
        ),
    ],
)
def test_a_request_the_batch_endpoint_would_refuse_is_refused_before_sending(
    guard: costguard.CostGuardClient, fake: FakeProvider, bad: Any, field: str
) -> None:
    """Wrong operation, stream, no model, non-JSON values, unknown arguments: refused by index."""
    with pytest.raises(InvalidRequestError, match=r"requests\[1\]") as raised:
        guard.batch(fake.openai(), [chat("fine"), bad])
    assert raised.value.field == field
    assert fake.requests == []
    assert guard.ledger.records() == []


def test_requests_must_be_a_list(guard: costguard.CostGuardClient, fake: FakeProvider) -> None:
    """A bare dict or string instead of a list of requests is refused."""
    with pytest.raises(InvalidRequestError, match="list"):
        guard.batch(fake.openai(), chat("x"))  # type: ignore[call-overload]


def test_polling_backs_off_and_gives_up_at_the_timeout(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """Waits grow by the backoff factor up to the cap; past timeout_s, BatchNotReadyError."""
    fake.batches.polls = 10
    options = BatchOptions(
        sleep=clock.sleep,
        clock=clock,
        poll_interval_s=10,
        backoff=2,
        max_poll_interval_s=50,
        timeout_s=200,
    )
    with pytest.raises(BatchNotReadyError) as raised:
        guard.batch(fake.openai(), [chat("slow")], options=options)
    assert clock.waits == [10, 20, 40, 50, 50]
    assert guard.ledger.records() == []
    [answer] = guard.resolve(raised.value.handle, fake.openai(), options=options)
    assert isinstance(answer, ChatCompletion)
    assert len(guard.ledger.records()) == 1


def test_progress_is_reported_after_every_poll(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """on_progress sees each poll: in progress with partial counts, then ended."""
    seen: list[BatchProgress] = []
    fake.batches.polls = 2
    options = BatchOptions(sleep=clock.sleep, clock=clock, on_progress=seen.append)
    guard.batch(fake.openai(), [chat(str(n)) for n in range(3)], options=options)
    assert [(p.status, p.done, p.total, p.ended) for p in seen] == [
        ("in_progress", 1, 3, False),
        ("in_progress", 2, 3, False),
        ("completed", 3, 3, True),
    ]


def test_without_wait_a_handle_is_returned_and_resolved_later_from_another_guard(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """wait=False returns a handle; a fresh guard on the ledger resolves it once, in order."""
    first = costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None)
    handle = first.batch(fake.openai(), [chat("a"), chat("b")], wait=False, options=options)
    assert isinstance(handle, BatchHandle)
    assert handle.batch_ids == tuple(fake.batches.ids)
    assert len(handle.items) == 2
    first.close()
    second = costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None)
    answers = second.resolve(str(handle), fake.openai(), options=options)
    again = second.resolve(handle, fake.openai(), options=options)
    assert [a.choices[0].message.content for a in answers] == [
        a.choices[0].message.content for a in again
    ]
    assert len(second.ledger.records()) == 2
    single = second.resolve(handle.items[1], fake.openai(), options=options)
    assert single == answers[1]
    second.close()


def test_resolve_without_wait_returns_none_until_the_batch_ends(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """resolve(wait=False) polls once: None while running, the answers once ended."""
    handle = guard.batch(fake.openai(), [chat("a")], wait=False, options=options)
    assert guard.resolve(handle, fake.openai(), wait=False, options=options) is None
    [answer] = guard.resolve(handle, fake.openai(), wait=False, options=options)
    assert isinstance(answer, ChatCompletion)


def test_an_unknown_handle_is_refused(guard: costguard.CostGuardClient, fake: FakeProvider) -> None:
    """Resolving a handle the ledger does not know raises InvalidRequestError."""
    with pytest.raises(InvalidRequestError, match="no batch request"):
        guard.resolve("01NOPE", fake.openai())


def test_resolving_with_a_client_of_the_other_provider_is_refused(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A handle of OpenAI requests cannot be resolved with an Anthropic client."""
    handle = guard.batch(fake.openai(), [chat("a")], wait=False, options=options)
    with pytest.raises(ConfigurationError, match="openai"):
        guard.resolve(handle, fake.anthropic(), options=options)


def test_an_expired_batch_keeps_its_done_answers_and_expires_the_rest(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A batch that ran out of time: answers for the done requests, "expired" errors after."""
    fake.batches.script("expired", done=1)
    done, expired = guard.batch(fake.openai(), [chat("a"), chat("b")], options=options)
    assert isinstance(done, ChatCompletion)
    assert isinstance(expired, BatchItemError) and expired.kind == "expired"
    assert [r.status for r in guard.ledger.records()] == ["ok", "error"]


def test_a_cancelled_batch_reports_its_undone_requests_cancelled(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """Cancelling a running batch (here from the progress callback) cancels what was not done."""
    client = fake.openai()

    def cancel(progress: BatchProgress) -> None:
        if not progress.ended:
            client.batches.cancel(progress.batch_id)

    options = BatchOptions(sleep=clock.sleep, clock=clock, on_progress=cancel)
    done, cancelled = guard.batch(client, [chat("a"), chat("b")], options=options)
    assert isinstance(done, ChatCompletion)  # half the batch had run when it was cancelled
    assert isinstance(cancelled, BatchItemError) and cancelled.kind == "cancelled"


def test_a_batch_that_fails_validation_fails_every_request(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A failed batch puts a "failed" error, with the API's reason, in every slot."""
    fake.batches.script("failed")
    answers = guard.batch(fake.openai(), [chat("a"), chat("b")], options=options)
    assert {(a.kind, "scripted" in a.message) for a in answers} == {("failed", True)}


def test_a_submission_the_provider_refuses_raises_its_error_and_fails_the_requests(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    options: BatchOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When no batch could be created the SDK's exception reaches the caller; rows say why."""
    client = fake.openai()
    refuse_batches(client, monkeypatch, connection_error())
    with pytest.raises(openai.APIConnectionError):
        guard.batch(client, [chat("a")], options=options)
    [row] = guard.ledger.records()
    assert (row.status, row.error_type) == ("error", "BatchItemError")


def test_an_async_client_is_refused(guard: costguard.CostGuardClient, fake: FakeProvider) -> None:
    """The batch APIs take sync clients; an async one is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="sync client"):
        guard.batch(fake.async_openai(), [chat("a")])
    with pytest.raises(ConfigurationError):
        guard.batch(object(), [chat("a")])


def test_an_unpriced_model_warns_and_is_recorded_unpriced(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A model without a price goes through with a warning, as a live call does; never $0."""
    with pytest.warns(costguard.CostGuardWarning, match="my-model"):
        guard.batch(fake.openai(), [chat("a", model="my-model")], options=options)
    [row] = guard.ledger.records()
    assert row.cost_usd is None


def test_the_input_file_is_the_documented_jsonl(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Each line has custom_id, method POST, the endpoint's url and the body (extra_body merged)."""
    guard.batch(fake.openai(), [chat("a", extra_body={"seed": 7})], options=options)
    [sent] = created_batches(fake)
    [line] = fake.batches.file(sent["input_file_id"]).splitlines()
    entry = json.loads(line)
    assert set(entry) == {"custom_id", "method", "url", "body"}
    assert (entry["method"], entry["url"]) == ("POST", "/v1/chat/completions")
    assert entry["body"] == {**chat("a"), "seed": 7}
    assert sent["completion_window"] == "24h"
    assert "costguard_attempt" in sent["metadata"]


def test_an_empty_batch_sends_nothing(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """No requests: an empty list (or an empty handle that resolves to one), nothing sent."""
    assert guard.batch(fake.openai(), [], options=options) == []
    handle = guard.batch(fake.openai(), [], wait=False, options=options)
    assert guard.resolve(handle, fake.openai(), options=options) == []
    assert fake.requests == []


def test_a_batch_of_more_requests_than_one_sql_statement_takes_keeps_its_order(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """1,100 requests go through one batch and come back in order, each with its row."""
    requests = [
        {
            "operation": "embeddings",
            "model": "text-embedding-3-small",
            "input": f"t{n}",
            "dimensions": 2,
        }
        for n in range(1100)
    ]
    answers = guard.batch(fake.openai(), requests, options=options)
    assert len(fake.batches.ids) == 1
    assert [a.data[0].embedding for a in answers[:3]] != [answers[0].data[0].embedding] * 3
    again = guard.batch(fake.openai(), requests[:3], options=options)
    assert [a.data for a in again] == [a.data for a in answers[:3]]
    assert len(guard.ledger.records()) == 1103


@pytest.mark.parametrize(
    ("field", "value"), [("max_items", -1), ("max_items", 1.5), ("reservation_ttl_s", 0)]
)
def test_options_refuse_values_that_would_misbehave_later(field: str, value: object) -> None:
    """A negative max_items (SQLite: no limit) or a zero reservation TTL is refused up front."""
    with pytest.raises(ConfigurationError, match=f"BatchOptions.{field}"):
        BatchOptions(**{field: value})  # type: ignore[arg-type]
