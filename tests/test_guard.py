"""Guard behaviour: bad input, unpriced models, scopes, custom layers, secrets."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from pathlib import Path
from typing import Any

import pytest

import costguard
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10**9}, "max_tokens"),
        ({"max_completion_tokens": 2.5}, "max_completion_tokens"),
        ({"temperature": float("nan")}, "temperature"),
        ({"metadata": {"when": object()}}, "metadata.when"),
        ({"messages": [{"role": "user", "content": {1, 2}}]}, "messages[0].content"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent_or_recorded(
    guard: costguard.CostGuardClient, kwargs: dict[str, Any], field: str
) -> None:
    """Invalid parameters raise InvalidRequestError naming the field; nothing is sent."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    params: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HI, **kwargs}
    with pytest.raises(costguard.InvalidRequestError) as caught:
        client.chat.completions.create(**params)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert fake.requests == []
    assert guard.ledger.records() == []


def test_anthropic_roles_are_checked(guard: costguard.CostGuardClient) -> None:
    """A system role inside Anthropic messages is refused, naming the field."""
    claude = guard.wrap(FakeProvider().anthropic())
    with pytest.raises(costguard.InvalidRequestError, match=r"messages\[0\]\.role"):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "system", "content": "x"}]
        )


def test_sdk_models_are_accepted_as_messages(guard: costguard.CostGuardClient) -> None:
    """A message object returned by the SDK can be sent back in the next request."""
    client = guard.wrap(FakeProvider().openai())
    first = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[*HI, first.choices[0].message, {"role": "user", "content": "more"}],
    )
    assert len(guard.ledger.records()) == 2


def test_an_unknown_model_warns_and_is_recorded_unpriced(guard: costguard.CostGuardClient) -> None:
    """By default a call to an unpriced model goes through, with a warning naming the model."""
    client = guard.wrap(FakeProvider().openai())
    with pytest.warns(costguard.CostGuardWarning, match="my-finetune"):
        client.chat.completions.create(model="my-finetune", messages=HI)
    [row] = guard.ledger.records()
    assert row.cost_usd is None and not row.priced


def test_strict_prices_refuse_an_unknown_model_before_sending(tmp_path: Path) -> None:
    """With strict_prices, an unpriced model raises UnknownModelPriceError and nothing is sent."""
    guard = costguard.CostGuardClient(ledger=tmp_path / "l.db", strict_prices=True)
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with pytest.raises(costguard.UnknownModelPriceError, match="my-finetune"):
        client.chat.completions.create(model="my-finetune", messages=HI)
    assert fake.requests == []
    assert guard.ledger.records() == []
    guard.close()


def test_snapshot_names_are_priced_as_their_family(guard: costguard.CostGuardClient) -> None:
    """A dated snapshot is priced without a warning."""
    client = guard.wrap(FakeProvider().openai())
    client.chat.completions.create(model="gpt-4o-2024-08-06", messages=HI)
    [row] = guard.ledger.records()
    assert row.cost_usd is not None and row.cost_usd > 0


def test_service_tier_named_in_the_request_is_charged(guard: costguard.CostGuardClient) -> None:
    """A flex-tier call is charged at flex rates, cheaper than the default tier."""
    client = guard.wrap(FakeProvider().openai())
    client.chat.completions.create(model="gpt-5-mini", messages=HI)
    client.chat.completions.create(model="gpt-5-mini", messages=HI, service_tier="flex")
    default, flex = guard.ledger.records()
    assert flex.service_tier == "flex"
    assert flex.usage == default.usage
    assert flex.cost_usd is not None and default.cost_usd is not None
    assert flex.cost_usd < default.cost_usd


def test_scope_attributes_every_call_made_inside(guard: costguard.CostGuardClient) -> None:
    """feature, user, tenant and tags reach the ledger; nested scopes override and merge."""
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(feature="support", user="u1", tags={"env": "prod"}):
        with guard.scope(user="u2", tenant="acme", tags={"team": "cx"}):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    inner, outer, bare = guard.ledger.records()
    assert (inner.feature, inner.user, inner.tenant) == ("support", "u2", "acme")
    assert dict(inner.tags) == {"env": "prod", "team": "cx"}
    assert (outer.feature, outer.user, outer.tenant) == ("support", "u1", None)
    assert (bare.feature, bare.user, dict(bare.tags)) == (None, None, {})


def test_scope_decorates_sync_async_and_generator_functions(
    guard: costguard.CostGuardClient,
) -> None:
    """@guard.scope works on plain, async and generator functions."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    aclient = guard.wrap(fake.async_openai())

    @guard.scope(feature="plain")
    def plain() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    @guard.scope(feature="async")
    async def coro() -> None:
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=HI)

    @guard.scope(feature="gen")
    def gen() -> Any:
        yield client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    plain()
    asyncio.run(coro())
    list(gen())
    assert [r.feature for r in guard.ledger.records()] == ["plain", "async", "gen"]


def test_scope_reaches_threads_started_with_a_copied_context(
    guard: costguard.CostGuardClient,
) -> None:
    """A thread run in contextvars.copy_context() inherits the scope."""
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(feature="batch"):
        ctx = contextvars.copy_context()
        thread = threading.Thread(
            target=ctx.run,
            args=(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=HI),),
        )
        thread.start()
        thread.join()
    [row] = guard.ledger.records()
    assert row.feature == "batch"


def test_a_custom_layer_sees_each_call_and_its_outcome(tmp_path: Path) -> None:
    """A user layer runs inside the ledger layer, for sync and async clients."""
    seen: list[tuple[str, str | None]] = []

    class Spy:
        def handle(self, call: costguard.Call, call_next: costguard.Handler) -> costguard.Outcome:
            outcome = call_next(call)
            seen.append((call.operation.name, outcome.served_model))
            return outcome

        async def ahandle(
            self, call: costguard.Call, call_next: costguard.AsyncHandler
        ) -> costguard.Outcome:
            outcome = await call_next(call)
            seen.append(("async " + call.operation.name, outcome.served_model))
            return outcome

    guard = costguard.CostGuardClient(ledger=tmp_path / "l.db", layers=[Spy()])
    fake = FakeProvider()
    guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o-mini", messages=HI)
    asyncio.run(
        guard.wrap(fake.async_anthropic()).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=HI
        )
    )
    assert [name for name, _ in seen] == ["chat.completions.create", "async messages.create"]
    assert all(model for _, model in seen)
    guard.close()


def test_a_layer_can_change_the_request_it_passes_on(tmp_path: Path) -> None:
    """A layer that rewrites the model is what the SDK sends, and what the ledger prices."""

    class Downgrade:
        def handle(self, call: costguard.Call, call_next: costguard.Handler) -> costguard.Outcome:
            return call_next(call.replace(params={**call.params, "model": "gpt-4o-mini"}))

        async def ahandle(
            self, call: costguard.Call, call_next: costguard.AsyncHandler
        ) -> costguard.Outcome:
            return await call_next(call.replace(params={**call.params, "model": "gpt-4o-mini"}))

    guard = costguard.CostGuardClient(ledger=tmp_path / "l.db", layers=[Downgrade()])
    fake = FakeProvider()
    guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o", messages=HI)
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    [row] = guard.ledger.records()
    assert row.requested_model == "gpt-4o"
    assert row.served_model is not None and row.served_model.startswith("gpt-4o-mini")
    guard.close()


def test_something_that_is_not_a_layer_is_refused(tmp_path: Path) -> None:
    """layers= names the object that lacks the protocol."""
    with pytest.raises(costguard.ConfigurationError, match="not a layer"):
        costguard.CostGuardClient(ledger=tmp_path / "l.db", layers=[object()])  # type: ignore[list-item]


def test_api_keys_never_reach_the_ledger(tmp_path: Path) -> None:
    """The ledger file holds at most a keyed hash and the key's last four characters."""
    key = "sk-proj-SECRETSECRETSECRET-abcd"
    guard = costguard.CostGuardClient(ledger=tmp_path / "l.db")
    guard.wrap(FakeProvider().openai(api_key=key)).chat.completions.create(
        model="gpt-4o-mini", messages=HI
    )
    [row] = guard.ledger.records()
    assert row.api_key_last4 == "abcd"
    assert row.api_key_hash and key not in row.api_key_hash
    journals = [f.read_bytes() for f in tmp_path.rglob("*.jsonl")]
    assert journals and all(b"SECRETSECRET" not in j for j in journals)
    guard.close()
    for file in tmp_path.rglob("*"):
        assert file.is_dir() or b"SECRETSECRET" not in file.read_bytes()


def test_an_unwritable_ledger_path_fails_at_construction(tmp_path: Path) -> None:
    """A ledger under a regular file is a LedgerError when the guard is built."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(costguard.LedgerError, match="file"):
        costguard.CostGuardClient(ledger=blocker / "ledger.db")


def test_what_a_layer_sets_on_a_streaming_outcome_reaches_the_ledger(tmp_path: Path) -> None:
    """Attempts and savings set by an inner layer on a stream's outcome are recorded."""
    from decimal import Decimal

    class Mark:
        def handle(self, call: costguard.Call, call_next: costguard.Handler) -> costguard.Outcome:
            outcome = call_next(call)
            outcome.attempts, outcome.saved_usd = 2, Decimal("0.5")
            return outcome

        async def ahandle(
            self, call: costguard.Call, call_next: costguard.AsyncHandler
        ) -> costguard.Outcome:
            return await call_next(call)

    guard = costguard.CostGuardClient(ledger=tmp_path / "l.db", layers=[Mark()])
    client = guard.wrap(FakeProvider().openai())
    list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    [row] = guard.ledger.records()
    assert (row.attempts, row.saved_usd, row.status) == (2, Decimal("0.5"), "ok")
    assert row.usage.output_tokens > 0
    guard.close()


def test_the_ledger_keeps_the_output_limit_asked_for_and_sent(
    guard: costguard.CostGuardClient,
) -> None:
    """requested_max_tokens and sent_max_tokens record each API's own limit parameter."""
    client = guard.wrap(FakeProvider().openai())
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_completion_tokens=50)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    limited, unlimited = guard.ledger.records()
    assert (limited.requested_max_tokens, limited.sent_max_tokens) == (50, 50)
    assert (unlimited.requested_max_tokens, unlimited.sent_max_tokens) == (None, None)


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (
            lambda p: costguard.CostGuardClient(
                ledger=p, cache=None, budgets=[costguard.Budget(1)], on_alert=5
            ),
            "on_alert",
        ),
        (lambda p: costguard.OTel(clock=5), "OTel(clock"),
        (lambda p: costguard.BatchOptions(sleep="soon"), "BatchOptions.sleep"),
        (lambda p: costguard.BatchOptions(on_progress=1), "BatchOptions.on_progress"),
        (lambda p: costguard.RateLimits({"free": 1}, sleep=None), "RateLimits(sleep"),
        (lambda p: costguard.Retry(sleep=3), "Retry(sleep"),
        (
            lambda p: costguard.Cascade(cheap="gpt-4o-mini", strong="gpt-4o", validator="x"),
            "Cascade(validator",
        ),
    ],
)
def test_a_non_callable_where_a_callable_is_expected_is_named(
    tmp_path: Path, make: Any, where: str
) -> None:
    """Each hook that must be callable refuses anything else with ConfigurationError naming it."""
    with pytest.raises(costguard.ConfigurationError, match=re.escape(where)):
        make(tmp_path / "l.db")
