"""Streams that fail or are abandoned, and many threads sharing one guard."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costguard
from costguard import AsyncHandler, Call, Handler, Outcome
from costguard._streams import StreamOutcome
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


def test_an_error_in_the_middle_of_a_stream_reaches_the_caller_and_is_recorded(
    guard: costguard.CostGuardClient,
) -> None:
    """A mid-stream provider error is the SDK's own exception; the row says error."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    fake.fail("stream_error")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    with pytest.raises(openai.APIError):
        list(stream)
    [row] = guard.ledger.records()
    assert (row.status, row.error_type) == ("error", "APIError")


def test_an_anthropic_stream_error_is_recorded_as_error(guard: costguard.CostGuardClient) -> None:
    """Anthropic's mid-stream error event raises the SDK's error and records an error row."""
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    fake.fail("stream_error")
    with (
        pytest.raises(anthropic.APIStatusError),
        claude.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=HI) as stream,
    ):
        stream.get_final_message()
    [row] = guard.ledger.records()
    assert row.status == "error" and row.operation == "messages.stream"


def test_a_dropped_stream_is_recorded_once_as_incomplete(guard: costguard.CostGuardClient) -> None:
    """A stream abandoned half-way is recorded when it is garbage-collected, exactly once."""
    client = guard.wrap(FakeProvider().openai())
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    [row] = guard.ledger.records()
    assert row.status == "incomplete"


def test_an_async_stream_closed_early_is_incomplete(guard: costguard.CostGuardClient) -> None:
    """Closing an async stream before its end records it as incomplete."""
    client = guard.wrap(FakeProvider().async_openai())

    async def main() -> None:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        async for _ in stream:
            break
        await stream.close()

    asyncio.run(main())
    [row] = guard.ledger.records()
    assert row.status == "incomplete"


def test_threads_sharing_a_guard_record_every_call(guard: costguard.CostGuardClient) -> None:
    """Eight threads making calls through one wrapped client lose no ledger rows."""
    client = guard.wrap(FakeProvider().openai())

    def work(user: str) -> None:
        with guard.scope(user=user):
            for _ in range(25):
                client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    threads = [threading.Thread(target=work, args=(f"u{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = guard.ledger.records()
    assert len(rows) == 200
    assert {r.user for r in rows} == {f"u{i}" for i in range(8)}


def test_concurrent_async_calls_keep_their_own_scope(guard: costguard.CostGuardClient) -> None:
    """asyncio tasks running at once each carry their own scope into the ledger."""
    client = guard.wrap(FakeProvider().async_anthropic())

    async def one(user: str) -> None:
        async with guard.scope(user=user):
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HI)

    async def main() -> None:
        await asyncio.gather(*(one(f"u{i}") for i in range(20)))

    asyncio.run(main())
    assert sorted(r.user or "" for r in guard.ledger.records()) == sorted(
        f"u{i}" for i in range(20)
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]), min_size=1, max_size=6))
def test_ledger_total_is_the_exact_sum_of_its_rows(
    tmp_path_factory: pytest.TempPathFactory, models: list[str]
) -> None:
    """Whatever the mix of calls, summary totals equal the Decimal sum of the rows. No cache:
    a repeated call is another priced row (a $0 hit would let a wrong total go unseen)."""
    guard = costguard.CostGuardClient(ledger=tmp_path_factory.mktemp("l") / "l.db", cache=None)
    client = guard.wrap(FakeProvider().openai())
    for model in models:
        client.chat.completions.create(model=model, messages=HI)
    rows = guard.ledger.records()
    assert len(rows) == len(models) and all(r.cost_usd for r in rows)
    by_model = {s.key["model"]: s.cost_usd for s in guard.ledger.summary("model")}
    assert sum(by_model.values(), Decimal(0)) == sum(
        (r.cost_usd or Decimal(0) for r in rows), Decimal(0)
    )
    guard.close()


def test_a_stream_that_fails_midway_is_not_counted_as_free(
    guard: costguard.CostGuardClient,
) -> None:
    """Tokens streamed before a failure were billed but not reported: unpriced, not $0."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    fake.fail("stream_error")
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    [row] = guard.ledger.records()
    assert row.cost_usd is None and not row.priced


class _FinalOutcomes:
    """A layer that keeps the final Outcome of every stream it sees."""

    def __init__(self) -> None:
        self.finals: list[Outcome] = []

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        outcome = call_next(call)
        if outcome.stream is not None:
            outcome.stream.on_finish(self.finals.append)
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        return await call_next(call)


@pytest.mark.parametrize("cached", [False, True])
def test_a_streams_final_outcome_carries_the_answers_id_and_finish_reasons(
    tmp_path: Path, cached: bool
) -> None:
    """With the exact cache off or on, the final Outcome of each stream kind has the answer's
    id and finish reasons; only the cache has the answer assembled."""
    watch = _FinalOutcomes()
    cache = costguard.ExactCache(tmp_path / "c") if cached else None
    with costguard.CostGuardClient(ledger=":memory:", cache=cache, layers=[watch]) as guard:
        fake = FakeProvider()
        client, claude = guard.wrap(fake.openai()), guard.wrap(fake.anthropic())
        chat = list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
        response = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=400, messages=HI
        ) as stream:
            message = stream.get_final_message()
    assert all(isinstance(final, StreamOutcome) for final in watch.finals)
    seen = [(f.response_id, f.finish_reasons) for f in watch.finals if isinstance(f, StreamOutcome)]
    assert seen == [
        (chat[0].id, ("stop",)),
        (response[-1].response.id, ("completed",)),
        (message.id, ("end_turn",)),
    ]
    if cached:
        assert [final.response.id for final in watch.finals] == [id_ for id_, _ in seen]
    else:
        assert [final.response for final in watch.finals] == [None, None, None]


def test_a_stream_never_read_is_still_recorded_and_keeps_its_budget(tmp_path: Path) -> None:
    """A stream dropped before its first chunk (sync and async) is a ledger row, incomplete and
    unpriced (never $0), and the budget keeps its worst case."""
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, budgets=[costguard.Budget(1, period="total")]
    )
    fake = FakeProvider()
    gpt, claude = guard.wrap(fake.openai()), guard.wrap(fake.async_anthropic())
    gpt.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True, max_tokens=50)

    async def unread() -> None:
        await claude.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=HI, stream=True
        )

    asyncio.run(unread())
    gc.collect()
    rows = guard.ledger.records()
    assert [(r.provider, r.status, r.cost_usd) for r in rows] == [
        ("openai", "incomplete", None),
        ("anthropic", "incomplete", None),
    ]
    [status] = guard.budget_status()
    assert status.spent > 0 and status.reserved == 0
    worst_cases = [
        costguard.estimate_cost(model, HI, max_tokens=50)
        for model in ("gpt-4o-mini", "claude-haiku-4-5")
    ]
    assert status.spent == sum(worst_cases)  # each stream's whole worst case, not just one's
    guard.close()


_EXIT_WITH_AN_OPEN_STREAM = """
import sys, costguard
from costguard.testing import FakeProvider
guard = costguard.CostGuardClient(ledger=sys.argv[1], cache=None)
client = guard.wrap(FakeProvider().openai())
stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
)
next(iter(stream))
print("done")
"""


def test_a_program_ending_with_a_half_read_stream_exits(tmp_path: Path) -> None:
    """A script whose last stream is still half-read when it ends exits normally: the stream
    is not settled during interpreter shutdown, where the ledger's writer cannot start."""
    run = subprocess.run(
        [sys.executable, "-c", _EXIT_WITH_AN_OPEN_STREAM, str(tmp_path / "l.db")],
        capture_output=True,
        text=True,
        timeout=120,  # a bound for the hang this guards against, not a wait
    )
    assert (run.returncode, run.stdout) == (0, "done\n")
