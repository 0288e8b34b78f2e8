"""Per-function policies: guard.scope(...) as a decorator with models, caps, budgets and
attribution worked out from the function's arguments."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costguard
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


@dataclass
class Request:
    user_id: str
    org: str


def chat(client: Any, **extra: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=HI, **extra)


def test_user_and_tenant_can_be_worked_out_from_the_functions_arguments(
    guard: costguard.CostGuardClient,
) -> None:
    """user= and tenant= given as callables are called with each call's arguments."""
    client = guard.wrap(FakeProvider().openai())

    @guard.scope(feature="answer", user=lambda request: request.user_id, tenant=lambda r: r.org)
    def answer(request: Request) -> None:
        chat(client)

    answer(Request("u1", "acme"))
    answer(request=Request("u2", "globex"))
    rows = guard.ledger.records()
    assert [(r.feature, r.user, r.tenant) for r in rows] == [
        ("answer", "u1", "acme"),
        ("answer", "u2", "globex"),
    ]


def test_callable_user_works_on_async_functions_and_both_kinds_of_generator(
    guard: costguard.CostGuardClient,
) -> None:
    """Async functions, generators and async generators resolve their callables too, and the
    scope stays active while the caller iterates."""
    fake = FakeProvider()
    client, aclient = guard.wrap(fake.openai()), guard.wrap(fake.async_openai())
    who = {"user": lambda name: name}

    @guard.scope(feature="coro", **who)
    async def coro(name: str) -> None:
        await aclient.chat.completions.create(model="gpt-4o", messages=HI)

    @guard.scope(feature="gen", **who)
    def gen(name: str) -> Iterator[int]:
        for i in range(2):
            chat(client)
            yield i

    @guard.scope(feature="agen", **who)
    async def agen(name: str) -> AsyncIterator[int]:
        for i in range(2):
            await aclient.chat.completions.create(model="gpt-4o", messages=HI)
            yield i

    async def main() -> None:
        await coro("ann")
        assert [i async for i in agen("cy")] == [0, 1]

    assert list(gen("bo")) == [0, 1]
    asyncio.run(main())
    rows = [(r.feature, r.user) for r in guard.ledger.records()]
    assert rows == [("gen", "bo"), ("gen", "bo"), ("coro", "ann"), ("agen", "cy"), ("agen", "cy")]


def test_asyncio_tasks_created_inside_a_decorated_function_are_attributed(
    guard: costguard.CostGuardClient,
) -> None:
    """Tasks the function creates inherit its scope (asyncio copies the context)."""
    aclient = guard.wrap(FakeProvider().async_openai())

    @guard.scope(feature="fanout", user=lambda n: f"user-{n}")
    async def fanout(n: int) -> None:
        await asyncio.gather(
            *(
                asyncio.create_task(aclient.chat.completions.create(model="gpt-4o", messages=HI))
                for _ in range(n)
            )
        )

    asyncio.run(fanout(3))
    assert {(r.feature, r.user) for r in guard.ledger.records()} == {("fanout", "user-3")}


def test_threads_started_with_a_copied_context_inside_a_decorated_function_are_attributed(
    guard: costguard.CostGuardClient,
) -> None:
    """A thread run in contextvars.copy_context() from inside the function keeps its scope."""
    client = guard.wrap(FakeProvider().openai())

    @guard.scope(feature="threads", tags={"job": "nightly"})
    def work() -> None:
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(chat, client))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    work()
    rows = guard.ledger.records()
    assert len(rows) == 3
    assert all(r.feature == "threads" and dict(r.tags) == {"job": "nightly"} for r in rows)


def test_a_forced_model_serves_every_chat_call_inside_and_the_ledger_says_why(
    tmp_path: Path,
) -> None:
    """model= sends each chat call to that model (the router stands aside); embeddings keep
    their own model."""
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=None,
        router=costguard.Router(rules={"draft": "gpt-4.1-nano"}),
    )
    client = guard.wrap(FakeProvider().openai())

    @guard.scope(feature="draft", model="gpt-4o-mini")
    def draft() -> None:
        chat(client)
        client.embeddings.create(model="text-embedding-3-small", input="hi")

    draft()
    forced, embedding = guard.ledger.records()
    assert (forced.requested_model, forced.served_model) == ("gpt-4o", "gpt-4o-mini")
    assert forced.route == "scope:model"
    assert embedding.served_model == "text-embedding-3-small" and embedding.route is None
    guard.close()


def test_forcing_a_model_of_the_other_provider_is_refused_before_sending(
    guard: costguard.CostGuardClient,
) -> None:
    """A Claude model forced on an OpenAI call raises InvalidRequestError naming both."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with (
        guard.scope(model="claude-haiku-4-5"),
        pytest.raises(costguard.InvalidRequestError, match=r"claude-haiku-4-5.*openai"),
    ):
        chat(client)
    assert fake.requests == []


def test_scope_max_tokens_lowers_the_limit_and_never_raises_it(
    guard: costguard.CostGuardClient,
) -> None:
    """max_tokens= fills in or lowers each call's output limit; a lower one of the caller's
    is kept; an inner scope's value replaces the outer one."""
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(max_tokens=100):
        chat(client)
        chat(client, max_completion_tokens=500)
        chat(client, max_completion_tokens=20)
        with guard.scope(max_tokens=50):
            chat(client)
    sent = [(r.requested_max_tokens, r.sent_max_tokens) for r in guard.ledger.records()]
    assert sent == [(None, 100), (500, 100), (20, 20), (None, 50)]


def test_a_guard_cap_and_a_scope_cap_together_send_the_stricter(tmp_path: Path) -> None:
    """The guard's Cap and the scope's max_tokens both apply: the smaller limit is sent."""
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, max_tokens=costguard.Cap(default=80)
    )
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(max_tokens=300):
        chat(client)
    with guard.scope(max_tokens=30):
        chat(client)
    assert [r.sent_max_tokens for r in guard.ledger.records()] == [80, 30]
    guard.close()


def test_scope_max_cost_refuses_a_call_that_cannot_fit(guard: costguard.CostGuardClient) -> None:
    """max_cost_usd= below the cost of even one output token refuses the call before sending."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with (
        guard.scope(max_cost_usd="0.000000001"),
        pytest.raises(costguard.BudgetExceededError),
    ):
        chat(client)
    assert fake.requests == []


def test_a_per_function_budget_holds_without_any_guard_budget(
    guard: costguard.CostGuardClient,
) -> None:
    """budget= on the decorator is reserved and settled for calls inside; once spent, the
    next call is refused, and the budget is recorded for `costguard budget status`."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())

    @guard.scope(feature="summarise", budget=costguard.Budget("0.001", period="total"))
    def summarise() -> None:
        chat(client, max_completion_tokens=20)

    spent = 0
    with pytest.raises(costguard.BudgetExceededError):
        for _ in range(1000):
            summarise()
            spent += 1
    assert 0 < spent < 1000
    [status] = guard.budget_status()
    assert status.budget == "scope:summarise:all/total/$0.001"
    assert status.spent <= Decimal("0.001")
    chat(client)  # outside the function, the budget does not apply
    assert len(guard.ledger.records()) == spent + 2  # the refusal is a row too


def test_nested_scope_budgets_all_apply(guard: costguard.CostGuardClient) -> None:
    """An inner function's budget adds to the outer one's: both are charged."""
    client = guard.wrap(FakeProvider().openai())
    outer = costguard.Budget(1, period="day", name="outer")
    inner = costguard.Budget(1, period="day", name="inner")
    with guard.scope(budget=outer), guard.scope(budget=[inner]):
        chat(client)
    statuses = {s.budget: s.spent for s in guard.budget_status()}
    assert set(statuses) == {"outer", "inner"}
    assert statuses["outer"] == statuses["inner"] > 0


def test_a_scope_budget_may_not_take_a_guard_budgets_name(tmp_path: Path) -> None:
    """Two budgets under one name would share spend: refused with a clear message."""
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, budgets=[costguard.Budget(5, name="team")]
    )
    client = guard.wrap(FakeProvider().openai())
    with (
        guard.scope(budget=costguard.Budget(1, name="team")),
        pytest.raises(costguard.ConfigurationError, match="team"),
    ):
        chat(client)
    guard.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user": 42}, "user must be a str, a callable"),
        ({"tenant": ["acme"]}, "tenant must be a str, a callable"),
        ({"model": ""}, "model must be a model name"),
        ({"max_tokens": -1}, "positive integer"),
        ({"max_tokens": 10**9}, "absurd"),
        ({"max_cost_usd": float("nan")}, "max_cost_usd"),
        ({"budget": "5 dollars"}, "costguard.Budget"),
        ({"budget": [1]}, "costguard.Budget"),
        ({"cache": "sometimes"}, "cache="),
        ({"prompt_caching": "always"}, "prompt_caching"),
        ({"feature": 123}, "feature must be a str"),
        ({"tier": 5}, "tier must be a str"),
        ({"tags": {"env": 1}}, "tags must map str to str"),
    ],
)
def test_bad_scope_values_are_refused_when_the_scope_is_made(
    guard: costguard.CostGuardClient, kwargs: dict[str, Any], message: str
) -> None:
    """Each bad value raises ConfigurationError naming the parameter, before any call."""
    with pytest.raises(costguard.ConfigurationError, match=message):
        guard.scope(**kwargs)


def test_an_unknown_scope_key_names_itself(guard: costguard.CostGuardClient) -> None:
    """A misspelt keyword is a TypeError that names it."""
    with pytest.raises(TypeError, match="featur"):
        guard.scope(featur="x")  # type: ignore[call-arg]


def test_a_callable_scope_value_in_a_with_block_is_refused(
    guard: costguard.CostGuardClient,
) -> None:
    """A with block has no arguments to call user= with, so it is refused clearly."""
    with (
        pytest.raises(costguard.ConfigurationError, match="can only decorate a function"),
        guard.scope(user=lambda request: request.user_id),
    ):
        pass


def test_a_resolver_returning_a_non_string_is_refused(guard: costguard.CostGuardClient) -> None:
    """A user= callable must return a str or None; anything else is a TypeError naming it."""

    @guard.scope(user=lambda n: n)
    def f(n: int) -> None:
        pass

    with pytest.raises(TypeError, match="user= callable returned int"):
        f(7)


def test_decorating_a_class_is_refused(guard: costguard.CostGuardClient) -> None:
    """guard.scope on a class raises ConfigurationError pointing at its methods."""
    with pytest.raises(costguard.ConfigurationError, match="cannot decorate the class Service"):

        @guard.scope(feature="x")
        class Service:
            pass


@pytest.fixture(scope="module")
def shared_guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[costguard.CostGuardClient]:
    guard = costguard.CostGuardClient(ledger=tmp_path_factory.mktemp("g") / "l.db", cache=None)
    yield guard
    guard.close()


@given(
    outer=st.fixed_dictionaries(
        {},
        optional={
            "feature": st.sampled_from(["a", "b"]),
            "user": st.sampled_from(["u1", "u2"]),
            "model": st.sampled_from(["gpt-4o", "gpt-4o-mini"]),
            "max_tokens": st.integers(1, 1000),
        },
    ),
    inner=st.fixed_dictionaries(
        {},
        optional={
            "feature": st.sampled_from(["c"]),
            "user": st.sampled_from(["u3"]),
            "model": st.sampled_from(["gpt-4.1"]),
            "max_tokens": st.integers(1, 1000),
        },
    ),
    outer_tags=st.dictionaries(st.sampled_from("xyz"), st.sampled_from("01"), max_size=3),
    inner_tags=st.dictionaries(st.sampled_from("xyz"), st.sampled_from("23"), max_size=3),
)
def test_nested_scopes_let_inner_values_win_and_merge_tags(
    shared_guard: costguard.CostGuardClient,
    outer: dict[str, Any],
    inner: dict[str, Any],
    outer_tags: dict[str, str],
    inner_tags: dict[str, str],
) -> None:
    """For any pair of scopes, each value is the inner one if set, else the outer one, and
    tags are the outer tags updated by the inner ones."""
    with (
        shared_guard.scope(**outer, tags=outer_tags),
        shared_guard.scope(**inner, tags=inner_tags) as scope,
    ):
        for key in ("feature", "user", "model", "max_tokens"):
            assert getattr(scope, key) == inner.get(key, outer.get(key))
        assert dict(scope.tags) == {**outer_tags, **inner_tags}


def test_budgets_on_an_in_memory_ledger_are_refused_clearly() -> None:
    """Budgets live in the ledger database, so a ':memory:' ledger gets a message saying so,
    at construction for the guard's budgets and at the first call for a scope's."""
    with pytest.raises(costguard.ConfigurationError, match="need a ledger file"):
        costguard.CostGuardClient(ledger=":memory:", cache=None, budgets=[costguard.Budget(1)])
    guard = costguard.CostGuardClient(ledger=":memory:", cache=None)
    client = guard.wrap(FakeProvider().openai())
    with (
        guard.scope(budget=costguard.Budget(1)),
        pytest.raises(costguard.ConfigurationError, match="need a ledger file"),
    ):
        chat(client)
    guard.close()


def test_one_scope_shared_by_tasks_that_leave_out_of_order_keeps_each_tasks_scope(
    guard: costguard.CostGuardClient,
) -> None:
    """A guard.scope(...) object entered by two asyncio tasks, the first to enter leaving
    first, restores each task's own scope and attributes each task's calls."""
    aclient = guard.wrap(FakeProvider().async_openai())
    shared = guard.scope(feature="shared")

    async def first(entered: asyncio.Event, second_in: asyncio.Event) -> str | None:
        async with guard.scope(user="first"):
            async with shared:
                entered.set()
                await second_in.wait()
                await aclient.chat.completions.create(model="gpt-4o", messages=HI)
            return costguard.current_scope().feature

    async def second(entered: asyncio.Event, second_in: asyncio.Event, left: Any) -> str | None:
        await entered.wait()
        async with guard.scope(user="second"):
            async with shared:
                second_in.set()
                await left
                await aclient.chat.completions.create(model="gpt-4o", messages=HI)
            return costguard.current_scope().feature

    async def main() -> list[str | None]:
        entered, second_in = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(first(entered, second_in))
        return [await second(entered, second_in, task), await task]

    assert asyncio.run(main()) == [None, None]
    rows = {(r.user, r.feature) for r in guard.ledger.records()}
    assert rows == {("first", "shared"), ("second", "shared")}


def test_a_decorated_generator_closed_early_cleans_up_inside_its_scope(
    guard: costguard.CostGuardClient,
) -> None:
    """Calls a generator makes in its finally block, when its caller stops early, are
    attributed to the generator's scope, not the caller's."""
    client = guard.wrap(FakeProvider().openai())

    @guard.scope(feature="pages")
    def pages() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            chat(client)

    with guard.scope(feature="caller"):
        it = pages()
        next(it)
        it.close()
    [row] = guard.ledger.records()
    assert row.feature == "pages"


def test_different_budgets_under_one_name_are_refused_even_from_racing_threads(
    guard: costguard.CostGuardClient,
) -> None:
    """Two threads whose scopes first bring different budgets of the same name cannot both
    use it: exactly one call is refused, as one scope holding both is."""
    client = guard.wrap(FakeProvider().openai())
    start = threading.Barrier(2)
    refused: list[BaseException] = []

    def call(limit: int) -> None:
        with guard.scope(budget=costguard.Budget(limit, name="team")):
            start.wait()
            try:
                chat(client)
            except costguard.ConfigurationError as exc:
                refused.append(exc)

    threads = [threading.Thread(target=call, args=(limit,)) for limit in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(refused) == 1 and "two different scope budgets" in str(refused[0])
    both = [costguard.Budget(3, name="pair"), costguard.Budget(4, name="pair")]
    with guard.scope(budget=both), pytest.raises(costguard.ConfigurationError, match="pair"):
        chat(client)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_timezone": "Nowhere/Atlantis"}, "timezone"),
        ({"reservation_ttl": 0}, "reservation_ttl"),
        ({"alert_at": ["0.5", "half"]}, "alert fractions"),
    ],
)
def test_bad_budget_options_fail_when_the_guard_is_built_without_guard_budgets(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    """A bad budget timezone, reservation TTL or alert fraction raises ConfigurationError at
    construction even when only scopes will bring budgets."""
    with pytest.raises(costguard.ConfigurationError, match=message):
        costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None, **kwargs)


def test_scope_budgets_are_marked_in_the_ledger_so_tools_never_apply_them_to_every_call(
    tmp_path: Path,
) -> None:
    """A named scope budget is recorded as a scope's: budget status lists it, and readers that
    want only the guard's budgets (the batch flush command) can leave it out; a ledger path
    with URI characters in it reads fine."""
    from costguard.spend._budget import BudgetBook

    path = tmp_path / "odd?dir#1" / "l.db"
    path.parent.mkdir()
    guard = costguard.CostGuardClient(
        ledger=path, cache=None, budgets=[costguard.Budget(5, name="team")]
    )
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(budget=costguard.Budget(1, name="summaries")):
        chat(client)
    guard.close()

    def names(**options: Any) -> set[str]:
        books = BudgetBook.published(path, **options)
        try:
            return {str(b.name) for book in books for b in book.budgets}
        finally:
            for book in books:
                book.close()

    assert names() == {"team", "summaries"}
    assert names(include_scoped=False) == {"team"}
