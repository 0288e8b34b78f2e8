"""FallbackLayer: which model answers when the requested one fails, and what is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import costguard
from _helpers import Clock
from costguard._call import Call
from costguard._errors import ConfigurationError, FallbackAttempt, FallbackExhaustedError
from costguard.layers.fallback import FallbackLayer
from costguard.resilience import Retry
from costguard.resilience._fallback import Cooldowns, expand, move_on_reason
from costguard.testing import FakeProvider

HI: Any = [{"role": "user", "content": "hi"}]
PRICES = costguard.PriceTable.default()
CHAIN = {"gpt-4o": ["gpt-4o-mini", "gpt-4.1-mini"]}
CONTEXT_MESSAGE = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 130000 tokens. Please reduce the length of the messages."
)


MakeGuard = Callable[..., costguard.CostGuardClient]


@pytest.fixture
def make_guard(tmp_path: Path) -> Iterator[MakeGuard]:
    guards: list[costguard.CostGuardClient] = []

    def make(layer: FallbackLayer, **options: Any) -> costguard.CostGuardClient:
        guard = costguard.CostGuardClient(
            ledger=tmp_path / f"l{len(guards)}.db", cache=None, layers=[layer], **options
        )
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.close()


def sent_models(fake: FakeProvider) -> list[str]:
    return [request.json["model"] for request in fake.requests]


def status_error(sdk: Any, status: int, message: str, code: str | None = None) -> Exception:
    request = httpx2.Request("POST", "https://api.example.com/v1/x")
    response = httpx2.Response(status, request=request)
    body = {"message": message, "code": code}
    error: Exception = sdk.APIStatusError(message, response=response, body=body)
    return error


# -- falling back --------------------------------------------------------------------------


def test_a_dead_primary_is_served_by_its_fallback_and_the_ledger_says_why(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """A 500 on gpt-4o sends the call to gpt-4o-mini; the row keeps both models and the route."""
    guard = make_guard(FallbackLayer(CHAIN, PRICES))
    client = guard.wrap(fake.openai())
    fake.fail(500)
    completion = client.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.model.startswith("gpt-4o-mini")
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini"]
    [row] = guard.ledger.records()
    assert row.requested_model == "gpt-4o"
    assert row.served_model is not None and row.served_model.startswith("gpt-4o-mini")
    assert (row.route, row.status, row.attempts) == ("fallback:gpt-4o-mini", "ok", 2)


def test_fallbacks_are_tried_in_chain_order(fake: FakeProvider, make_guard: MakeGuard) -> None:
    """A 429 then a timeout move the call down the chain to its third model."""
    client = make_guard(FallbackLayer(CHAIN, PRICES)).wrap(fake.openai())
    fake.fail(429, retry_after=1)
    fake.fail("timeout")
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"]


def test_a_fallbacks_own_chain_follows_it(fake: FakeProvider, make_guard: MakeGuard) -> None:
    """With gpt-4o -> [gpt-4o-mini] and gpt-4o-mini -> [gpt-4.1-mini], both are tried in turn."""
    chains = {"gpt-4o": ["gpt-4o-mini"], "gpt-4o-mini": ["gpt-4.1-mini"]}
    assert expand(chains, "gpt-4o") == ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini")
    client = make_guard(FallbackLayer(chains, PRICES)).wrap(fake.openai())
    fake.fail(503, times=2)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"]


def test_attempts_are_summed_over_retries_and_models(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """Two retried attempts on gpt-4o plus the answered one on gpt-4o-mini make 3 attempts."""
    retry = Retry(max_attempts=2, sleep=lambda _: None, jitter=lambda: 0.0)
    guard = make_guard(FallbackLayer(CHAIN, PRICES), retry=retry)
    client = guard.wrap(fake.openai())
    fake.fail(500, times=2)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o", "gpt-4o", "gpt-4o-mini"]
    [row] = guard.ledger.records()
    assert (row.attempts, row.route) == (3, "fallback:gpt-4o-mini")


def test_an_anthropic_overload_falls_back_within_anthropic(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """A 529 on claude-opus-4-5 is answered by claude-haiku-4-5 through the same client."""
    layer = FallbackLayer({"claude-opus-4-5": ["claude-haiku-4-5"]}, PRICES)
    client = make_guard(layer).wrap(fake.anthropic())
    fake.fail(529)
    message = client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=HI)
    assert message.model == "claude-haiku-4-5"


# -- not falling back ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (400, openai.BadRequestError),
    ],
)
def test_an_error_no_model_would_avoid_reaches_the_caller_unchanged(
    fake: FakeProvider, make_guard: MakeGuard, status: int, error_class: type[Exception]
) -> None:
    """A 401, 403, 404, 422 or plain 400 is raised as the SDK raised it, with no fallback sent."""
    client = make_guard(FallbackLayer(CHAIN, PRICES)).wrap(fake.openai())
    fake.fail(status)
    with pytest.raises(error_class):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o"]


def test_a_model_without_a_chain_passes_through_untouched(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """A 500 on a model with no fallbacks configured is the SDK's own InternalServerError."""
    client = make_guard(FallbackLayer(CHAIN, PRICES)).wrap(fake.openai())
    fake.fail(500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4.1", messages=HI)
    assert sent_models(fake) == ["gpt-4.1"]


def test_costguards_own_refusals_are_not_fallen_back_from() -> None:
    """A CostGuardError (a budget refusal, say) is never a reason to try another model."""
    refusal = costguard.RateLimitedError("slow down", retry_after=1.0)
    assert move_on_reason(refusal) is None


# -- context too long ----------------------------------------------------------------------


def test_a_context_overflow_skips_fallbacks_with_no_larger_window(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """Too long for gpt-4o (128k): gpt-4o-mini (128k) is skipped, gpt-4.1-mini (1M) answers."""
    guard = make_guard(FallbackLayer(CHAIN, PRICES))
    client = guard.wrap(fake.openai())
    fake.fail(400, message=CONTEXT_MESSAGE)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o", "gpt-4.1-mini"]
    [row] = guard.ledger.records()
    assert row.route == "fallback:gpt-4.1-mini"


def test_context_overflows_are_recognised_for_both_providers() -> None:
    """OpenAI's context_length_exceeded code and Anthropic's 'prompt is too long' are both
    reasons to move on; an unrelated 400 is not."""
    assert move_on_reason(status_error(openai, 400, "bad", "context_length_exceeded")) == (
        "context"
    )
    too_long = "prompt is too long: 210000 tokens > 200000 maximum"
    assert move_on_reason(status_error(anthropic, 400, too_long)) == "context"
    assert move_on_reason(status_error(openai, 400, "messages[0].role is invalid")) is None
    assert move_on_reason(status_error(anthropic, 400, "max_tokens: field required")) is None
    assert move_on_reason(status_error(openai, 503, "overloaded")) == "retryable"


# -- cross-provider ------------------------------------------------------------------------


def test_a_fallback_of_another_provider_is_skipped_with_its_reason(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """gpt-4o -> claude-opus-4-5 is skipped ('cross-provider fallback not available')."""
    layer = FallbackLayer({"gpt-4o": ["claude-opus-4-5", "gpt-4o-mini"]}, PRICES)
    client = make_guard(layer).wrap(fake.openai())
    fake.fail(500, times=2)
    with pytest.raises(FallbackExhaustedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini"]
    skipped = caught.value.attempts[1]
    assert skipped == FallbackAttempt(
        "claude-opus-4-5", skipped="cross-provider fallback not available"
    )


def test_the_cross_provider_hook_supplies_the_call_or_a_skip_reason(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """The hook's Call is sent in place of the other provider's model; a string skips it."""
    asked: list[str] = []

    def hook(call: Call, model: str) -> Call | str:
        asked.append(model)
        if model == "claude-haiku-4-5":
            return "untranslatable: tools"
        return call.replace(params={**call.params, "model": "gpt-4.1-mini"})  # a stand-in

    chain = {"gpt-4o": ["claude-haiku-4-5", "claude-opus-4-5"]}
    guard = make_guard(FallbackLayer(chain, PRICES, cross_provider=hook))
    client = guard.wrap(fake.openai())
    fake.fail(500)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert asked == ["claude-haiku-4-5", "claude-opus-4-5"]
    assert sent_models(fake) == ["gpt-4o", "gpt-4.1-mini"]
    [row] = guard.ledger.records()
    assert row.route == "fallback:claude-opus-4-5"


# -- cooldown ------------------------------------------------------------------------------


def test_a_model_that_keeps_failing_is_not_tried_until_its_cooldown_ends(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """After 2 failures in a row gpt-4o is skipped for 30 s, then tried again."""
    clock = Clock(0.0)
    layer = FallbackLayer(CHAIN, PRICES, cooldown_s=30.0, failures_before_cooldown=2, clock=clock)
    client = make_guard(layer).wrap(fake.openai())
    fake.fail(500)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    fake.fail(500)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini"] * 2
    clock.now = 29.9
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake)[4:] == ["gpt-4o-mini"]
    clock.now = 30.0
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake)[5:] == ["gpt-4o"]


def test_a_success_resets_the_run_of_failures(fake: FakeProvider, make_guard: MakeGuard) -> None:
    """Fail, succeed, fail: never two failures in a row, so gpt-4o is never cooled down."""
    layer = FallbackLayer(CHAIN, PRICES, failures_before_cooldown=2, clock=Clock(0.0))
    client = make_guard(layer).wrap(fake.openai())
    fake.fail(500)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    fake.fail(500)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sent_models(fake)[-1] == "gpt-4o"


def test_cooldowns_count_failures_safely_from_many_threads() -> None:
    """400 failures recorded from 8 threads all count: the model cools down at the 400th."""
    from concurrent.futures import ThreadPoolExecutor

    cooldowns = Cooldowns(cooldown_s=5.0, failures_before_cooldown=400)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: cooldowns.failed("m", 0.0), range(399)))
    assert cooldowns.remaining("m", 0.0) is None
    cooldowns.failed("m", 0.0)
    assert cooldowns.remaining("m", 1.0) == 4.0


# -- everything failed ---------------------------------------------------------------------


def test_when_every_model_fails_the_error_lists_each_attempt(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """Three failures raise FallbackExhaustedError naming each model, its error and wait,
    with the last provider error as __cause__ and one ledger row of 3 attempts."""
    guard = make_guard(FallbackLayer(CHAIN, PRICES))
    client = guard.wrap(fake.openai())
    fake.fail(429, retry_after=2)
    fake.fail(500)
    fake.fail("timeout")
    with pytest.raises(FallbackExhaustedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    error = caught.value
    assert [(a.model, a.error, a.wait_s, a.skipped) for a in error.attempts] == [
        ("gpt-4o", "RateLimitError", 2.0, None),
        ("gpt-4o-mini", "InternalServerError", None, None),
        ("gpt-4.1-mini", "APITimeoutError", None, None),
    ]
    assert isinstance(error.__cause__, openai.APITimeoutError)
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"):
        assert model in str(error)
    [row] = guard.ledger.records()
    assert (row.status, row.error_type, row.attempts) == ("error", "FallbackExhaustedError", 3)


def test_cooling_models_are_listed_as_skipped_with_their_time_left(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """With every model cooling down nothing is sent: each attempt is a skip with 20 s left."""
    clock = Clock(0.0)
    layer = FallbackLayer(
        {"gpt-4o": ["gpt-4o-mini"]}, PRICES, failures_before_cooldown=1, clock=clock
    )
    client = make_guard(layer).wrap(fake.openai())
    fake.fail(500, times=2)
    with pytest.raises(FallbackExhaustedError):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    clock.now = 10.0
    with pytest.raises(FallbackExhaustedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.attempts == [
        FallbackAttempt("gpt-4o", wait_s=20.0, skipped="cooling down"),
        FallbackAttempt("gpt-4o-mini", wait_s=20.0, skipped="cooling down"),
    ]
    assert caught.value.__cause__ is None
    assert len(fake.requests) == 2


def test_a_skipped_model_reports_the_cooldown_left() -> None:
    """A model failed once with failures_before_cooldown=1 has the whole cooldown left."""
    cooldowns = Cooldowns(cooldown_s=30.0, failures_before_cooldown=1)
    cooldowns.failed("gpt-4o", 100.0)
    assert cooldowns.remaining("gpt-4o", 110.0) == 20.0
    assert cooldowns.remaining("gpt-4o", 130.0) is None


# -- streams -------------------------------------------------------------------------------


def test_a_stream_that_fails_to_start_falls_back(fake: FakeProvider, make_guard: MakeGuard) -> None:
    """A 503 before the stream starts is answered by the fallback's stream, routed as such."""
    guard = make_guard(FallbackLayer(CHAIN, PRICES))
    client = guard.wrap(fake.openai())
    fake.fail(503)
    stream = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini"]
    [row] = guard.ledger.records()
    assert row.route == "fallback:gpt-4o-mini"


def test_an_error_in_the_middle_of_a_stream_surfaces_unchanged(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """Once the caller holds the stream, its mid-stream error is the SDK's, with no fallback."""
    client = make_guard(FallbackLayer(CHAIN, PRICES)).wrap(fake.openai())
    fake.fail("stream_error")
    stream = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert not isinstance(caught.value, costguard.CostGuardError)
    assert sent_models(fake) == ["gpt-4o"]


# -- async ---------------------------------------------------------------------------------


def test_the_async_driver_falls_back_alike(fake: FakeProvider, make_guard: MakeGuard) -> None:
    """An AsyncOpenAI call on a dead gpt-4o is served by gpt-4o-mini, routed as fallback."""
    guard = make_guard(FallbackLayer(CHAIN, PRICES))
    client = guard.wrap(fake.async_openai())
    fake.fail(500)
    asyncio.run(client.chat.completions.create(model="gpt-4o", messages=HI))
    assert sent_models(fake) == ["gpt-4o", "gpt-4o-mini"]
    [row] = guard.ledger.records()
    assert row.route == "fallback:gpt-4o-mini"


def test_the_async_driver_raises_exhausted_with_the_cause(
    fake: FakeProvider, make_guard: MakeGuard
) -> None:
    """Async: every model failing raises FallbackExhaustedError from the last provider error."""
    client = make_guard(FallbackLayer(CHAIN, PRICES)).wrap(fake.async_openai())
    fake.fail(500, times=3)
    with pytest.raises(FallbackExhaustedError) as caught:
        asyncio.run(client.chat.completions.create(model="gpt-4o", messages=HI))
    assert isinstance(caught.value.__cause__, openai.InternalServerError)
    assert len(caught.value.attempts) == 3


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fallbacks", "named"),
    [
        ({"gpt-4o": ["no-such-model"]}, "no-such-model"),
        ({"gpt-4o": ["gpt-4o-mini"], "gpt-4o-mini": ["gpt-4o"]}, "gpt-4o -> gpt-4o-mini -> gpt-4o"),
        ({"gpt-4o": ["gpt-4o"]}, "gpt-4o -> gpt-4o"),
        ({"gpt-4o": []}, "fallbacks['gpt-4o'] is empty"),
        ({"gpt-4o": "gpt-4o-mini"}, "must be a list"),
        ({"gpt-4o": ["gpt-4o-mini", "gpt-4o-mini"]}, "twice"),
    ],
)
def test_bad_chains_are_refused_at_construction(fallbacks: Any, named: str) -> None:
    """An unpriced model, a cycle, an empty, bare-string or repeating chain is a
    ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        FallbackLayer(fallbacks, PRICES)


@pytest.mark.parametrize(
    "options",
    [{"cooldown_s": -1}, {"cooldown_s": float("nan")}, {"failures_before_cooldown": 0}],
)
def test_bad_cooldown_settings_are_refused(options: dict[str, Any]) -> None:
    """A negative or NaN cooldown, or fewer than one failure, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        FallbackLayer(CHAIN, PRICES, **options)
