"""Budgets and batches: reserve the worst case at batch rates before submitting, settle after."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import costguard
from costguard import Budget, BudgetExceededError
from costguard.batch import BatchItemError, BatchOptions
from costguard.batch._store import BatchStore
from costguard.testing import FakeProvider

GPT = "gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Summarise the quarterly report."}]


def chat(**params: Any) -> dict[str, Any]:
    return {"model": GPT, "messages": QUESTION, "max_tokens": 1000, **params}


def standard_worst_case() -> Decimal:
    return costguard.estimate_cost(GPT, QUESTION, max_tokens=1000)


def make_guard(path: Path, *budgets: Budget) -> costguard.CostGuardClient:
    return costguard.CostGuardClient(ledger=path, cache=None, budgets=budgets)


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    # Room for four requests at batch rates, but only two at standard rates.
    g = make_guard(tmp_path / "l.db", Budget(standard_worst_case() * 2, period="day"))
    yield g
    g.close()


def reserved(guard: costguard.CostGuardClient) -> Decimal:
    return sum((s.reserved for s in guard.budget_status()), Decimal(0))


def spent(guard: costguard.CostGuardClient) -> Decimal:
    return sum((s.spent for s in guard.budget_status()), Decimal(0))


def test_a_batch_reserves_its_worst_case_at_batch_rates(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Four requests fit a budget that holds two at standard rates: batch rates are half."""
    handle = guard.batch(fake.openai(), [chat() for _ in range(4)], wait=False, options=options)
    assert reserved(guard) == standard_worst_case() * 2
    guard.resolve(handle, fake.openai(), options=options)
    assert reserved(guard) == 0


def test_a_batch_over_budget_is_refused_before_anything_is_sent(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """BudgetExceededError, no request to the provider, no reservation or queue entry left."""
    with pytest.raises(BudgetExceededError) as raised:
        guard.batch(fake.openai(), [chat() for _ in range(5)], options=options)
    assert raised.value.worst_case == standard_worst_case() / 2
    assert fake.requests == []
    assert reserved(guard) == 0
    assert BatchStore.for_guard(guard).counts() == []


def test_reservations_settle_to_the_exact_cost_of_the_rows(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """After collection the budget's spend equals the ledger's rows, to the picodollar."""
    guard.batch(fake.openai(), [chat(), chat()], options=options)
    rows = guard.ledger.records()
    assert spent(guard) == sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))
    assert spent(guard) > 0 and reserved(guard) == 0


def test_requests_without_an_answer_release_their_reservation(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Expired and failed requests are not billed: their holds are released, nothing spent."""
    fake.batches.script("expired")
    answers = guard.batch(fake.openai(), [chat(), chat()], options=options)
    assert all(isinstance(a, BatchItemError) for a in answers)
    assert (spent(guard), reserved(guard)) == (0, 0)


def test_a_flush_leaves_over_budget_requests_queued_and_sends_the_rest(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """Per-user budgets: the user over budget waits in the queue, the other is submitted."""
    limit = standard_worst_case() / 2  # one request at batch rates each
    guard = make_guard(tmp_path / "l.db", Budget(limit, period="day", per="user"))
    with guard.scope(user="ann"):
        guard.defer(fake.openai(), chat())
        waiting = guard.defer(fake.openai(), chat())
    with guard.scope(user="bob"):
        guard.defer(fake.openai(), chat())
    report = guard.flush_deferred(fake.openai(), options=options)
    assert (report.submitted, report.held) == (2, 1)
    assert guard.resolve(waiting, fake.openai(), wait=False, options=options) is None
    guard.close()


@pytest.mark.parametrize("same_budgets", [True, False], ids=["same budgets", "no budgets"])
def test_another_process_settles_what_it_collects(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions, same_budgets: bool
) -> None:
    """Whichever guard collects a batch settles the holds made elsewhere, budgets or not."""
    budget = Budget(1, period="day")
    first = make_guard(tmp_path / "l.db", budget)
    handle = first.batch(fake.openai(), [chat()], wait=False, options=options)
    assert reserved(first) > 0
    first.close()
    second = make_guard(tmp_path / "l.db", *([budget] if same_budgets else []))
    [answer] = second.resolve(handle, fake.openai(), options=options)
    [row] = second.ledger.records()
    assert answer.usage is not None
    second.close()
    reader = make_guard(tmp_path / "l.db", budget)
    assert (reserved(reader), spent(reader)) == (0, row.cost_usd)
    reader.close()


def test_cache_hits_never_touch_a_budget(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """A request answered from the cache reserves and spends nothing."""
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=costguard.ExactCache(tmp_path / "cache"),
        budgets=[Budget(1, period="day")],
    )
    client = guard.wrap(fake.openai())
    client.chat.completions.create(**chat())
    before = spent(guard)
    guard.batch(client, [chat()], options=options)
    assert (spent(guard), reserved(guard)) == (before, 0)
    guard.close()


def test_a_scope_budget_limits_a_batch_when_the_guard_has_none(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """guard.scope(budget=...) refuses a batch whose worst case it cannot hold, as for a call."""
    guard = make_guard(tmp_path / "l.db")
    scoped = guard.scope(budget=Budget(standard_worst_case() / 4, period="day"))
    with scoped, pytest.raises(BudgetExceededError):
        guard.batch(fake.openai(), [chat()], options=options)
    assert fake.requests == []
    guard.close()


def test_a_scope_budget_is_charged_what_the_batch_cost(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """A batch made in a scope with its own budget counts against it, to the picodollar."""
    scoped = Budget(1, period="day", name="nightly")
    guard = make_guard(tmp_path / "l.db", Budget(1, period="day"))
    with guard.scope(budget=scoped):
        guard.batch(fake.openai(), [chat()], options=options)
    [row] = guard.ledger.records()
    guard.close()
    reader = make_guard(tmp_path / "l.db", scoped)
    assert (spent(reader), reserved(reader)) == (row.cost_usd, 0)
    reader.close()


def test_a_deferred_request_is_held_by_the_budget_of_the_scope_it_was_queued_in(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """The scope's budget travels with a deferred request: a flush outside the scope applies it."""
    guard = make_guard(tmp_path / "l.db")
    with guard.scope(budget=Budget(standard_worst_case() / 4, period="day")):
        guard.defer(fake.openai(), chat())
    report = guard.flush_deferred(fake.openai(), options=options)
    assert (report.held, report.submitted, fake.batches.ids) == (1, 0, [])
    guard.close()


def test_a_flush_that_cannot_reserve_for_a_request_keeps_no_hold_and_no_claim(
    tmp_path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """A per-user budget meets a request without a user: the error, and the queue as it was."""
    guard = make_guard(tmp_path / "l.db", Budget(1, period="day", per="user"))
    with guard.scope(user="ann"):
        guard.defer(fake.openai(), chat())
    guard.defer(fake.openai(), chat())
    with pytest.raises(costguard.ConfigurationError, match="per user"):
        guard.flush_deferred(fake.openai(), options=options)
    assert reserved(guard) == 0
    assert [c[0] for c in BatchStore.for_guard(guard).counts()] == ["queued"]
    assert fake.batches.ids == []
    guard.close()
