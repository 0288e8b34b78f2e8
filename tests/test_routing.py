"""Router, ComplexityRouter and RouteLayer: rules, tiers, complexity, fit, and the ledger."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costguard
from costguard._call import Call, ClientInfo, Outcome
from costguard._chain import Handler
from costguard._scope import Scope
from costguard.layers.route import RouteLayer
from costguard.providers import Operation, operations_for
from costguard.routing import ComplexityRouter, Route, Router, score_complexity
from costguard.routing._complexity import DEFAULT_THRESHOLD
from costguard.testing import FakeProvider

TABLE = costguard.PriceTable.default()
OPS: dict[str, Operation] = {
    op.name: op for provider in ("openai", "anthropic") for op in operations_for(provider)
}
DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "complexity_prompts.jsonl"

EASY = "Translate 'good morning' into Spanish."
HARD = (
    "Design a rate limiter for a multi-region API gateway. Compare token bucket and sliding "
    "window approaches step by step, explain the trade-offs, and prove the burst bound."
)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def issue_router(**overrides: Any) -> Router:
    """The router from the issue."""
    config: dict[str, Any] = {
        "rules": {"classify": "gpt-4o-mini", "hero-image-copy": "gpt-4o"},
        "tiers": {"draft": {"gpt-4o": "gpt-4o-mini", "claude-opus-4-5": "claude-haiku-4-5"}},
        "complexity": ComplexityRouter(cheap="gpt-4o-mini", strong="gpt-4o", threshold=0.5),
    }
    return Router(**(config | overrides))


MakeGuard = Callable[..., costguard.CostGuardClient]


@pytest.fixture
def make_guard(tmp_path: Path) -> Iterator[MakeGuard]:
    guards: list[costguard.CostGuardClient] = []

    def make(
        router: Router,
        prices: costguard.PriceTable = TABLE,
        inner: tuple[Any, ...] = (),
    ) -> costguard.CostGuardClient:
        guard = costguard.CostGuardClient(
            ledger=tmp_path / f"l{len(guards)}.db",
            prices=prices,
            cache=None,
            layers=[RouteLayer(router, prices), *inner],
        )
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.close()


def last(guard: costguard.CostGuardClient) -> tuple[str | None, str | None, str | None]:
    row = guard.ledger.records()[-1]
    return row.requested_model, row.served_model, row.route


def call_for(
    op_name: str,
    params: Mapping[str, Any],
    *,
    feature: str | None = None,
    tier: str | None = None,
) -> Call:
    op = OPS[op_name]
    return Call(
        op,
        params,
        lambda **kwargs: None,
        ClientInfo(op.provider, "https://api.example", False),
        Scope(feature=feature, tier=tier),
    )


# -- rules ------------------------------------------------------------------------------------


def test_a_feature_rule_sends_the_call_to_its_model(make_guard: MakeGuard) -> None:
    """Under scope(feature="classify") the call goes to the rule's model, recorded as a rule."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(model="gpt-4o", messages=user(HARD))
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    assert last(guard) == ("gpt-4o", "gpt-4o-mini", "rule:classify")


def test_a_call_outside_every_rule_keeps_its_model(make_guard: MakeGuard) -> None:
    """A feature with no rule, and no complexity router, leaves the model alone."""
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="chat"):
        client.chat.completions.create(model="gpt-4o", messages=user(EASY))
    assert fake.requests[-1].json["model"] == "gpt-4o"
    assert last(guard) == ("gpt-4o", "gpt-4o", None)


def test_an_unchanged_call_is_passed_on_as_the_same_object() -> None:
    """When routing changes nothing, RouteLayer hands the very same Call inwards."""
    layer = RouteLayer(Router(rules={"classify": "gpt-4o-mini"}), TABLE)
    call = call_for("chat.completions.create", {"model": "gpt-4o", "messages": user("hi")})
    seen: list[Call] = []

    def record(inner: Call) -> Outcome:
        seen.append(inner)
        return Outcome(response=None)

    outcome = layer.handle(call, record)
    assert seen[0] is call and outcome.route is None


def test_a_rule_for_another_providers_model_does_not_apply(make_guard: MakeGuard) -> None:
    """An Anthropic call under a feature whose rule names an OpenAI model is sent unchanged."""
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}))
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    with guard.scope(feature="classify"):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=user("hi"))
    assert fake.requests[-1].json["model"] == "claude-sonnet-4-6"
    assert last(guard) == ("claude-sonnet-4-6", "claude-sonnet-4-6", None)


def test_rules_apply_to_the_responses_api(make_guard: MakeGuard) -> None:
    """responses.create is routed like chat: the rule's model is sent."""
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.responses.create(model="gpt-4o", input="Is this spam? 'Win a cruise now'")
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    assert last(guard)[2] == "rule:classify"


def test_embeddings_are_never_routed(make_guard: MakeGuard) -> None:
    """An embeddings call under a routed feature keeps its model."""
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert fake.requests[-1].json["model"] == "text-embedding-3-small"
    assert last(guard)[2] is None


# -- tiers ------------------------------------------------------------------------------------


def test_a_tier_maps_premium_models_to_their_cheaper_siblings(make_guard: MakeGuard) -> None:
    """Under tier "draft", gpt-4o goes to gpt-4o-mini and claude-opus-4-5 to claude-haiku-4-5."""
    guard = make_guard(issue_router(complexity=None))
    fake = FakeProvider()
    client, claude = guard.wrap(fake.openai()), guard.wrap(fake.anthropic())
    with guard.scope(tier="draft"):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
        assert fake.requests[-1].json["model"] == "gpt-4o-mini"
        assert last(guard) == ("gpt-4o", "gpt-4o-mini", "tier:draft")
        claude.messages.create(model="claude-opus-4-5", max_tokens=100, messages=user("hi"))
        assert fake.requests[-1].json["model"] == "claude-haiku-4-5"
        assert last(guard) == ("claude-opus-4-5", "claude-haiku-4-5", "tier:draft")


@pytest.mark.parametrize("tier", ["final", "free", "pro"])
def test_a_tier_the_router_does_not_list_is_ignored_silently(
    make_guard: MakeGuard, tier: str
) -> None:
    """Tiers not in the router (also rate-limit plans like "free") change nothing and warn
    nothing (warnings are errors here)."""
    guard = make_guard(issue_router(complexity=None))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tier=tier):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert fake.requests[-1].json["model"] == "gpt-4o"
    assert last(guard) == ("gpt-4o", "gpt-4o", None)


def test_a_tier_maps_a_dated_snapshot_of_a_listed_model(make_guard: MakeGuard) -> None:
    """A snapshot name (gpt-4o-2024-11-20) is mapped by its family's tier entry (gpt-4o)."""
    guard = make_guard(issue_router(complexity=None))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tier="draft"):
        client.chat.completions.create(model="gpt-4o-2024-11-20", messages=user("hi"))
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"


def test_a_model_the_tier_does_not_map_keeps_its_name(make_guard: MakeGuard) -> None:
    """Under tier "draft", a model that is not one of the tier's keys is sent as asked."""
    guard = make_guard(issue_router(complexity=None))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tier="draft"):
        client.chat.completions.create(model="gpt-4.1-mini", messages=user("hi"))
    assert fake.requests[-1].json["model"] == "gpt-4.1-mini"
    assert last(guard)[2] is None


# -- complexity -------------------------------------------------------------------------------


def test_an_easy_prompt_goes_to_the_cheap_model(make_guard: MakeGuard) -> None:
    """An easy prompt asked of gpt-4o is sent to the cheap model, with its score recorded."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.chat.completions.create(model="gpt-4o", messages=user(EASY))
    score = score_complexity(EASY)
    assert score < 0.5
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    assert last(guard) == ("gpt-4o", "gpt-4o-mini", f"complexity:{score:.2f}")


def test_a_hard_prompt_goes_to_the_strong_model(make_guard: MakeGuard) -> None:
    """A hard prompt asked of gpt-4o-mini is sent to the strong model."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.chat.completions.create(model="gpt-4o-mini", messages=user(HARD))
    score = score_complexity(HARD)
    assert score >= 0.5
    assert fake.requests[-1].json["model"] == "gpt-4o"
    assert last(guard) == ("gpt-4o-mini", "gpt-4o", f"complexity:{score:.2f}")


def test_complexity_that_picks_the_requested_model_records_nothing(make_guard: MakeGuard) -> None:
    """A hard prompt asked of the strong model is sent as asked, with no route."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o", messages=user(HARD))
    assert last(guard) == ("gpt-4o", "gpt-4o", None)


def test_the_threshold_decides_cheap_below_and_strong_at_or_above() -> None:
    """A score equal to the threshold goes to the strong model; just below, to the cheap one."""
    call = call_for("chat.completions.create", {"model": "gpt-4o", "messages": user(EASY)})
    score = score_complexity(EASY)
    assert ComplexityRouter("gpt-4o-mini", "gpt-4o", threshold=score).choose(call)[0] == "gpt-4o"
    below = ComplexityRouter("gpt-4o-mini", "gpt-4o", threshold=min(1.0, score + 0.0001))
    assert below.choose(call)[0] == "gpt-4o-mini"


def test_a_complexity_router_per_provider_routes_claude_calls(make_guard: MakeGuard) -> None:
    """With one ComplexityRouter per provider, an Anthropic call uses the Claude pair."""
    router = Router(
        complexity=[
            ComplexityRouter("gpt-4o-mini", "gpt-4o"),
            ComplexityRouter("claude-haiku-4-5", "claude-sonnet-4-6"),
        ]
    )
    guard = make_guard(router)
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=user(EASY))
    assert fake.requests[-1].json["model"] == "claude-haiku-4-5"
    claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=user(HARD))
    assert fake.requests[-1].json["model"] == "claude-sonnet-4-6"


def test_an_openai_complexity_router_leaves_claude_calls_alone(make_guard: MakeGuard) -> None:
    """A complexity router of OpenAI models does not touch calls through an Anthropic client."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=user(EASY))
    assert last(guard) == ("claude-sonnet-4-6", "claude-sonnet-4-6", None)


def test_complexity_reads_the_latest_user_turn_and_the_depth() -> None:
    """The score is that of the last user message, with every user turn counted as depth."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": HARD},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": [{"type": "text", "text": EASY}]},
    ]
    call = call_for("chat.completions.create", {"model": "gpt-4o", "messages": messages})
    router = ComplexityRouter("gpt-4o-mini", "gpt-4o")
    assert router.score(call) == score_complexity(EASY, turns=2)


# -- precedence -------------------------------------------------------------------------------


def test_a_rule_wins_over_complexity(make_guard: MakeGuard) -> None:
    """A hard prompt under a feature rule goes to the rule's model; complexity is not asked."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(model="gpt-4o", messages=user(HARD))
    assert last(guard) == ("gpt-4o", "gpt-4o-mini", "rule:classify")


def test_the_tier_applies_after_a_rule(make_guard: MakeGuard) -> None:
    """A rule to gpt-4o under tier "draft" ends at gpt-4o-mini, both steps recorded."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="hero-image-copy", tier="draft"):
        client.chat.completions.create(model="gpt-4.1", messages=user("Write a tagline."))
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    assert last(guard) == ("gpt-4.1", "gpt-4o-mini", "rule:hero-image-copy+tier:draft")


def test_the_tier_applies_after_complexity(make_guard: MakeGuard) -> None:
    """A hard prompt routed to the strong model is then mapped by the tier."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tier="draft"):
        client.chat.completions.create(model="gpt-4.1", messages=user(HARD))
    score = score_complexity(HARD)
    assert last(guard) == ("gpt-4.1", "gpt-4o-mini", f"complexity:{score:.2f}+tier:draft")


def test_steps_that_end_at_the_requested_model_record_nothing(make_guard: MakeGuard) -> None:
    """A rule to gpt-4o mapped back by the tier to the requested gpt-4o-mini records no route."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="hero-image-copy", tier="draft"):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    assert last(guard) == ("gpt-4o-mini", "gpt-4o-mini", None)


def test_an_inner_layers_route_is_kept_after_the_routers(make_guard: MakeGuard) -> None:
    """A route set by a layer inside the router (a fallback, say) follows the router's reason."""

    class Fallback:
        def handle(self, call: Call, call_next: Handler) -> Outcome:
            outcome = call_next(call)
            outcome.route = "fallback:gpt-4.1-mini"
            return outcome

        async def ahandle(self, call: Call, call_next: Any) -> Outcome:
            raise NotImplementedError

    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}), inner=(Fallback(),))
    with guard.scope(feature="classify"):
        guard.wrap(FakeProvider().openai()).chat.completions.create(
            model="gpt-4o", messages=user("hi")
        )
    assert last(guard)[2] == "rule:classify+fallback:gpt-4.1-mini"


# -- fitting the request ----------------------------------------------------------------------

#: gpt-4o-mini with a 60-token window and gpt-4.1-nano with 100 output tokens: small requests
#: then exercise the fit step.
SMALL = TABLE.override(
    "gpt-4o-mini", input="0.15", output="0.6", context_window=60, max_output_tokens=16384
).override(
    "gpt-4.1-nano", input="0.1", output="0.4", context_window=1_047_576, max_output_tokens=100
)
LONG = "Please classify the following customer message. " + "It arrived broken. " * 40


def test_a_routed_model_that_cannot_hold_the_prompt_is_replaced(make_guard: MakeGuard) -> None:
    """When the rule's model is too small, the cheapest fitting model of the pool is sent."""
    router = Router(rules={"classify": "gpt-4o-mini"}, fallbacks=["gpt-4.1-mini"])
    guard = make_guard(router, SMALL)
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(model="gpt-4.1", messages=user(LONG))
    assert fake.requests[-1].json["model"] == "gpt-4.1-mini"
    assert last(guard) == ("gpt-4.1", "gpt-4.1-mini", "rule:classify+fit:context")


def test_the_fit_counts_the_output_limit_too(make_guard: MakeGuard) -> None:
    """A prompt that fits alone but not with max_tokens added falls back, as "fit:context"."""
    router = Router(rules={"classify": "gpt-4o-mini"}, fallbacks=["gpt-4.1-mini"])
    guard = make_guard(router, SMALL)
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(model="gpt-4.1", messages=user("hi"), max_tokens=58)
    assert last(guard) == ("gpt-4.1", "gpt-4.1-mini", "rule:classify+fit:context")


def test_an_output_limit_above_the_models_maximum_falls_back(make_guard: MakeGuard) -> None:
    """max_tokens above the routed model's maximum output picks another model ("fit:output")."""
    router = Router(rules={"classify": "gpt-4.1-nano"}, fallbacks=["gpt-4.1-mini"])
    guard = make_guard(router, SMALL)
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(
            model="gpt-4.1", messages=user("hi"), max_completion_tokens=500
        )
    assert last(guard) == ("gpt-4.1", "gpt-4.1-mini", "rule:classify+fit:output")


def test_the_fit_falls_back_to_the_requested_model_without_a_route(
    make_guard: MakeGuard,
) -> None:
    """When the cheapest model that fits is the requested one, it is sent and no route is kept."""
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}), SMALL)
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(model="gpt-4.1", messages=user(LONG))
    assert last(guard) == ("gpt-4.1", "gpt-4.1", None)


def test_a_request_no_model_can_hold_is_refused_before_sending(make_guard: MakeGuard) -> None:
    """If no model of the pool fits, InvalidRequestError names the count and nothing is sent."""
    prices = SMALL.override("gpt-4o", input="2.5", output="10", context_window=60)
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}), prices)
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with (
        guard.scope(feature="classify"),
        pytest.raises(costguard.InvalidRequestError, match=r"-token prompt") as caught,
    ):
        client.chat.completions.create(model="gpt-4o", messages=user(LONG))
    assert "gpt-4o-mini (60 context" in str(caught.value)
    assert caught.value.field == "messages"
    assert fake.requests == []
    assert guard.ledger.records()[-1].status == "error"


def test_an_unpriced_requested_model_is_never_a_fallback() -> None:
    """With an unpriced requested model, the fit step never falls back to it."""
    router = Router(rules={"classify": "gpt-4o-mini"})
    call = call_for(
        "chat.completions.create",
        {"model": "my-own-model", "messages": user(LONG)},
        feature="classify",
    )
    with pytest.raises(costguard.InvalidRequestError, match=r"gpt-4o-mini \(60 context"):
        router.plan(call, SMALL)
    with_room = Router(rules={"classify": "gpt-4o-mini"}, fallbacks=["gpt-4.1-mini"])
    assert with_room.plan(call, SMALL).model == "gpt-4.1-mini"


def test_the_fit_never_picks_a_model_the_api_cannot_serve() -> None:
    """A Responses-only fallback is skipped for a Chat Completions call."""
    router = Router(rules={"classify": "gpt-4o-mini"}, fallbacks=["gpt-5-pro", "gpt-4.1"])
    call = call_for(
        "chat.completions.create",
        {"model": "gpt-4o", "messages": user(LONG)},
        feature="classify",
    )
    prices = SMALL.override("gpt-4o", input="2.5", output="10", context_window=60)
    assert router.plan(call, prices).model == "gpt-4.1"


def test_select_alone_does_not_check_the_fit() -> None:
    """Router.select returns the rule's model even when it could not hold the request."""
    router = Router(rules={"classify": "gpt-4o-mini"})
    call = call_for(
        "chat.completions.create", {"model": "gpt-4o", "messages": user(LONG)}, feature="classify"
    )
    assert router.select(call, SMALL) == Route("gpt-4o", "gpt-4o-mini", ("rule:classify",))


# -- streams and async ------------------------------------------------------------------------


def test_a_routed_openai_stream_records_the_route(make_guard: MakeGuard) -> None:
    """A streamed chat call is routed, and its ledger row (written at the end) has the route."""
    guard = make_guard(Router(rules={"classify": "gpt-4o-mini"}))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=user("hi"),
            stream=True,
            stream_options={"include_usage": True},
        )
        list(stream)
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    row = guard.ledger.records()[-1]
    assert (row.requested_model, row.served_model, row.route) == (
        "gpt-4o",
        "gpt-4o-mini",
        "rule:classify",
    )
    assert row.cost_usd is not None and row.cost_usd > 0


def test_a_routed_anthropic_message_stream_records_the_route(make_guard: MakeGuard) -> None:
    """messages.stream() under tier "draft" is sent to the cheaper model, route recorded."""
    guard = make_guard(issue_router(complexity=None))
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    with (
        guard.scope(tier="draft"),
        claude.messages.stream(model="claude-opus-4-5", max_tokens=100, messages=user("hi")) as s,
    ):
        s.get_final_message()
    assert fake.requests[-1].json["model"] == "claude-haiku-4-5"
    assert last(guard) == ("claude-opus-4-5", "claude-haiku-4-5", "tier:draft")


def test_async_clients_are_routed_the_same_way(make_guard: MakeGuard) -> None:
    """AsyncOpenAI and AsyncAnthropic calls, plain and streamed, are routed and recorded."""
    guard = make_guard(issue_router())
    fake = FakeProvider()
    client, claude = guard.wrap(fake.async_openai()), guard.wrap(fake.async_anthropic())

    async def main() -> None:
        with guard.scope(feature="classify"):
            await client.chat.completions.create(model="gpt-4o", messages=user(HARD))
        assert last(guard) == ("gpt-4o", "gpt-4o-mini", "rule:classify")
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=user(HARD),
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in stream:
            pass
        assert last(guard)[1:] == ("gpt-4o", f"complexity:{score_complexity(HARD):.2f}")
        with guard.scope(tier="draft"):
            await claude.messages.create(
                model="claude-opus-4-5", max_tokens=100, messages=user("hi")
            )
        assert last(guard) == ("claude-opus-4-5", "claude-haiku-4-5", "tier:draft")

    asyncio.run(main())


# -- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "named"),
    [
        (lambda: Router(rules={"classify": "gpt-4o-minii"}), "gpt-4o-minii"),
        (lambda: Router(tiers={"draft": {"gpt-4o": "gpt-9-mini"}}), "gpt-9-mini"),
        (lambda: Router(tiers={"draft": {"gpt-9": "gpt-4o-mini"}}), "gpt-9"),
        (lambda: Router(complexity=ComplexityRouter("cheapo", "gpt-4o")), "cheapo"),
        (lambda: Router(complexity=ComplexityRouter("gpt-4o-mini", "strongo")), "strongo"),
        (lambda: Router(fallbacks=["gpt-nope"]), "gpt-nope"),
        (lambda: Router(rules={"search": "text-embedding-3-small"}), "text-embedding-3-small"),
    ],
)
def test_a_model_the_price_table_cannot_route_to_is_refused_at_construction(
    router: Callable[[], Router], named: str
) -> None:
    """RouteLayer refuses a router naming an unpriced (or embedding) model, naming it."""
    with pytest.raises(costguard.ConfigurationError, match=repr(named)):
        RouteLayer(router(), TABLE)


def test_a_tier_mapping_across_providers_is_refused() -> None:
    """A tier that maps an OpenAI model to a Claude model is a ConfigurationError."""
    router = Router(tiers={"draft": {"gpt-4o": "claude-haiku-4-5"}})
    with pytest.raises(costguard.ConfigurationError, match="one provider"):
        RouteLayer(router, TABLE)


def test_a_complexity_router_across_providers_is_refused() -> None:
    """cheap and strong of different providers are a ConfigurationError naming both."""
    router = Router(complexity=ComplexityRouter("gpt-4o-mini", "claude-sonnet-4-6"))
    with pytest.raises(costguard.ConfigurationError, match=r"'gpt-4o-mini'.*'claude-sonnet-4-6'"):
        RouteLayer(router, TABLE)


def test_two_complexity_routers_for_one_provider_are_refused() -> None:
    """Only one ComplexityRouter per provider may be given."""
    router = Router(
        complexity=[ComplexityRouter("gpt-4o-mini", "gpt-4o"), ComplexityRouter("gpt-4o", "o3")]
    )
    with pytest.raises(costguard.ConfigurationError, match="two ComplexityRouters for openai"):
        RouteLayer(router, TABLE)


@pytest.mark.parametrize("threshold", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_a_threshold_outside_zero_to_one_is_refused(threshold: Any) -> None:
    """ComplexityRouter's threshold must be a number in [0, 1]."""
    with pytest.raises(costguard.ConfigurationError, match="threshold"):
        ComplexityRouter("gpt-4o-mini", "gpt-4o", threshold=threshold)


@pytest.mark.parametrize("threshold", [0, 0.0, 0.5, 1, 1.0])
def test_thresholds_at_the_ends_are_accepted(threshold: float) -> None:
    """0 and 1 themselves are valid thresholds."""
    assert ComplexityRouter("gpt-4o-mini", "gpt-4o", threshold=threshold).threshold == threshold


@pytest.mark.parametrize(
    "build",
    [
        lambda: Router(rules={"": "gpt-4o"}),
        lambda: Router(rules={"classify": ""}),
        lambda: Router(rules={"classify": "  "}),
        lambda: Router(tiers={"": {"gpt-4o": "gpt-4o-mini"}}),
        lambda: Router(tiers={"draft": {"gpt-4o": ""}}),
        lambda: Router(tiers={"draft": "gpt-4o-mini"}),  # type: ignore[dict-item]
        lambda: Router(rules=["classify"]),  # type: ignore[arg-type]
        lambda: Router(complexity="gpt-4o"),  # type: ignore[arg-type]
        lambda: Router(fallbacks="gpt-4o"),
        lambda: ComplexityRouter("", "gpt-4o"),
        lambda: ComplexityRouter("gpt-4o-mini", None),  # type: ignore[arg-type]
        lambda: RouteLayer(object(), TABLE),  # type: ignore[arg-type]
    ],
)
def test_empty_names_and_wrong_shapes_are_refused(build: Callable[[], object]) -> None:
    """Empty names, non-mapping rules or tiers, and non-routers raise ConfigurationError."""
    with pytest.raises(costguard.ConfigurationError):
        build()


def test_the_default_threshold_is_the_documented_one() -> None:
    """ComplexityRouter's default threshold is DEFAULT_THRESHOLD (0.5, see docs/routing.md)."""
    assert ComplexityRouter("gpt-4o-mini", "gpt-4o").threshold == DEFAULT_THRESHOLD == 0.5


# -- the score --------------------------------------------------------------------------------

HARD_CUES = [
    "Prove it step by step.",
    "Compare the trade-offs and explain why.",
    "Design the architecture and analyse the risks.",
    "Return JSON that must match this schema exactly.",
    "Write a detailed 1500-word essay.",
    "```python\ndef f(x):\n    return x\n```",
    'Traceback (most recent call last):\n  File "a.py", line 3\nValueError: bad',
    r"Evaluate $\int_0^1 x^2 \, dx$ and derive the integral.",
]


@given(
    st.text(max_size=2000),
    st.integers(min_value=-5, max_value=500),
    st.one_of(st.none(), st.integers(min_value=-10, max_value=10**7)),
    st.booleans(),
)
def test_the_score_is_in_zero_to_one_and_deterministic(
    text: str, turns: int, max_tokens: int | None, structured: bool
) -> None:
    """Any prompt scores within [0, 1], and the same input always scores the same."""
    score = score_complexity(text, turns=turns, max_tokens=max_tokens, structured=structured)
    assert 0.0 <= score <= 1.0
    assert score == score_complexity(
        text, turns=turns, max_tokens=max_tokens, structured=structured
    )


@given(st.text(max_size=1200), st.lists(st.sampled_from(HARD_CUES), min_size=1, max_size=4))
def test_adding_a_paragraph_of_hard_cues_never_lowers_the_score(text: str, cues: list[str]) -> None:
    """Appending paragraphs of hard cues to a prompt never lowers its score."""
    before = score_complexity(text)
    for cue in cues:
        text = f"{text}\n\n{cue}"
        after = score_complexity(text)
        assert after >= before
        before = after


@given(
    st.text(max_size=300),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=0, max_value=50),
    st.integers(min_value=1, max_value=200_000),
    st.integers(min_value=0, max_value=200_000),
)
def test_deeper_conversations_and_larger_outputs_never_lower_the_score(
    text: str, turns: int, more_turns: int, max_tokens: int, more_tokens: int
) -> None:
    """More user turns, a larger max_tokens, or a structured output never lower the score."""
    base = score_complexity(text, turns=turns, max_tokens=max_tokens)
    assert score_complexity(text, turns=turns + more_turns, max_tokens=max_tokens) >= base
    assert score_complexity(text, turns=turns, max_tokens=max_tokens + more_tokens) >= base
    assert score_complexity(text, turns=turns, max_tokens=max_tokens, structured=True) >= base


def test_a_long_prompt_is_scored_from_its_two_ends() -> None:
    """A very long prompt is read at its two ends: its middle does not change its score."""
    head, tail = "Summarise this report.\n\n", "\n\nAnswer in one sentence."
    a = head + "x " * 20_000 + "prove compare design " * 10 + "y " * 20_000 + tail
    b = head + "x " * 20_000 + "hello there friend " * 10 + "y " * 20_000 + tail
    assert score_complexity(a) == score_complexity(b)


# -- the router as a whole ---------------------------------------------------------------------

MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "my-own-model", "claude-opus-4-5"]


@given(
    st.sampled_from(["chat.completions.create", "responses.create", "messages.create"]),
    st.sampled_from(MODELS),
    st.one_of(st.none(), st.sampled_from(["classify", "hero-image-copy", "chat"])),
    st.one_of(st.none(), st.sampled_from(["draft", "final", "free"])),
    st.sampled_from([EASY, HARD, "hi"]),
)
def test_the_router_only_ever_sends_priced_models_of_the_calls_provider(
    op_name: str, model: str, feature: str | None, tier: str | None, text: str
) -> None:
    """Whatever the scope, a changed model is priced and of the call's provider, and the
    route is set exactly when the model changed."""
    router = issue_router(fallbacks=["gpt-4.1-mini"])
    key = "input" if op_name == "responses.create" else "messages"
    params = {"model": model, key: user(text), "max_tokens": 100}
    if op_name == "responses.create":
        params = {"model": model, "input": text}
    route = router.plan(call_for(op_name, params, feature=feature, tier=tier), TABLE)
    assert (route.reason is None) == (route.model == model)
    if route.model != model:
        assert route.model is not None
        price = TABLE.get(route.model)
        assert price is not None and price.provider == OPS[op_name].provider


# -- the labelled set -------------------------------------------------------------------------


def test_the_labelled_prompt_set_is_well_formed_and_balanced() -> None:
    """complexity_prompts.jsonl has 200+ labelled prompts, 40-60% hard, no duplicates."""
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) >= 200
    assert all(row["label"] in ("easy", "hard") and row["prompt"].strip() for row in rows)
    assert 0.4 <= sum(row["label"] == "hard" for row in rows) / len(rows) <= 0.6
    assert len({row["prompt"] for row in rows}) == len(rows)
    assert {row["split"] for row in rows} == {"tune", "holdout"}


def test_the_default_threshold_agrees_with_most_held_out_labels() -> None:
    """At the default threshold, at least 85% of the held-out prompts are routed as labelled."""
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    held = [row for row in rows if row["split"] == "holdout"]
    agree = sum(
        (score_complexity(row["prompt"]) >= DEFAULT_THRESHOLD) == (row["label"] == "hard")
        for row in held
    )
    assert agree / len(held) >= 0.85
