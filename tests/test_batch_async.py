"""guard.abatch, adefer, aflush_deferred and aresolve: the batch APIs with async clients, through
the real async SDKs on the fake provider."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from anthropic.types import Message
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import costguard
from _helpers import GPT, HAIKU, SONNET, Clock, Crash, ask, assert_rows_at_batch_rates, chat
from costguard import Budget, BudgetExceededError, ConfigurationError
from costguard.batch import (
    BatchHandle,
    BatchItemError,
    BatchNotReadyError,
    BatchOptions,
    BatchProgress,
)
from costguard.batch._store import BatchStore
from costguard.pricing import PriceTable, compute_cost
from costguard.testing import FakeProvider

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def test_an_async_openai_batch_returns_the_sdk_objects_in_order_with_rows_at_batch_rates(
    cached_guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions, clock: Clock
) -> None:
    """Chat, Responses and embeddings answers come back in order; each is a batch-rate row."""
    guard = cached_guard
    client = guard.wrap(fake.async_openai())
    requests = [
        chat("one"),
        {"operation": "responses", "model": GPT, "input": "two"},
        {"operation": "embeddings", "model": "text-embedding-3-small", "input": ["a", "b"]},
        chat("three"),
    ]
    with guard.scope(feature="nightly", user="u1"):
        answers = run(lambda: guard.abatch(client, requests, options=options))
    first, second, third, fourth = answers
    assert isinstance(first, ChatCompletion) and "one" in (first.choices[0].message.content or "")
    assert isinstance(second, Response) and second.output_text
    assert isinstance(third, CreateEmbeddingResponse) and len(third.data) == 2
    assert isinstance(fourth, ChatCompletion)
    assert "three" in (fourth.choices[0].message.content or "")
    assert clock.waits == [options.poll_interval_s]  # the fake's batches end at the second poll
    rows = guard.ledger.records()
    assert len(rows) == 4 and {r.batch_id for r in rows} == set(fake.batches.ids)
    prices = PriceTable.default()
    for row in rows:
        assert (row.status, row.service_tier, row.feature, row.user) == (
            "ok",
            "batch",
            "nightly",
            "u1",
        )
        price = prices.require(row.requested_model or "")
        assert row.cost_usd == compute_cost(price, row.usage, batch=True).usd
    live = run(lambda: client.chat.completions.create(**chat("one")))
    assert live == first  # the batch filled the exact cache for live async calls too


def test_an_async_anthropic_batch_returns_messages_in_order_priced_at_batch_rates(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Message Batches through AsyncAnthropic: Messages in order, one batch-rate row each."""
    fake.reply("first", provider="anthropic")
    fake.reply("second", provider="anthropic")
    client = fake.async_anthropic()
    first, second = run(
        lambda: guard.abatch(client, [ask("a"), ask("b", model=SONNET)], options=options)
    )
    assert isinstance(first, Message) and isinstance(second, Message)
    assert [first.content[0].text, second.content[0].text] == ["first", "second"]  # type: ignore[union-attr]
    assert len(fake.batches.ids) == 1
    assert sorted(r.requested_model or "" for r in guard.ledger.records()) == [HAIKU, SONNET]
    assert_rows_at_batch_rates(guard, fake.batches.ids[0])


def test_without_wait_abatch_returns_a_handle_that_aresolve_collects(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """wait=False returns a handle; aresolve(wait=False) is None until the batch ends."""
    client = fake.async_openai()

    async def main() -> tuple[Any, ...]:
        handle = await guard.abatch(client, [chat("a"), chat("b")], wait=False, options=options)
        assert isinstance(handle, BatchHandle) and handle.batch_ids == tuple(fake.batches.ids)
        not_yet = await guard.aresolve(handle, client, wait=False, options=options)
        answers = await guard.aresolve(handle, client, wait=False, options=options)
        single = await guard.aresolve(handle.items[1], client, options=options)
        return not_yet, answers, single

    not_yet, answers, single = run(main)
    assert not_yet is None
    assert [type(a) for a in answers] == [ChatCompletion, ChatCompletion]
    assert single == answers[1]
    assert len(guard.ledger.records()) == 2


def test_adefer_then_aflush_deferred_then_aresolve_gives_the_sdk_object(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """adefer queues without sending, aflush_deferred submits and collects, aresolve answers."""
    client = fake.async_anthropic()

    async def main() -> tuple[list[Any], Any, Any]:
        with guard.scope(feature="digest"):
            handles = [await guard.adefer(client, ask(t)) for t in ("a", "b")]
        assert fake.requests == []
        sent = await guard.aflush_deferred(client, options=options)
        done = await guard.aflush_deferred(client, wait=True, options=options)
        return [await guard.aresolve(h, client, wait=False) for h in handles], sent, done

    answers, sent, done = run(main)
    assert (sent.submitted, sent.batch_ids, sent.open) == (2, fake.batches.ids, fake.batches.ids)
    assert (done.submitted, done.finished, done.open) == (0, 2, [])
    assert all(isinstance(a, Message) for a in answers)
    rows = guard.ledger.records()
    assert [(r.feature, r.service_tier) for r in rows] == [("digest", "batch")] * 2


def test_a_request_the_api_answered_with_an_error_is_an_error_in_its_slot(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """A per-request failure is a BatchItemError in that slot and an unbilled error row."""
    fake.fail(400, message="bad image", endpoint="chat.completions")
    failed, ok = run(
        lambda: guard.abatch(fake.async_openai(), [chat("a"), chat("b")], options=options)
    )
    assert isinstance(failed, BatchItemError)
    assert (failed.kind, failed.status_code, failed.message, failed.index) == (
        "error",
        400,
        "bad image",
        0,
    )
    assert isinstance(ok, ChatCompletion)
    error_row = next(r for r in guard.ledger.records() if r.status == "error")
    assert (error_row.error_type, error_row.cost_usd) == ("BatchItemError", Decimal(0))


def test_a_failed_deferred_request_raises_its_error_from_aresolve(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """aresolve of one handle whose request failed raises its BatchItemError."""
    fake.fail(400, message="nope", endpoint="chat.completions")
    client = fake.async_openai()

    async def main() -> str:
        handle = await guard.adefer(client, chat("x"))
        with pytest.raises(BatchItemError, match="nope") as raised:
            await guard.aresolve(handle, client, options=options)
        assert raised.value.handle == handle
        return handle

    run(main)


def test_an_async_batch_over_budget_is_refused_before_anything_is_sent(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """BudgetExceededError at batch rates: no request sent, no hold and no queue entry left."""
    messages = [{"role": "user", "content": "Summarise the quarterly report."}]
    standard = costguard.estimate_cost(GPT, messages, max_tokens=1000)
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, budgets=[Budget(standard * 2, period="day")]
    )
    request = {"model": GPT, "messages": messages, "max_tokens": 1000}
    client = fake.async_openai()
    with pytest.raises(BudgetExceededError) as raised:
        run(lambda: guard.abatch(client, [request] * 5, options=options))
    assert raised.value.worst_case == standard / 2
    assert fake.requests == []
    assert sum((s.reserved for s in guard.budget_status()), Decimal(0)) == 0
    assert BatchStore.for_guard(guard).counts() == []
    run(lambda: guard.abatch(client, [request] * 4, options=options))  # four fit at batch rates
    assert len(guard.ledger.records()) == 4
    guard.close()


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_sync_names_refuse_an_async_client_and_point_at_the_a_names(
    guard: costguard.CostGuardClient, fake: FakeProvider, wrapped: bool
) -> None:
    """guard.batch, defer, flush_deferred and resolve given an async client name their twin."""
    client = fake.async_openai()
    client = guard.wrap(client) if wrapped else client
    calls: list[tuple[str, Callable[[], object]]] = [
        ("abatch", lambda: guard.batch(client, [chat("a")])),
        ("abatch", lambda: guard.batch(client, [])),
        ("adefer", lambda: guard.defer(client, chat("a"))),
        ("aflush_deferred", lambda: guard.flush_deferred(client)),
        ("aresolve", lambda: guard.resolve("01NOPE", client)),
    ]
    for twin, call in calls:
        with pytest.raises(ConfigurationError, match=f"sync client.*await guard.{twin}"):
            call()
    assert fake.requests == []


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_a_names_refuse_a_sync_client_and_point_at_the_sync_names(
    guard: costguard.CostGuardClient, fake: FakeProvider, wrapped: bool
) -> None:
    """guard.abatch, adefer, aflush_deferred and aresolve given a sync client name their twin."""
    client = fake.anthropic()
    client = guard.wrap(client) if wrapped else client
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("batch", lambda: guard.abatch(client, [ask("a")])),
        ("defer", lambda: guard.adefer(client, ask("a"))),
        ("flush_deferred", lambda: guard.aflush_deferred(client)),
        ("resolve", lambda: guard.aresolve("01NOPE", client)),
    ]
    for twin, call in calls:
        with pytest.raises(ConfigurationError, match=rf"async client.*guard\.{twin}\("):
            run(call)
    with pytest.raises(ConfigurationError, match="cannot wrap"):
        run(lambda: guard.abatch(object(), [ask("a")]))
    assert fake.requests == []


def test_a_request_deferred_with_a_sync_client_resolves_with_an_async_one(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """The queue is shared: same provider, base URL and key, whichever kind of client."""
    handle = guard.defer(fake.openai(), chat("later"))
    answer = run(lambda: guard.aresolve(handle, fake.async_openai(), options=options))
    assert isinstance(answer, ChatCompletion)
    assert guard.resolve(handle, fake.openai(), wait=False) == answer


def test_polling_backs_off_with_the_injected_async_sleep_and_gives_up_at_the_timeout(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """Waits go through options.asleep, grow by the backoff, and end in BatchNotReadyError."""
    fake.batches.polls = 10
    options = BatchOptions(
        asleep=clock.asleep,
        clock=clock,
        poll_interval_s=10,
        backoff=2,
        max_poll_interval_s=50,
        timeout_s=200,
    )
    client = fake.async_openai()
    with pytest.raises(BatchNotReadyError) as raised:
        run(lambda: guard.abatch(client, [chat("slow")], options=options))
    assert clock.waits == [10, 20, 40, 50, 50]
    [answer] = run(lambda: guard.aresolve(raised.value.handle, client, options=options))
    assert isinstance(answer, ChatCompletion)


def test_cancelling_abatch_while_it_waits_leaves_the_batch_to_resolve_later(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """A cancelled abatch raises CancelledError; its submitted batch is collected afterwards."""
    fake.batches.polls = 5
    started = asyncio.Event()

    async def forever(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()  # never set: only a cancellation ends this wait

    options = BatchOptions(asleep=forever, clock=clock)
    client = fake.async_openai()

    async def main() -> None:
        task = asyncio.create_task(guard.abatch(client, [chat("a")], options=options))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    [item] = BatchStore.for_guard(guard).items("1 = 1")
    assert (item.state, item.batch_id) == ("submitted", fake.batches.ids[0])
    later = BatchOptions(asleep=clock.asleep, clock=clock)
    [answer] = run(lambda: guard.aresolve(item.run_id or "", client, options=later))
    assert isinstance(answer, ChatCompletion)
    assert len(guard.ledger.records()) == 1


def test_a_cancellation_during_database_work_waits_for_it_then_stops_before_sending(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    options: BatchOptions,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled mid-write, abatch lets the write finish, sends nothing, and recovery resumes."""
    entered, release = threading.Event(), threading.Event()
    real_insert = BatchStore.insert

    def slow_insert(conn: Any, rows: Any) -> None:
        entered.set()
        assert release.wait(10)
        real_insert(conn, rows)

    monkeypatch.setattr(BatchStore, "insert", staticmethod(slow_insert))
    client = fake.async_openai()

    async def main() -> None:
        task = asyncio.create_task(guard.abatch(client, [chat("a")], options=options))
        assert await asyncio.to_thread(entered.wait, 10)
        task.cancel()
        for _ in range(3):
            await asyncio.sleep(0)  # the cancellation is delivered ...
        assert not task.done()  # ... but the task waits for the write in progress
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    monkeypatch.setattr(BatchStore, "insert", staticmethod(real_insert))
    assert fake.requests == []
    [item] = BatchStore.for_guard(guard).items("1 = 1")
    assert item.state == "submitting"  # claimed: after lease_s any flush or resolve takes it back
    clock.now += options.lease_s
    [answer] = run(lambda: guard.aresolve(item.run_id or "", client, options=options))
    assert isinstance(answer, ChatCompletion)


def test_callbacks_run_on_the_loop_and_the_database_work_in_worker_threads(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    options: BatchOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """on_progress runs on the event loop's thread; batch-table writes never do."""
    loop_thread: list[int] = []
    progress_threads: list[int] = []
    write_threads: list[int] = []
    real_insert = BatchStore.insert

    def insert(conn: Any, rows: Any) -> None:
        write_threads.append(threading.get_ident())
        real_insert(conn, rows)

    monkeypatch.setattr(BatchStore, "insert", staticmethod(insert))
    opts = BatchOptions(
        asleep=options.asleep,
        clock=options.clock,
        on_progress=lambda progress: progress_threads.append(threading.get_ident()),
    )

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        await guard.abatch(fake.async_openai(), [chat("a")], options=opts)

    run(main)
    assert progress_threads and set(progress_threads) == set(loop_thread)
    assert write_threads and not set(write_threads) & set(loop_thread)


def test_an_async_progress_callback_is_awaited(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """An on_progress coroutine function is awaited: here it cancels the running batch."""
    client = fake.async_openai()
    seen: list[BatchProgress] = []

    async def cancel(progress: BatchProgress) -> None:
        seen.append(progress)
        if not progress.ended:
            await client.batches.cancel(progress.batch_id)

    options = BatchOptions(asleep=clock.asleep, clock=clock, on_progress=cancel)
    done, cancelled = run(lambda: guard.abatch(client, [chat("a"), chat("b")], options=options))
    assert isinstance(done, ChatCompletion)
    assert isinstance(cancelled, BatchItemError) and cancelled.kind == "cancelled"
    assert [p.ended for p in seen] == [False, True]


def test_the_sync_apis_refuse_an_async_callback(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """A coroutine function as on_progress of guard.batch is refused, pointing at the a-names."""

    async def show(progress: BatchProgress) -> None:
        return None

    options = BatchOptions(sleep=clock.sleep, clock=clock, on_progress=show)
    with pytest.raises(ConfigurationError, match=r"guard\.abatch"):
        guard.batch(fake.openai(), [chat("a")], options=options)


def test_an_openai_batch_created_before_a_crash_in_an_async_flush_is_adopted(
    tmp_path: Path, fake: FakeProvider, clock: Clock, options: BatchOptions
) -> None:
    """Died after the provider accepted the batch: a later async flush finds it by metadata."""

    def crash(step: str, ident: str) -> None:
        if step == "created":
            raise Crash(ident)

    path = tmp_path / "l.db"
    dying = costguard.CostGuardClient(ledger=path, cache=None)
    client = fake.async_openai()

    async def queue_and_die() -> None:
        for text in ("a", "b"):
            await dying.adefer(client, chat(text))
        crashing = BatchOptions(asleep=clock.asleep, clock=clock, on_step=crash)
        await dying.aflush_deferred(client, options=crashing)

    with pytest.raises(Crash):
        run(queue_and_die)
    clock.now += options.lease_s
    survivor = costguard.CostGuardClient(ledger=path, cache=None)
    report = run(lambda: survivor.aflush_deferred(client, wait=True, options=options))
    assert (report.recovered, report.submitted, report.finished) == (2, 0, 2)
    assert len(fake.batches.ids) == 1
    assert len(survivor.ledger.records()) == 2
    dying.close()
    survivor.close()


def test_an_empty_async_batch_sends_nothing(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """No requests: an empty list, or an empty handle that resolves to one."""
    client = fake.async_openai()
    assert run(lambda: guard.abatch(client, [], options=options)) == []
    handle = run(lambda: guard.abatch(client, [], wait=False, options=options))
    assert isinstance(handle, BatchHandle)
    assert run(lambda: guard.aresolve(handle, client, options=options)) == []
    assert fake.requests == []
