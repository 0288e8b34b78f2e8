"""Spend control as a user configures it on CostGuardClient."""

from __future__ import annotations

from pathlib import Path

import pytest

import costguard
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


def test_rate_limits_on_the_guard_refuse_the_call_past_the_tier(tmp_path: Path) -> None:
    """rate_limits= refuses a free-tier user's third call in the hour; nothing is sent."""
    now = [1_800_000_000.0]
    limits = costguard.RateLimits(tiers={"free": 2, "pro": 100}, per="hour", clock=lambda: now[0])
    with costguard.CostGuardClient(ledger=tmp_path / "l.db", rate_limits=limits) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        with guard.scope(user="u42", tier="free"):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
            with pytest.raises(costguard.RateLimitedError) as caught:
                client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert caught.value.retry_after == pytest.approx(3600)
        assert len(fake.requests) == 1  # the second call was a cache hit, still counted
        with guard.scope(user="u42", tier="gold"), pytest.raises(costguard.ConfigurationError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)


def test_a_cap_on_the_guard_reaches_the_request_the_budget_and_the_ledger(tmp_path: Path) -> None:
    """max_tokens=Cap(...) fills in the limit the SDK sends, and the budget reserves the capped
    worst case (so a call that would not fit uncapped goes through)."""
    cap = costguard.Cap(default=1024, per_feature={"classify": 5})
    budget = costguard.Budget("0.0005")  # gpt-4o-mini's uncapped worst case would not fit
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, max_tokens=cap, budgets=[budget]
    ) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        with guard.scope(feature="classify"):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert fake.requests[-1].json["max_completion_tokens"] == 5
        [row] = guard.ledger.records()
        assert (row.requested_max_tokens, row.sent_max_tokens) == (None, 5)
        assert guard.budget_status()[0].spent == row.cost_usd


def test_with_retry_the_wrapped_client_keeps_its_own_setting_for_unguarded_endpoints(
    tmp_path: Path,
) -> None:
    """retry= takes over guarded calls only: the client still reads max_retries=3, and a
    guarded call makes exactly max_retries + 1 attempts."""
    waits: list[float] = []
    retry = costguard.Retry(sleep=waits.append, jitter=lambda: 0.0)
    with costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None, retry=retry) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai(max_retries=3))
        assert client.max_retries == 3
        fake.fail(503, times=3)
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert len(fake.requests) == 4 and len(waits) == 3
        [row] = guard.ledger.records()
        assert (row.attempts, row.status) == (4, "ok")


def test_a_router_on_the_guard_sends_the_cheaper_model_and_the_ledger_says_why(
    tmp_path: Path,
) -> None:
    """router= rewrites the model for a feature rule; the ledger keeps requested, served, why."""
    router = costguard.Router(rules={"classify": "gpt-4o-mini"})
    with costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None, router=router) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        with guard.scope(feature="classify"):
            client.chat.completions.create(model="gpt-4o", messages=HI)
        assert fake.requests[-1].json["model"] == "gpt-4o-mini"
        [row] = guard.ledger.records()
        assert (row.requested_model, row.route) == ("gpt-4o", "rule:classify")
        assert row.served_model is not None and row.served_model.startswith("gpt-4o-mini")


def test_a_dead_openai_model_falls_back_to_claude_and_the_caller_still_gets_a_chat_completion(
    tmp_path: Path,
) -> None:
    """fallbacks= crosses providers: the chat request is translated for Claude, sent through the
    wrapped Anthropic client, priced at Claude's rates, and answered as a ChatCompletion."""
    from openai.types.chat import ChatCompletion

    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, fallbacks={"gpt-4o": ["claude-haiku-4-5"]}
    ) as guard:
        fake = FakeProvider()
        gpt = guard.wrap(fake.openai())
        guard.wrap(fake.anthropic())
        fake.fail(503, provider="openai")
        answer = gpt.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "system", "content": "Be brief."}, *HI],
            max_tokens=100,
        )
        assert type(answer) is ChatCompletion and answer.choices[0].message.content
        assert [r.provider for r in fake.requests] == ["openai", "anthropic"]
        assert fake.requests[-1].json["system"] == "Be brief."
        [row] = guard.ledger.records()
        assert (row.requested_model, row.route) == ("gpt-4o", "fallback:claude-haiku-4-5")
        assert row.served_model == "claude-haiku-4-5" and row.status == "ok"
        price = guard.prices.require("claude-haiku-4-5")
        assert (
            row.cost_usd
            == (
                row.usage.input_tokens * price.base.input
                + row.usage.output_tokens * price.base.output
            )
            / 1_000_000
        )


def test_a_fallback_that_cannot_be_reached_is_skipped_with_its_reason(tmp_path: Path) -> None:
    """With no Anthropic client wrapped, or an untranslatable request, the fallback is skipped
    and FallbackExhaustedError lists why, with the provider's error as its cause."""
    import openai

    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, fallbacks={"gpt-4o": ["claude-haiku-4-5"]}
    ) as guard:
        fake = FakeProvider()
        gpt = guard.wrap(fake.openai())
        fake.fail(503)
        with pytest.raises(costguard.FallbackExhaustedError) as caught:
            gpt.chat.completions.create(model="gpt-4o", messages=HI)
        assert isinstance(caught.value.__cause__, openai.InternalServerError)
        assert "no anthropic client" in str(caught.value.attempts[-1].skipped)
        guard.wrap(fake.anthropic())
        fake.fail(503)
        with pytest.raises(costguard.FallbackExhaustedError) as caught:
            gpt.chat.completions.create(model="gpt-4o", messages=HI, n=2)
        assert "n=2" in str(caught.value.attempts[-1].skipped)
