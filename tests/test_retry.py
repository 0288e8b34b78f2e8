"""Retry and RetryLayer: which provider errors are retried, how long each wait is, the bounds."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costguard
from _helpers import Clock
from costguard._call import Call, ClientInfo, Outcome
from costguard._errors import (
    BudgetExceededError,
    ConfigurationError,
    CostGuardError,
    RateLimitedError,
)
from costguard._scope import Scope
from costguard.layers.retry import RetryLayer
from costguard.providers import operations_for
from costguard.resilience import Retry, attempts_made
from costguard.resilience._retry import server_delay
from costguard.testing import FakeProvider

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
HI: Any = [{"role": "user", "content": "hi"}]
CHAT = operations_for("openai")[0]
REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")


def policy(sleeps: Clock, **settings: Any) -> Retry:
    """A Retry that records its waits and has no jitter unless told otherwise."""
    settings.setdefault("jitter", lambda: 0.0)
    return Retry(sleep=sleeps.sleep, asleep=sleeps.asleep, **settings)


MakeGuard = Callable[..., costguard.CostGuardClient]


@pytest.fixture
def sleeps() -> Clock:
    return Clock()


@pytest.fixture
def make_guard(tmp_path: Path) -> Iterator[MakeGuard]:
    guards: list[costguard.CostGuardClient] = []

    def make(retry: Retry, *inner: costguard.Layer) -> costguard.CostGuardClient:
        path = tmp_path / f"l{len(guards)}.db"
        if inner:  # test layers that must run inside the retries
            guard = costguard.CostGuardClient(
                ledger=path, cache=None, layers=[RetryLayer(retry), *inner]
            )
        else:  # as users configure it
            guard = costguard.CostGuardClient(ledger=path, cache=None, retry=retry)
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.close()


def status_error(sdk: Any, status: int, headers: dict[str, str] | None = None) -> Exception:
    response = httpx2.Response(status, headers=headers or {}, request=REQUEST)
    error: Exception = sdk.APIStatusError(f"HTTP {status}", response=response, body=None)
    return error


def direct_call(max_retries: int | None = None) -> Call:
    info = ClientInfo("openai", "https://api.openai.com/v1", False, max_retries=max_retries)
    return Call(CHAT, {"model": GPT, "messages": HI}, lambda **kw: None, info, Scope())


def failing(errors: Sequence[BaseException], seen: list[Call]) -> Callable[[Call], Outcome]:
    """An inner handler that raises ``errors`` in turn, then answers."""

    def call_next(call: Call) -> Outcome:
        seen.append(call)
        if len(seen) <= len(errors):
            raise errors[len(seen) - 1]
        return Outcome(response="answer")

    return call_next


# -- rate limits: the server's retry-after -----------------------------------------------


def test_a_429_storm_waits_as_told_then_returns_the_answer(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """Three 429s with retry-after 2 are waited out (2 s each); the fourth attempt answers."""
    guard = make_guard(policy(sleeps, max_attempts=4, max_wait_s=30))
    client = guard.wrap(fake.openai(max_retries=0))
    fake.fail(429, retry_after=2, times=3)
    fake.reply("made it")
    completion = client.chat.completions.create(model=GPT, messages=HI)
    assert completion.choices[0].message.content == "made it"
    assert sleeps.waits == [2, 2, 2]
    assert len(fake.requests) == 4
    [row] = guard.ledger.records()
    assert (row.attempts, row.status, row.error_type) == (4, "ok", None)


def test_only_the_answered_attempt_is_billed(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A call retried twice is one ledger row whose usage is the one answer's usage."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    client = guard.wrap(fake.openai())
    fake.fail(429, retry_after=1, times=2)
    completion = client.chat.completions.create(model=GPT, messages=HI)
    [row] = guard.ledger.records()
    assert completion.usage is not None
    assert row.usage.input_tokens == completion.usage.prompt_tokens
    assert row.usage.output_tokens == completion.usage.completion_tokens
    assert row.cost_usd is not None and row.cost_usd > 0


def test_retry_after_ms_is_preferred_to_retry_after(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """retry-after-ms: 1500 wins over retry-after: 2 (whole seconds, rounded up)."""
    client = make_guard(policy(sleeps, max_attempts=2)).wrap(fake.openai())
    fake.fail(429, retry_after=1.5)
    client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [1.5]


def test_retry_after_in_seconds_is_used_when_retry_after_ms_is_absent() -> None:
    """A bare retry-after header gives the wait in seconds (fractions allowed)."""
    assert server_delay(status_error(openai, 429, {"retry-after": "3"})) == 3.0
    assert server_delay(status_error(openai, 429, {"retry-after": "0.25"})) == 0.25


def test_retry_after_as_an_http_date_counts_from_the_wall_clock() -> None:
    """retry-after given as an HTTP date means that date minus now (never below 0)."""
    now = 1_763_683_200.0
    later = email.utils.formatdate(now + 7, usegmt=True)
    error = status_error(openai, 503, {"retry-after": later})
    assert server_delay(error, lambda: now) == 7.0
    assert server_delay(error, lambda: now + 60) == 0.0
    retry = Retry(now=lambda: now, jitter=lambda: 0.0)
    assert retry.decide(error, attempt=1, waited=0.0, max_attempts=3) == 7.0


@pytest.mark.parametrize("value", ["soon", "-1", "nan", ""])
def test_a_malformed_or_negative_retry_after_falls_back_to_backoff(value: str) -> None:
    """A retry-after that is not a usable wait is ignored: the exponential backoff applies."""
    error = status_error(openai, 429, {"retry-after": value})
    assert server_delay(error) is None
    retry = Retry(initial_delay_s=0.5, jitter=lambda: 0.0)
    assert retry.decide(error, attempt=2, waited=0.0, max_attempts=5) == 1.0


def test_retry_after_is_cut_to_retry_after_cap_s(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A server asking for 100 s is waited for retry_after_cap_s (5 s) only."""
    client = make_guard(policy(sleeps, max_attempts=2, retry_after_cap_s=5)).wrap(fake.openai())
    fake.fail(429, retry_after=100)
    client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [5]


# -- server errors: exponential backoff ----------------------------------------------------


def test_server_errors_back_off_exponentially(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """500, 503, 503 without retry-after wait 0.5, 1, 2 s, then the call answers."""
    guard = make_guard(policy(sleeps, max_attempts=4))
    client = guard.wrap(fake.openai())
    fake.fail(500)
    fake.fail(503, times=2)
    client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert guard.ledger.records()[0].attempts == 4


def test_backoff_stops_growing_at_max_delay_s(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """With initial 1 s and max_delay_s 3, the waits are 1, 2, 3, 3."""
    retry = policy(sleeps, max_attempts=5, initial_delay_s=1, max_delay_s=3)
    client = make_guard(retry).wrap(fake.openai())
    fake.fail(502, times=4)
    client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [1, 2, 3, 3]


def test_jitter_cuts_each_backoff_by_up_to_a_quarter(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A jitter source returning 1.0 cuts the waits by 25%: 0.375, 0.75."""
    client = make_guard(policy(sleeps, max_attempts=3, jitter=lambda: 1.0)).wrap(fake.openai())
    fake.fail(500, times=2)
    client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [0.375, 0.75]


def test_an_anthropic_529_overloaded_is_retried(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """Anthropic's 529 overloaded_error is retried like a 5xx."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    client = guard.wrap(fake.anthropic(max_retries=0))
    fake.fail(529, times=2)
    message = client.messages.create(model=CLAUDE, max_tokens=50, messages=HI)
    assert message.content
    assert sleeps.waits == [0.5, 1.0]
    assert guard.ledger.records()[0].attempts == 3


@pytest.mark.parametrize("kind", ["timeout", "connection"])
def test_timeouts_and_connection_errors_are_retried(
    kind: Any, fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A read timeout or a refused connection is sent again after a backoff."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    openai_client = guard.wrap(fake.openai())
    anthropic_client = guard.wrap(fake.anthropic())
    fake.fail(kind, times=2)
    openai_client.chat.completions.create(model=GPT, messages=HI)
    fake.fail(kind)
    anthropic_client.messages.create(model=CLAUDE, max_tokens=50, messages=HI)
    assert sleeps.waits == [0.5, 1.0, 0.5]
    assert [row.attempts for row in guard.ledger.records()] == [3, 2]


# -- what is never retried -------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(
    status: Any, fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A 400/401/403/404/422 is raised after one request, with no wait."""
    client = make_guard(policy(sleeps, max_attempts=5)).wrap(fake.openai())
    fake.fail(status)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=GPT, messages=HI)
    assert raised.value.status_code == status
    assert len(fake.requests) == 1 and sleeps.waits == []
    assert attempts_made(raised.value) == 1


@pytest.mark.parametrize(
    "error",
    [
        BudgetExceededError(
            "over",
            budget="daily",
            key=None,
            limit=Decimal(1),
            spent=Decimal(1),
            reserved=Decimal(0),
            worst_case=Decimal(1),
        ),
        RateLimitedError("slow down", retry_after=3.0),
    ],
    ids=["budget", "rate-limit"],
)
def test_a_costguard_refusal_from_an_inner_layer_is_not_retried(
    error: CostGuardError, fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A BudgetExceededError or RateLimitedError raised inside the retry layer goes straight out."""

    class Refuse:
        calls = 0

        def handle(self, call: Call, call_next: costguard.Handler) -> Outcome:
            Refuse.calls += 1
            raise error

        async def ahandle(self, call: Call, call_next: costguard.AsyncHandler) -> Outcome:
            raise error

    guard = make_guard(policy(sleeps, max_attempts=5), Refuse())
    with pytest.raises(type(error)) as raised:
        guard.wrap(fake.openai()).chat.completions.create(model=GPT, messages=HI)
    assert raised.value is error
    assert Refuse.calls == 1 and sleeps.waits == [] and fake.requests == []


def test_x_should_retry_false_is_obeyed() -> None:
    """A 503 whose response says x-should-retry: false is not retried."""
    assert Retry.is_retryable(status_error(openai, 503))
    assert not Retry.is_retryable(status_error(openai, 503, {"x-should-retry": "false"}))


@pytest.mark.parametrize("sdk", [openai, anthropic], ids=["openai", "anthropic"])
@pytest.mark.parametrize(
    ("status", "retried"),
    [
        *[(status, True) for status in (408, 409, 429, 500, 502, 503, 504, 529)],
        *[(status, False) for status in (400, 401, 403, 404, 413, 422)],
    ],
)
def test_statuses_are_sorted_into_retried_and_not(sdk: Any, status: int, retried: bool) -> None:
    """Both SDKs' status errors: 408, 409, 429 and 5xx are retried, other 4xx are not."""
    assert Retry.is_retryable(status_error(sdk, status)) is retried


def test_errors_that_are_not_the_sdks_are_not_retried() -> None:
    """A plain exception, an SDK error without a status, or a costguard error: not retried."""
    assert not Retry.is_retryable(ValueError("bad"))
    assert not Retry.is_retryable(openai.APIError("mid-stream", REQUEST, body=None))
    assert not Retry.is_retryable(costguard.InvalidRequestError("bad params"))
    assert Retry.is_retryable(openai.APITimeoutError(REQUEST))
    assert Retry.is_retryable(anthropic.APIConnectionError(request=REQUEST))


# -- bounds: attempts and total waiting ------------------------------------------------


def test_exhausted_attempts_raise_the_sdks_own_last_exception(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """After max_attempts 500s the caller gets openai.InternalServerError, not a wrapper."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    client = guard.wrap(fake.openai())
    fake.fail(500, times=3)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=GPT, messages=HI)
    assert len(fake.requests) == 3 and sleeps.waits == [0.5, 1.0]
    assert attempts_made(raised.value) == 3
    assert raised.value.__cause__ is None
    [row] = guard.ledger.records()
    assert (row.status, row.error_type, row.cost_usd) == (
        "error",
        "InternalServerError",
        Decimal(0),
    )


def test_the_ledger_row_of_an_exhausted_call_counts_every_attempt(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A call that failed after 3 attempts is one ledger row with attempts == 3."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    fake.fail(500, times=3)
    with pytest.raises(openai.InternalServerError):
        guard.wrap(fake.openai()).chat.completions.create(model=GPT, messages=HI)
    [row] = guard.ledger.records()
    assert (row.attempts, row.status) == (3, "error")


def test_max_wait_s_stops_before_a_wait_would_pass_it(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """With max_wait_s 25 and retry-after 10, two waits are made; a third would pass 25."""
    client = make_guard(policy(sleeps, max_attempts=10, max_wait_s=25)).wrap(fake.openai())
    fake.fail(429, retry_after=10, times=5)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [10, 10]
    assert len(fake.requests) == 3 and attempts_made(raised.value) == 3


def test_a_retry_after_longer_than_max_wait_s_gives_up_at_once(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A 429 asking for 45 s, with only 30 s of waiting allowed, is raised without waiting."""
    client = make_guard(policy(sleeps, max_attempts=4, max_wait_s=30)).wrap(fake.openai())
    fake.fail(429, retry_after=45)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=GPT, messages=HI)
    assert sleeps.waits == [] and len(fake.requests) == 1


def test_each_attempt_is_numbered_on_the_call(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """Layers inside the retry layer see call.attempt 1, 2, 3."""
    seen: list[int] = []

    class Watch:
        def handle(self, call: Call, call_next: costguard.Handler) -> Outcome:
            seen.append(call.attempt)
            return call_next(call)

        async def ahandle(self, call: Call, call_next: costguard.AsyncHandler) -> Outcome:
            seen.append(call.attempt)
            return await call_next(call)

    client = make_guard(policy(sleeps, max_attempts=3), Watch()).wrap(fake.openai())
    fake.fail(503, times=2)
    client.chat.completions.create(model=GPT, messages=HI)
    assert seen == [1, 2, 3]


# -- default attempts: the client's own max_retries ------------------------------------


def test_default_attempts_are_the_clients_max_retries_plus_one(sleeps: Clock) -> None:
    """With max_attempts=None, a client made with max_retries=3 gets 4 attempts."""
    client = FakeProvider().openai(max_retries=3)
    info = ClientInfo("openai", str(client.base_url), False, max_retries=client.max_retries)
    call = direct_call().replace(client=info)
    seen: list[Call] = []
    errors = [status_error(openai, 500) for _ in range(10)]
    with pytest.raises(openai.APIStatusError) as raised:
        RetryLayer(policy(sleeps)).handle(call, failing(errors, seen))
    assert len(seen) == 4 and raised.value is errors[3]


def test_an_unknown_max_retries_means_the_sdk_default_of_two(sleeps: Clock) -> None:
    """A client whose max_retries is unknown gets 3 attempts, as the SDKs retry twice."""
    assert Retry().attempts_for(direct_call(max_retries=None).client) == 3
    assert Retry().attempts_for(direct_call(max_retries=0).client) == 1
    assert Retry(max_attempts=7).attempts_for(direct_call(max_retries=1).client) == 7


def test_a_wrapped_client_with_max_retries_3_sends_4_requests_in_all(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """costguard owns retries: max_retries=3 means 4 requests, not 4 x 4."""
    client = make_guard(policy(sleeps)).wrap(fake.openai(max_retries=3))
    fake.fail(500, times=20)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=GPT, messages=HI)
    assert len(fake.requests) == 4


# -- streams -----------------------------------------------------------------------------


def test_a_stream_that_fails_to_start_is_retried(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """A 503 before the stream is returned is retried; the caller gets a working stream."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    client = guard.wrap(fake.openai())
    fake.fail(503)
    fake.reply("streamed")
    stream = client.chat.completions.create(model=GPT, messages=HI, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed" and sleeps.waits == [0.5]
    [row] = guard.ledger.records()
    assert (row.attempts, row.status, row.stream) == (2, "ok", True)


def test_anthropics_stream_helper_retries_a_failed_start(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """messages.stream() whose first request gets a 529 is sent again when entered."""
    guard = make_guard(policy(sleeps, max_attempts=3))
    client = guard.wrap(fake.anthropic())
    fake.fail(529)
    fake.reply("hello there")
    with client.messages.stream(model=CLAUDE, max_tokens=50, messages=HI) as stream:
        assert stream.get_final_text() == "hello there"
    assert sleeps.waits == [0.5] and len(fake.requests) == 2
    assert guard.ledger.records()[0].attempts == 2


def test_an_error_in_the_middle_of_a_stream_surfaces_without_a_retry(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """Once the caller holds the stream, a mid-stream error is the SDK's, raised as is."""
    guard = make_guard(policy(sleeps, max_attempts=5))
    client = guard.wrap(fake.openai())
    fake.fail("stream_error")
    stream = client.chat.completions.create(model=GPT, messages=HI, stream=True)
    with pytest.raises(openai.APIError) as raised:
        for _chunk in stream:
            pass
    assert not isinstance(raised.value, openai.APIStatusError)
    assert len(fake.requests) == 1 and sleeps.waits == []
    assert [row.attempts for row in guard.ledger.records()] == [1]


# -- async ---------------------------------------------------------------------------------


def test_async_a_429_storm_waits_with_asleep(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """The async driver waits the same 2, 2, 2 s with the injected asleep."""
    guard = make_guard(policy(sleeps, max_attempts=4, max_wait_s=30))

    async def main() -> Any:
        client = guard.wrap(fake.async_openai(max_retries=0))
        return await client.chat.completions.create(model=GPT, messages=HI)

    fake.fail(429, retry_after=2, times=3)
    fake.reply("async made it")
    completion = asyncio.run(main())
    assert completion.choices[0].message.content == "async made it"
    assert sleeps.waits == [2, 2, 2]
    [row] = guard.ledger.records()
    assert (row.attempts, row.status) == (4, "ok")


def test_async_exhausted_attempts_raise_the_sdks_exception(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """An async Anthropic call failing 529 every time raises anthropic's own error."""
    guard = make_guard(policy(sleeps, max_attempts=2))

    async def main() -> Any:
        client = guard.wrap(fake.async_anthropic(max_retries=0))
        return await client.messages.create(model=CLAUDE, max_tokens=50, messages=HI)

    fake.fail(529, times=2)
    with pytest.raises(anthropic.OverloadedError) as raised:
        asyncio.run(main())
    assert attempts_made(raised.value) == 2 and sleeps.waits == [0.5]
    assert guard.ledger.records()[0].status == "error"


def test_async_client_errors_are_not_retried(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """An async 401 is raised after one request."""
    guard = make_guard(policy(sleeps, max_attempts=4))

    async def main() -> Any:
        client = guard.wrap(fake.async_openai())
        return await client.chat.completions.create(model=GPT, messages=HI)

    fake.fail(401)
    with pytest.raises(openai.AuthenticationError):
        asyncio.run(main())
    assert len(fake.requests) == 1 and sleeps.waits == []


def test_async_stream_start_is_retried_and_mid_stream_is_not(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """Async: a timeout before the stream is retried; the stream's own error is not."""
    guard = make_guard(policy(sleeps, max_attempts=3))

    async def main() -> tuple[str, BaseException | None]:
        client = guard.wrap(fake.async_anthropic())
        fake.fail("timeout")
        fake.reply("first")
        text = ""
        stream = await client.messages.create(model=CLAUDE, max_tokens=50, messages=HI, stream=True)
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
        fake.fail("stream_error")
        stream = await client.messages.create(model=CLAUDE, max_tokens=50, messages=HI, stream=True)
        try:
            async for _event in stream:
                pass
        except anthropic.APIStatusError as exc:
            return text, exc
        return text, None

    text, error = asyncio.run(main())
    assert text == "first"
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == 200
    assert sleeps.waits == [0.5] and len(fake.requests) == 3


def test_async_stream_helper_retries_a_failed_start(
    fake: FakeProvider, sleeps: Clock, make_guard: MakeGuard
) -> None:
    """Async messages.stream() retries a connection error when entered."""
    guard = make_guard(policy(sleeps, max_attempts=3))

    async def main() -> str:
        client = guard.wrap(fake.async_anthropic())
        fake.fail("connection")
        fake.reply("async stream")
        async with client.messages.stream(model=CLAUDE, max_tokens=50, messages=HI) as stream:
            return await stream.get_final_text()

    assert asyncio.run(main()) == "async stream"
    assert sleeps.waits == [0.5] and guard.ledger.records()[0].attempts == 2


# -- properties ------------------------------------------------------------------------

_FAILURES = st.lists(
    st.one_of(
        st.tuples(st.just(429), st.none() | st.floats(0, 50, allow_nan=False)),
        st.tuples(st.sampled_from([500, 503, 529]), st.none()),
        st.tuples(st.just(0), st.none()),  # a timeout
    ),
    max_size=12,
)


def _error(status: int, retry_after: float | None) -> BaseException:
    if status == 0:
        return openai.APITimeoutError(REQUEST)
    headers = {} if retry_after is None else {"retry-after-ms": str(retry_after * 1000)}
    return status_error(openai, status, headers)


@settings(max_examples=200, deadline=None)
@given(
    failures=_FAILURES,
    max_attempts=st.integers(1, 8),
    max_wait_s=st.floats(0, 60, allow_nan=False),
    cap=st.floats(0, 100, allow_nan=False),
    draws=st.lists(st.floats(0, 1), min_size=1, max_size=12),
)
def test_waits_and_attempts_stay_within_their_bounds(
    failures: list[tuple[int, float | None]],
    max_attempts: int,
    max_wait_s: float,
    cap: float,
    draws: list[float],
) -> None:
    """Whatever fails, the waits sum to at most max_wait_s, attempts never pass max_attempts,
    and the async driver waits exactly as the sync one."""

    def run(is_async: bool) -> tuple[list[float], int, bool]:
        sleeps = Clock()
        jitter = iter(draws * 12)
        layer = RetryLayer(
            policy(
                sleeps,
                max_attempts=max_attempts,
                max_wait_s=max_wait_s,
                retry_after_cap_s=cap,
                jitter=lambda: next(jitter),
            )
        )
        seen: list[Call] = []
        call_next = failing([_error(*f) for f in failures], seen)

        async def acall_next(call: Call) -> Outcome:
            return call_next(call)

        try:
            if is_async:
                outcome = asyncio.run(layer.ahandle(direct_call(), acall_next))
            else:
                outcome = layer.handle(direct_call(), call_next)
        except openai.APIError as exc:
            assert attempts_made(exc) == len(seen)
            return sleeps.waits, len(seen), False
        assert outcome.attempts == len(seen)
        return sleeps.waits, len(seen), True

    waits, attempts, answered = run(is_async=False)
    assert sum(waits) <= max_wait_s
    assert attempts <= max_attempts and len(waits) == attempts - 1
    assert answered == (len(failures) < attempts)
    assert all(0 <= wait <= max(cap, 8.0) for wait in waits)
    assert run(is_async=True) == (waits, attempts, answered)


@given(attempt=st.integers(1, 60), draw=st.floats(0, 1))
def test_a_backoff_wait_lies_between_three_quarters_and_all_of_the_exponential(
    attempt: int, draw: float
) -> None:
    """Each backoff is min(initial * 2**(n-1), max_delay_s), cut by 25% * jitter at most."""
    retry = Retry(jitter=lambda: draw, initial_delay_s=0.5, max_delay_s=8, max_wait_s=1e9)
    wait = retry.decide(status_error(openai, 500), attempt=attempt, waited=0, max_attempts=100)
    full = min(0.5 * 2 ** (attempt - 1), 8.0)
    assert wait is not None and 0.75 * full <= wait <= full


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"max_wait_s": -1},
        {"max_wait_s": float("nan")},
        {"max_delay_s": -0.1},
        {"retry_after_cap_s": float("nan")},
        {"initial_delay_s": -1},
        {"initial_delay_s": float("inf")},
        {"max_wait_s": "30"},
        {"sleep": None},
        {"jitter": 0.25},
    ],
)
def test_bad_settings_are_configuration_errors(settings: dict[str, Any]) -> None:
    """max_attempts < 1, negative or NaN waits and non-callable hooks raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        Retry(**settings)


def test_a_retry_layer_needs_a_retry() -> None:
    """RetryLayer refuses anything but a costguard Retry."""
    with pytest.raises(ConfigurationError):
        RetryLayer(3)  # type: ignore[arg-type]


def test_retry_is_exported_from_costguard_resilience() -> None:
    """costguard.resilience exports Retry and attempts_made, and RetryLayer is a Layer."""
    import costguard.resilience

    assert costguard.resilience.__all__ == ["Retry", "attempts_made"]
    assert isinstance(RetryLayer(Retry()), costguard.Layer)
