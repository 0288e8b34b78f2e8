"""Wrapping keeps the SDK's shape; guarded calls return the SDK's own objects and errors."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import costguard
from costguard.providers import operations_for
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


def _resource(client: Any, path: tuple[str, ...]) -> Any:
    for attr in path:
        client = getattr(client, attr)
    return client


@pytest.mark.parametrize("factory", ["openai", "async_openai", "anthropic", "async_anthropic"])
def test_wrapped_client_is_exactly_the_sdk_class(
    guard: costguard.CostGuardClient, factory: str
) -> None:
    """A wrapped client has the very class of the client it wraps."""
    original = getattr(FakeProvider(), factory)()
    wrapped = guard.wrap(original)
    assert type(wrapped) is type(original)
    assert wrapped is not original


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_wrapping_leaves_the_original_client_unguarded(
    guard: costguard.CostGuardClient, provider: str
) -> None:
    """The user's original client keeps the SDK's own methods after wrap()."""
    original = getattr(FakeProvider(), provider)()
    guard.wrap(original)
    for op in operations_for(provider):
        resource = _resource(original, op.path)
        assert op.method not in vars(resource)


@pytest.mark.parametrize(
    ("provider", "sdk_class"),
    [
        ("openai", openai.OpenAI),
        ("openai", openai.AsyncOpenAI),
        ("anthropic", anthropic.Anthropic),
        ("anthropic", anthropic.AsyncAnthropic),
    ],
)
def test_each_guarded_method_accepts_exactly_the_sdk_parameters(
    guard: costguard.CostGuardClient, provider: str, sdk_class: type
) -> None:
    """Every SDK parameter of a guarded method is classified, and the guarded method shows the
    SDK's signature: a new SDK parameter fails here until costguard knows whether it changes
    the answer."""
    client = sdk_class(api_key="sk-test-0000")
    wrapped = guard.wrap(client)
    for op in operations_for(provider):
        sdk_method = getattr(_resource(client, op.path), op.method)
        sdk_params = set(inspect.signature(sdk_method).parameters)
        assert sdk_params == set(op.params), f"{op.name}: {sdk_params ^ set(op.params)}"
        assert not op.output_params & op.noise_params
        guarded = getattr(_resource(wrapped, op.path), op.method)
        assert inspect.signature(guarded) == inspect.signature(sdk_method)


def test_guarded_call_rejects_a_parameter_the_sdk_does_not_have(
    guard: costguard.CostGuardClient,
) -> None:
    """An unknown keyword fails like the SDK's own TypeError, and nothing is sent."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with pytest.raises(TypeError, match="temprature"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, temprature=0.2)
    assert fake.requests == []
    assert guard.ledger.records() == []


def test_chat_completion_is_the_sdks_own_object_and_is_recorded(
    guard: costguard.CostGuardClient,
) -> None:
    """A guarded chat completion returns a ChatCompletion and writes one priced ledger row."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    raw = FakeProvider().openai().chat.completions.create(model="gpt-4o-mini", messages=HI)
    result = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert type(result) is ChatCompletion
    assert result.model_dump() == raw.model_dump()
    [row] = guard.ledger.records()
    assert (row.provider, row.operation, row.status) == ("openai", "chat.completions.create", "ok")
    assert row.requested_model == "gpt-4o-mini"
    assert row.served_model == result.model
    assert result.usage is not None
    assert row.usage.input_tokens == result.usage.prompt_tokens
    assert row.usage.output_tokens == result.usage.completion_tokens
    price = guard.prices.require("gpt-4o-mini")
    expected = (
        row.usage.input_tokens * price.base.input + row.usage.output_tokens * price.base.output
    ) / 1_000_000
    assert row.cost_usd == expected
    assert row.price_version == guard.prices.version


def test_responses_and_embeddings_are_guarded(guard: costguard.CostGuardClient) -> None:
    """responses.create and embeddings.create return SDK objects and are recorded."""
    client = guard.wrap(FakeProvider().openai())
    response = client.responses.create(model="gpt-4o-mini", input="Say hi")
    embedding = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert type(response) is Response
    assert type(embedding) is CreateEmbeddingResponse
    rows = guard.ledger.records()
    assert [r.operation for r in rows] == ["responses.create", "embeddings.create"]
    assert rows[0].usage.output_tokens == response.usage.output_tokens  # type: ignore[union-attr]
    assert rows[1].usage.input_tokens == embedding.usage.prompt_tokens
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in rows)


def test_anthropic_message_is_the_sdks_own_object_and_is_recorded(
    guard: costguard.CostGuardClient,
) -> None:
    """A guarded messages.create returns a Message, priced from its usage."""
    claude = guard.wrap(FakeProvider().anthropic())
    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=HI)
    assert type(message) is Message
    [row] = guard.ledger.records()
    assert row.usage.input_tokens == message.usage.input_tokens
    assert row.usage.output_tokens == message.usage.output_tokens
    assert row.cost_usd is not None and row.cost_usd > 0


def test_chat_stream_usage_is_recorded_without_showing_the_user_an_extra_chunk(
    guard: costguard.CostGuardClient,
) -> None:
    """A stream without include_usage yields the same chunks as the raw SDK, and is still priced."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    raw_chunks = list(
        FakeProvider().openai().chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    )
    stream = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    assert type(stream) is openai.Stream
    chunks = list(stream)
    assert [c.model_dump(exclude={"id"}) for c in chunks] == [
        c.model_dump(exclude={"id"}) for c in raw_chunks
    ]
    assert all(c.choices for c in chunks)
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    [row] = guard.ledger.records()
    assert row.stream and row.status == "ok"
    assert row.usage.output_tokens > 0 and row.cost_usd is not None and row.cost_usd > 0


def test_chat_stream_keeps_the_usage_chunk_when_the_user_asked_for_it(
    guard: costguard.CostGuardClient,
) -> None:
    """With include_usage the user sees the usage chunk, and the ledger agrees with it."""
    client = guard.wrap(FakeProvider().openai())
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    [row] = guard.ledger.records()
    assert row.usage.output_tokens == usage.completion_tokens


def test_a_stream_closed_early_is_recorded_as_incomplete(guard: costguard.CostGuardClient) -> None:
    """Closing a stream before its end records the call as incomplete."""
    client = guard.wrap(FakeProvider().openai())
    with client.chat.completions.create(model="gpt-4o", messages=HI, stream=True) as stream:
        next(iter(stream))
    [row] = guard.ledger.records()
    assert row.status == "incomplete"


def test_responses_stream_is_recorded_from_its_completed_event(
    guard: costguard.CostGuardClient,
) -> None:
    """A streamed Responses call is priced from the response.completed event."""
    client = guard.wrap(FakeProvider().openai())
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    [row] = guard.ledger.records()
    assert row.usage.output_tokens == completed.response.usage.output_tokens  # type: ignore[union-attr]


def test_anthropic_raw_stream_and_stream_helper_are_recorded(
    guard: costguard.CostGuardClient,
) -> None:
    """messages.create(stream=True) and messages.stream() both record the final usage."""
    claude = guard.wrap(FakeProvider().anthropic())
    events = list(
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HI, stream=True)
    )
    assert events[0].type == "message_start"
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=HI) as stream:
        final = stream.get_final_message()
    assert type(final).__name__ in {"Message", "ParsedMessage"}
    rows = guard.ledger.records()
    assert [r.operation for r in rows] == ["messages.create", "messages.stream"]
    assert rows[1].usage.output_tokens == final.usage.output_tokens
    assert rows[1].usage.input_tokens == final.usage.input_tokens
    assert all(r.status == "ok" and r.stream for r in rows)


def test_async_clients_are_guarded_for_every_operation(guard: costguard.CostGuardClient) -> None:
    """Async OpenAI and Anthropic clients record plain calls, streams and the stream helper."""
    fake = FakeProvider()
    gpt = guard.wrap(fake.async_openai())
    claude = guard.wrap(fake.async_anthropic())

    async def main() -> None:
        chat = await gpt.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert type(chat) is ChatCompletion
        stream = await gpt.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        assert type(stream) is openai.AsyncStream
        assert [c async for c in stream]
        await gpt.responses.create(model="gpt-4o-mini", input="hi")
        await gpt.embeddings.create(model="text-embedding-3-small", input="hi")
        message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HI)
        assert type(message) is Message
        async with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=50, messages=HI
        ) as s:
            await s.get_final_message()

    asyncio.run(main())
    rows = guard.ledger.records()
    assert [r.operation for r in rows] == [
        "chat.completions.create",
        "chat.completions.create",
        "responses.create",
        "embeddings.create",
        "messages.create",
        "messages.stream",
    ]
    assert all(r.status == "ok" and r.cost_usd for r in rows)


def test_an_unentered_async_stream_helper_leaves_no_unawaited_coroutine(
    guard: costguard.CostGuardClient,
) -> None:
    """Creating messages.stream() on an async client and never entering it sends nothing."""
    import gc
    import warnings

    fake = FakeProvider()
    claude = guard.wrap(fake.async_anthropic())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        claude.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=HI)
        gc.collect()  # an un-awaited coroutine would warn as it is collected
    assert fake.requests == []
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_provider_errors_reach_the_caller_unchanged_and_are_recorded(
    guard: costguard.CostGuardClient,
) -> None:
    """A 429 raises the SDK's own RateLimitError and leaves an error row costing nothing."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai(max_retries=0))
    fake.fail(429, retry_after=1)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    [row] = guard.ledger.records()
    assert (row.status, row.error_type, row.cost_usd) == ("error", "RateLimitError", 0)


def test_unguarded_endpoints_pass_straight_through(guard: costguard.CostGuardClient) -> None:
    """models.list on a wrapped client is the SDK's own call and is not recorded."""
    client = guard.wrap(FakeProvider().openai())
    assert list(client.models.list())
    assert guard.ledger.records() == []


def test_with_options_returns_a_guarded_client(guard: costguard.CostGuardClient) -> None:
    """client.with_options(...) on a wrapped client is wrapped too."""
    client = guard.wrap(FakeProvider().openai())
    tuned = client.with_options(timeout=5)
    assert type(tuned) is type(client)
    tuned.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert len(guard.ledger.records()) == 1


def test_rewrapping_with_another_guard_records_in_that_guard_only(tmp_path: Any) -> None:
    """Wrapping a wrapped client with a second guard does not double-record."""
    first = costguard.CostGuardClient(ledger=tmp_path / "a.db")
    second = costguard.CostGuardClient(ledger=tmp_path / "b.db")
    client = second.wrap(first.wrap(FakeProvider().openai()))
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert (len(first.ledger.records()), len(second.ledger.records())) == (0, 1)
    first.close()
    second.close()


def test_wrapping_something_else_is_a_configuration_error(guard: costguard.CostGuardClient) -> None:
    """wrap() names the unsupported type."""
    with pytest.raises(costguard.ConfigurationError, match=r"builtins\.dict"):
        guard.wrap({})


def test_module_level_wrap_uses_a_default_guard(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """costguard.wrap records into the ledger under COSTGUARD_HOME."""
    from costguard import _client

    monkeypatch.setenv("COSTGUARD_HOME", str(tmp_path))
    _client._default_guard.cache_clear()
    try:
        client = costguard.wrap(FakeProvider().openai())
        assert isinstance(client, openai.OpenAI)
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        _client._default_guard().ledger.flush()
        ledger = costguard.Ledger(tmp_path / "ledger.db")
        assert len(ledger.records()) == 1
        ledger.close()
    finally:
        _client._default_guard().close()
        _client._default_guard.cache_clear()


def test_a_plain_sdk_client_stays_exactly_its_class(guard: costguard.CostGuardClient) -> None:
    """Wrapping an ordinary openai.OpenAI gives an object whose type is openai.OpenAI."""
    wrapped = guard.wrap(openai.OpenAI(api_key="sk-test-0000"))
    assert type(wrapped) is openai.OpenAI
    assert type(wrapped.with_options(timeout=3)) is openai.OpenAI


def test_raw_responses_are_returned_as_is_and_priced(guard: costguard.CostGuardClient) -> None:
    """with_raw_response gives the SDK's raw response; the call is still priced."""
    client = guard.wrap(FakeProvider().openai())
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert type(raw).__name__ == "LegacyAPIResponse"
    completion = raw.parse()
    assert type(completion) is ChatCompletion
    [row] = guard.ledger.records()
    assert row.status == "ok" and row.usage.output_tokens == completion.usage.completion_tokens  # type: ignore[union-attr]


def test_async_anthropic_raw_responses_are_priced(guard: costguard.CostGuardClient) -> None:
    """An async Anthropic raw response is read through its own parse()."""
    claude = guard.wrap(FakeProvider().async_anthropic())

    async def main() -> Any:
        raw = await claude.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=20, messages=HI
        )
        return await raw.parse()

    message = asyncio.run(main())
    [row] = guard.ledger.records()
    assert row.cost_usd and row.usage.output_tokens == message.usage.output_tokens


def test_streaming_responses_pass_through_and_are_recorded_unpriced(
    guard: costguard.CostGuardClient,
) -> None:
    """with_streaming_response works as in the SDK; its cost cannot be read, so it is unpriced."""
    client = guard.wrap(FakeProvider().openai())
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HI
    ) as r:
        assert r.parse().choices
    [row] = guard.ledger.records()
    assert row.status == "ok" and not row.priced
