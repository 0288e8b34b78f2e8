"""Budgets hold exactly: reserve the worst case, settle to the real cost, refuse what won't fit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costguard
from _helpers import Clock
from costguard.ledger import new_id
from costguard.spend._budget import BudgetBook
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


def guard_with(
    tmp_path: Path, *budgets: costguard.Budget, **kwargs: Any
) -> costguard.CostGuardClient:
    return costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, budgets=budgets, **kwargs
    )


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    """A $0.01 daily budget: a handful of small gpt-4o calls fit, then they do not."""
    guard = guard_with(tmp_path, costguard.Budget("0.01", period="day"))
    yield guard
    guard.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit_usd": 0}, "positive"),
        ({"limit_usd": -5}, "positive"),
        ({"limit_usd": float("nan")}, "positive"),
        ({"limit_usd": float("inf")}, "positive"),
        ({"limit_usd": "lots"}, "positive"),
        ({"limit_usd": 1, "period": "fortnight"}, "unknown budget period"),
        ({"limit_usd": 1, "per": "colour"}, "per one of"),
        ({"limit_usd": 1, "per": "user", "missing": "maybe"}, "missing="),
    ],
)
def test_bad_budgets_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    """Zero, negative, NaN, infinite limits, unknown periods and keys fail at construction."""
    with pytest.raises(costguard.ConfigurationError, match=message):
        costguard.Budget(**kwargs)


def test_a_call_that_fits_is_sent_and_settles_to_its_real_cost(
    tight: costguard.CostGuardClient,
) -> None:
    """After a call, the budget holds its real cost (the ledger row's), not its worst case."""
    client = tight.wrap(FakeProvider().openai())
    client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=100)
    [status] = tight.budget_status()
    [row] = tight.ledger.records()
    assert status.spent == row.cost_usd and status.reserved == 0
    assert status.remaining == Decimal("0.01") - status.spent


def test_a_call_whose_worst_case_does_not_fit_is_refused_before_sending(
    tight: costguard.CostGuardClient,
) -> None:
    """BudgetExceededError names budget, limit, spent, reserved and worst case; nothing is sent."""
    fake = FakeProvider()
    client = tight.wrap(fake.openai())
    with pytest.raises(costguard.BudgetExceededError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=5000)
    error = caught.value
    assert (error.budget, error.limit, error.spent, error.reserved) == (
        "all/day/$0.01",
        Decimal("0.01"),
        0,
        0,
    )
    assert error.worst_case > Decimal("0.01")
    assert "limit $0.01" in str(error) and "worst case" in str(error)
    assert fake.requests == []


def test_spend_adds_up_until_the_budget_refuses(tight: costguard.CostGuardClient) -> None:
    """Calls go through while their worst case fits what is left, then are refused."""
    fake = FakeProvider()
    client = tight.wrap(fake.openai())
    sent = 0
    with pytest.raises(costguard.BudgetExceededError):
        for _ in range(100):
            client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=200)
            sent += 1
    assert 0 < sent < 100 and len(fake.requests) == sent
    [status] = tight.budget_status()
    assert status.spent + status.reserved <= Decimal("0.01")
    assert status.spent == sum(r.cost_usd or 0 for r in tight.ledger.records())


def test_a_failed_call_releases_its_reservation(tight: costguard.CostGuardClient) -> None:
    """A provider error leaves nothing spent and nothing reserved."""
    fake = FakeProvider()
    client = tight.wrap(fake.openai())
    fake.fail(500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=100)
    [status] = tight.budget_status()
    assert (status.spent, status.reserved) == (0, 0)


def test_a_stream_holds_its_reservation_until_it_ends(tight: costguard.CostGuardClient) -> None:
    """While a stream is open its worst case is reserved; at the end it settles to the real cost."""
    client = tight.wrap(FakeProvider().openai())
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HI, max_tokens=100, stream=True
    )
    [open_status] = tight.budget_status()
    assert open_status.reserved > 0 and open_status.spent == 0
    list(stream)
    [done] = tight.budget_status()
    assert done.reserved == 0 and done.spent == tight.ledger.records()[0].cost_usd


def test_settling_twice_counts_once(tmp_path: Path) -> None:
    """A hold settles at most once."""
    guard = guard_with(tmp_path, costguard.Budget(1))
    assert guard.budgets is not None
    hold = guard.budgets.reserve(new_id(), costguard.Scope(), Decimal("0.5"))
    guard.budgets.settle(hold, Decimal("0.2"))
    guard.budgets.settle(hold, Decimal("0.2"))
    assert guard.budget_status()[0].spent == Decimal("0.2")
    guard.close()


def test_per_user_budgets_are_separate_and_need_a_user(tmp_path: Path) -> None:
    """Each user has their own allowance; a call without a user is refused by default."""
    with guard_with(tmp_path, costguard.Budget("0.001", per="user")) as guard:
        client = guard.wrap(FakeProvider().openai())
        for user in ("alice", "bob"):
            with guard.scope(user=user):
                client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=100)
        assert {s.key for s in guard.budget_status()} == {"alice", "bob"}
        with pytest.raises(costguard.ConfigurationError, match="scope has no user"):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=100)


def test_missing_keys_can_count_as_anonymous(tmp_path: Path) -> None:
    """missing="anonymous" counts calls without the key under one shared key."""
    with guard_with(tmp_path, costguard.Budget(1, per="user", missing="anonymous")) as guard:
        guard.wrap(FakeProvider().openai()).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=10
        )
        assert [s.key for s in guard.budget_status()] == ["anonymous"]


def test_an_unpriced_model_under_a_budget_is_refused(tight: costguard.CostGuardClient) -> None:
    """A model without a price is never let through a budget as $0."""
    fake = FakeProvider()
    client = tight.wrap(fake.openai())
    with pytest.warns(costguard.CostGuardWarning), pytest.raises(costguard.UnknownModelPriceError):
        client.chat.completions.create(model="my-finetune", messages=HI)
    assert fake.requests == []


def test_cache_hits_do_not_touch_budgets(tmp_path: Path) -> None:
    """A cached answer costs nothing and is served even when the budget is spent."""
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=costguard.ExactCache(tmp_path / "c"),
        budgets=[costguard.Budget("0.0003")],
    ) as guard:
        client = guard.wrap(FakeProvider().openai())
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=100)
        spent = guard.budget_status()[0].spent
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=100)
        assert guard.budget_status()[0].spent == spent


def test_periods_follow_calendar_boundaries_in_the_timezone(tmp_path: Path) -> None:
    """Day, week (from Monday) and month periods begin at local midnight in the timezone."""
    clock = Clock(datetime(2026, 3, 18, 23, 30, tzinfo=UTC).timestamp())  # a Wednesday
    book = BudgetBook([], tmp_path / "x.db", timezone="Asia/Tokyo", clock=clock)
    day, week, month, total = (
        costguard.Budget(1, period=p) for p in ("day", "week", "month", "total")
    )
    assert book.period_of(day, clock()) == "2026-03-19"  # already Thursday in Tokyo
    assert book.period_of(week, clock()) == "2026-03-16"
    assert book.period_of(month, clock()) == "2026-03-01"
    assert book.period_of(total, clock()) == ""
    book.close()


def test_a_new_period_starts_from_zero_and_keeps_the_old_spend(tmp_path: Path) -> None:
    """Spend settled across midnight stays in the period it was reserved in."""
    clock = Clock(datetime(2026, 3, 14, 23, 59, tzinfo=UTC).timestamp())
    costguard.Ledger(tmp_path / "l.db").close()
    book = BudgetBook([costguard.Budget(1)], tmp_path / "l.db", clock=clock)
    hold = book.reserve(new_id(), costguard.Scope(), Decimal("0.5"))
    clock.now += 120  # the call ends after midnight
    book.settle(hold, Decimal("0.3"))
    [today] = book.status()
    assert (today.period, today.spent) == ("2026-03-15", 0)
    clock.now -= 120
    assert book.status()[0].spent == Decimal("0.3")
    book.close()


def test_alerts_fire_once_per_threshold_and_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """50%, 80% and 100% alerts fire once each, via the callback and the costguard logger."""
    alerts: list[costguard.BudgetAlert] = []
    with guard_with(tmp_path, costguard.Budget(1), on_alert=alerts.append) as guard:
        assert guard.budgets is not None
        with caplog.at_level(logging.WARNING, logger="costguard"):
            for amount in ("0.3", "0.3", "0.3", "0.05"):
                hold = guard.budgets.reserve(new_id(), costguard.Scope(), Decimal("0.05"))
                guard.budgets.settle(hold, Decimal(amount))
    assert [a.fraction for a in alerts] == [Decimal("0.5"), Decimal("0.8")]
    assert sum("reached 50" in r.message for r in caplog.records) == 1


def test_a_failing_alert_callback_never_fails_the_call(tmp_path: Path) -> None:
    """An exception in on_alert is logged; the call returns normally."""
    called: list[costguard.BudgetAlert] = []

    def boom(alert: costguard.BudgetAlert) -> None:
        called.append(alert)
        raise RuntimeError("pager down")

    with guard_with(
        tmp_path, costguard.Budget("0.0001"), on_alert=boom, alert_at=["0.01"]
    ) as guard:
        client = guard.wrap(FakeProvider().openai())
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=20)
    assert answer.choices and len(called) == 1  # the callback ran, raised, and was contained


def test_async_calls_reserve_and_settle(tight: costguard.CostGuardClient) -> None:
    """An async client is budgeted the same way."""
    client = tight.wrap(FakeProvider().async_openai())

    async def main() -> None:
        await client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=100)

    asyncio.run(main())
    [status] = tight.budget_status()
    assert status.spent == tight.ledger.records()[0].cost_usd and status.reserved == 0


def test_a_thousand_calls_from_32_threads_never_overspend(tmp_path: Path) -> None:
    """Released at once from 32 threads, calls never take spent + reserved past the limit,
    and the final spend is exactly the ledger's sum."""
    limit = Decimal("0.02")
    with guard_with(tmp_path, costguard.Budget(limit)) as guard:
        assert guard.budgets is not None
        client = guard.wrap(FakeProvider().openai())
        start = threading.Barrier(32)
        worst_seen = Decimal(0)
        stop = threading.Event()

        def watch() -> None:
            nonlocal worst_seen
            while not stop.is_set():
                for status in guard.budget_status():
                    worst_seen = max(worst_seen, status.spent + status.reserved)

        def work(calls: int) -> None:
            start.wait()
            for _ in range(calls):
                with contextlib.suppress(costguard.BudgetExceededError):
                    client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=300)

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [
            threading.Thread(target=work, args=(1000 // 32 + (i < 1000 % 32),)) for i in range(32)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        [status] = guard.budget_status()
        rows = guard.ledger.records()
    assert worst_seen <= limit and status.spent + status.reserved <= limit
    served = [r for r in rows if r.status == "ok"]
    refused = [r for r in rows if r.error_type == "BudgetExceededError"]
    assert len(rows) == 1000 and len(served) + len(refused) == 1000
    assert 0 < len(served) < 1000 and all(r.cost_usd == 0 for r in refused)
    assert status.reserved == 0
    assert status.spent == sum(r.cost_usd or 0 for r in rows)


WORKER = textwrap.dedent(
    """
    import sys, costguard
    from costguard.testing import FakeProvider
    budget = costguard.Budget(sys.argv[2])
    guard = costguard.CostGuardClient(ledger=sys.argv[1], cache=None, budgets=[budget])
    client = guard.wrap(FakeProvider().openai())
    hi = [{"role": "user", "content": "hi"}]
    sent = 0
    for _ in range(250):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=hi, max_tokens=300)
            sent += 1
        except costguard.BudgetExceededError:
            pass
    guard.close()
    print(sent)
    """
)


def test_four_processes_share_one_budget_exactly(tmp_path: Path) -> None:
    """4 processes x 250 calls against one budget: never over, and spend equals the ledger's sum."""
    path = tmp_path / "l.db"
    costguard.Ledger(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), "0.01"], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    sent = sum(int(p.communicate(timeout=120)[0]) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    with costguard.CostGuardClient(
        ledger=path, cache=None, budgets=[costguard.Budget("0.01")]
    ) as guard:
        [status] = guard.budget_status()
        rows = guard.ledger.records()
    assert status.spent <= Decimal("0.01") and status.reserved == 0
    assert len(rows) == 1000 and sum(r.status == "ok" for r in rows) == sent
    assert status.spent == sum(r.cost_usd or 0 for r in rows)


HOLDER = textwrap.dedent(
    """
    import sys, costguard
    from costguard.testing import FakeProvider
    guard = costguard.CostGuardClient(ledger=sys.argv[1], cache=None, budgets=[costguard.Budget(1)],
                                      reservation_ttl=60)
    client = guard.wrap(FakeProvider().openai())
    hi = [{"role": "user", "content": "hi"}]
    stream = client.chat.completions.create(model="gpt-4o", messages=hi, max_tokens=1000,
                                            stream=True)
    next(iter(stream))
    print("holding", flush=True)
    sys.stdin.read()
    """
)


def test_a_killed_process_loses_its_reservations_after_they_expire(tmp_path: Path) -> None:
    """SIGKILL while holding a reservation: it counts until it lapses, then nothing remains."""
    path = tmp_path / "l.db"
    costguard.Ledger(path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"holding"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.stdout.close()
    clock = Clock(datetime.now(UTC).timestamp())
    book = BudgetBook([costguard.Budget(1)], path, clock=clock)
    [held] = book.status()
    assert held.reserved > 0 and held.spent == 0
    clock.now += 61
    [lapsed] = book.status()
    assert (lapsed.reserved, lapsed.spent) == (0, 0)
    book.close()


def test_a_budgeted_call_is_refused_when_the_ledger_cannot_be_written(tmp_path: Path) -> None:
    """If reservations cannot be written, the call is refused, never let through."""
    with guard_with(tmp_path, costguard.Budget(1)) as guard:
        assert guard.budgets is not None
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        guard.budgets._conn.execute("PRAGMA query_only = ON")  # writes now fail
        with pytest.raises(costguard.LedgerError, match="refused"):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
        assert fake.requests == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reserve", "settle", "release"]),
            st.integers(min_value=1, max_value=400),  # worst case, in tenths of a cent
            st.integers(min_value=0, max_value=100),  # real cost as a % of the worst case
        ),
        max_size=40,
    )
)
def test_any_sequence_of_reservations_keeps_within_the_limit(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int]]
) -> None:
    """Whatever the order of reserves, settles and releases, spent + reserved never passes the
    limit, and spent is exactly the sum of what was settled."""
    path = tmp_path_factory.mktemp("b") / "l.db"
    costguard.Ledger(path).close()
    book = BudgetBook([costguard.Budget(1)], path)
    holds = []
    settled = Decimal(0)
    for action, worst, percent in steps:
        if action == "reserve":
            with contextlib.suppress(costguard.BudgetExceededError):
                holds.append(book.reserve(new_id(), costguard.Scope(), Decimal(worst) / 1000))
        elif holds:
            hold = holds.pop(0)
            if action == "settle":
                cost = Decimal(hold.amount * percent) / 100 / 10**12
                book.settle(hold, cost)
                settled += cost
            else:
                book.release(hold)
        [status] = book.status()
        assert status.spent + status.reserved <= 1
        assert status.spent == settled
    book.close()
