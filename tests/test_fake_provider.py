"""FakeProvider, exercised only through the real openai / anthropic SDK clients."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import anyio
import openai
import pytest

import costguard.testing
from costguard import Usage
from costguard._tokens import count_text_tokens, count_tokens
from costguard.testing import FakeProvider, RecordedRequest, ToolCall

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
# Clients that validate every response against the SDK's pydantic types, so a missing or
# mistyped field fails the test instead of being constructed leniently.
STRICT: dict[str, Any] = {"_strict_response_validation": True}


# -- guards: no network, no real sleeps ----------------------------------------------------


class _NoNetworkSocket(socket.socket):
    """Refuses new sockets; wrapping an existing descriptor (asyncio's self-pipe) is fine."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fileno = kwargs.get("fileno", args[3] if len(args) > 3 else None)
        if fileno is None:
            raise OSError("a FakeProvider test tried to open a socket")
        super().__init__(*args, **kwargs)


def _refuse(*args: object, **kwargs: object) -> Any:
    raise OSError("a FakeProvider test tried to use the network")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _NoNetworkSocket)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every sleep the code under test asks for; the test fails if any is not zero."""
    asked: list[float] = []
    real_asyncio_sleep = asyncio.sleep

    def sync_sleep(seconds: float) -> None:
        asked.append(seconds)

    async def async_sleep(seconds: float, *args: Any, **kwargs: Any) -> None:
        asked.append(seconds)
        await real_asyncio_sleep(0)

    monkeypatch.setattr(time, "sleep", sync_sleep)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)
    monkeypatch.setattr(anyio, "sleep", async_sleep)
    yield asked
    assert all(seconds == 0 for seconds in asked), f"slept for real: {asked}"


def test_guards_refuse_sockets() -> None:
    with pytest.raises(OSError, match="socket"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- public surface and clients ------------------------------------------------------------


def test_exported_members() -> None:
    assert costguard.testing.__all__ == sorted(costguard.testing.__all__)
    assert costguard.testing.__all__ == [
        "Endpoint",
        "FailureKind",
        "FakeProvider",
        "Provider",
        "RecordedRequest",
        "ToolCall",
    ]


def test_clients_are_the_sdk_classes(fake: FakeProvider) -> None:
    assert isinstance(fake.openai(), openai.OpenAI)
    assert isinstance(fake.async_openai(), openai.AsyncOpenAI)
    assert isinstance(fake.anthropic(), anthropic.Anthropic)
    assert isinstance(fake.async_anthropic(), anthropic.AsyncAnthropic)
    assert type(fake.openai()).__name__ == "OpenAI"


def test_client_defaults_and_pass_through(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    client = fake.openai()
    assert client.max_retries == 0
    assert client.api_key.startswith("sk-fake-0000")
    assert str(client.base_url) == "https://api.openai.com/v1/"
    claude = fake.anthropic()
    assert claude.api_key is not None and claude.api_key.startswith("sk-ant-fake-")
    assert str(claude.base_url).rstrip("/") == "https://api.anthropic.com"

    custom = fake.openai(
        api_key="sk-mine-1234", base_url="https://proxy.test/openai/v1", max_retries=3
    )
    assert custom.max_retries == 3
    custom.chat.completions.create(model=GPT, messages=HELLO)
    request = fake.requests[-1]
    assert request.url == "https://proxy.test/openai/v1/chat/completions"
    assert request.endpoint == "chat.completions"
    assert request.headers["authorization"] == "Bearer ****1234"


def test_http_client_is_not_accepted(fake: FakeProvider) -> None:
    with pytest.raises(TypeError, match="http_client"):
        fake.openai(http_client=object())


def test_with_options_keeps_the_fake_and_the_zero_backoff(fake: FakeProvider) -> None:
    client = fake.openai().with_options(max_retries=2)
    assert type(client) is type(fake.openai())
    fake.fail(503, retry_after=30, times=2)
    client.chat.completions.create(model=GPT, messages=HELLO)
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]


# -- OpenAI chat completions ---------------------------------------------------------------


def test_chat_default_reply_and_usage(fake: FakeProvider) -> None:
    completion = fake.openai(**STRICT).chat.completions.create(model=GPT, messages=HELLO)
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.id.startswith("chatcmpl-")
    assert completion.created == 1_763_683_200
    assert completion.model == GPT
    assert completion.service_tier == "default"
    assert completion.system_fingerprint and completion.system_fingerprint.startswith("fp_")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    text = choice.message.content
    assert text is not None and "capital of France" in text and "FakeProvider" in text
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == count_tokens(GPT, HELLO)
    assert usage.completion_tokens == count_text_tokens(GPT, text)
    assert 20 <= usage.completion_tokens <= 80
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_async(fake: FakeProvider) -> None:
    async def main() -> openai.types.chat.ChatCompletion:
        fake.reply("async hello")
        return await fake.async_openai(**STRICT).chat.completions.create(model=GPT, messages=HELLO)

    completion = run(main())
    assert completion.choices[0].message.content == "async hello"
    assert fake.requests[0].headers["x-stainless-async"].startswith("async")


def test_chat_scripted_reply(fake: FakeProvider) -> None:
    fake.reply(
        "Paris.",
        model="gpt-4o-mini-2024-07-18",
        cached_tokens=8,
        reasoning_tokens=5,
        service_tier="flex",
    )
    completion = fake.openai(**STRICT).chat.completions.create(model=GPT, messages=HELLO)
    assert completion.choices[0].message.content == "Paris."
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.service_tier == "flex"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert usage.prompt_tokens == count_tokens(GPT, HELLO)  # includes the cached tokens
    assert usage.prompt_tokens_details.cached_tokens == 8
    assert usage.completion_tokens == count_text_tokens(GPT, "Paris.") + 5
    assert usage.completion_tokens_details.reasoning_tokens == 5


@pytest.mark.parametrize(
    ("asked", "reported"),
    [
        (None, "default"),
        ("auto", "default"),
        ("default", "default"),
        ("flex", "flex"),
        ("priority", "priority"),
    ],
)
def test_chat_service_tier_echo(fake: FakeProvider, asked: Any, reported: str) -> None:
    extra = {} if asked is None else {"service_tier": asked}
    completion = fake.openai().chat.completions.create(model=GPT, messages=HELLO, **extra)
    assert completion.service_tier == reported


def test_chat_n_choices(fake: FakeProvider) -> None:
    fake.reply("Paris.")
    completion = fake.openai(**STRICT).chat.completions.create(model=GPT, messages=HELLO, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.message.content for c in completion.choices} == {"Paris."}
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3 * count_text_tokens(GPT, "Paris.")


def test_chat_tool_calls(fake: FakeProvider) -> None:
    fake.reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
    completion = fake.openai(**STRICT).chat.completions.create(
        model=GPT, messages=HELLO, tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_tokens(GPT, HELLO, tools=[WEATHER_TOOL])


def test_chat_max_tokens_cuts_the_answer(fake: FakeProvider) -> None:
    completion = fake.openai().chat.completions.create(model=GPT, messages=HELLO, max_tokens=10)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 10


def test_chat_stream_with_usage(fake: FakeProvider) -> None:
    fake.reply("Paris is the capital of France.")
    stream = fake.openai(**STRICT).chat.completions.create(
        model=GPT, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert len({c.id for c in chunks}) == 1
    *content_chunks, last = chunks
    assert all(c.usage is None and len(c.choices) == 1 for c in content_chunks)
    assert content_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == "Paris is the capital of France."
    assert len(content_chunks) > 3
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == count_tokens(GPT, HELLO)
    assert last.usage.completion_tokens == count_text_tokens(GPT, text)


def test_chat_stream_wire_format(fake: FakeProvider) -> None:
    client = fake.openai()
    with client.chat.completions.with_streaming_response.create(
        model=GPT, messages=HELLO, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)  # no "event:" names
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all("usage" in chunk for chunk in chunks)
    assert [chunk["usage"] is None for chunk in chunks] == [True] * (len(chunks) - 1) + [False]


def test_chat_stream_without_include_usage(fake: FakeProvider) -> None:
    chunks = list(fake.openai().chat.completions.create(model=GPT, messages=HELLO, stream=True))
    assert all(len(c.choices) == 1 and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_tool_calls(fake: FakeProvider) -> None:
    fake.reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), {"name": "noop"}])
    chunks = list(
        fake.openai(**STRICT).chat.completions.create(
            model=GPT, messages=HELLO, tools=[WEATHER_TOOL], stream=True
        )
    )
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in chunks:
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.function and call.function.name:
                names[call.index] = call.function.name
            if call.function and call.function.arguments:
                arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    assert names == {0: "get_weather", 1: "noop"}
    assert json.loads(arguments[0]) == {"city": "Paris"}
    assert arguments.get(1, "{}") == "{}"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_chat_stream_async(fake: FakeProvider) -> None:
    async def main() -> list[Any]:
        client = fake.async_openai(**STRICT)
        stream = await client.chat.completions.create(
            model=GPT, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    chunks = run(main())
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


# -- OpenAI responses ----------------------------------------------------------------------


def test_responses_default(fake: FakeProvider) -> None:
    response = fake.openai(**STRICT).responses.create(
        model=GPT, input="What is the capital of France?", instructions="Be brief."
    )
    assert isinstance(response, openai.types.responses.Response)
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert "capital of France" in response.output_text
    assert response.usage is not None
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    assert response.usage.input_tokens == count_tokens(GPT, messages, system="Be brief.")
    assert response.usage.output_tokens == count_text_tokens(GPT, response.output_text)
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.service_tier == "default"
    assert response.instructions == "Be brief."


def test_responses_async_with_message_input(fake: FakeProvider) -> None:
    async def main() -> openai.types.responses.Response:
        fake.reply("Paris.", cached_tokens=4, reasoning_tokens=7)
        client = fake.async_openai(**STRICT)
        return await client.responses.create(
            model=GPT,
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Capital?"}]}],
            service_tier="priority",
        )

    response = run(main())
    assert response.output_text == "Paris."
    assert response.service_tier == "priority"
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens == count_text_tokens(GPT, "Paris.") + 7
    assert [item.type for item in response.output] == ["reasoning", "message"]


def test_responses_function_call(fake: FakeProvider) -> None:
    fake.reply(tool_calls=[ToolCall("get_weather", '{"city":"Paris"}', id="call_given")])
    response = fake.openai(**STRICT).responses.create(model=GPT, input="weather?")
    (item,) = response.output
    assert item.type == "function_call"
    assert item.name == "get_weather" and item.call_id == "call_given"
    assert item.arguments == '{"city":"Paris"}'


def test_responses_max_output_tokens_is_incomplete(fake: FakeProvider) -> None:
    response = fake.openai(**STRICT).responses.create(model=GPT, input="Hi", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens <= 16


def test_responses_scripted_length_is_incomplete(fake: FakeProvider) -> None:
    fake.reply("cut", finish_reason="length")
    response = fake.openai(**STRICT).responses.create(model=GPT, input="Hi")
    assert response.status == "incomplete" and response.output_text == "cut"


def _collapse(types: list[str]) -> list[str]:
    return [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]


def test_responses_stream_events(fake: FakeProvider) -> None:
    fake.reply("Paris is the capital of France.")
    events = list(fake.openai(**STRICT).responses.create(model=GPT, input="Capital?", stream=True))
    types = [event.type for event in events]
    assert _collapse(types) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert types.count("response.output_text.delta") > 3
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Paris is the capital of France."
    created, completed = events[0], events[-1]
    assert created.type == "response.created" and created.response.usage is None
    assert created.response.status == "in_progress"
    assert completed.type == "response.completed"
    assert completed.response.output_text == deltas
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == count_text_tokens(GPT, deltas)


def test_responses_stream_wire_format(fake: FakeProvider) -> None:
    with fake.openai().responses.with_streaming_response.create(
        model=GPT, input="Hi", stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == "event: response.created"
    assert lines[-2] == "event: response.completed"
    assert not any("[DONE]" in line for line in lines)


def test_responses_stream_function_call_and_async(fake: FakeProvider) -> None:
    async def main() -> list[Any]:
        fake.reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
        stream = await fake.async_openai(**STRICT).responses.create(
            model=GPT, input="weather?", stream=True
        )
        return [event async for event in stream]

    events = run(main())
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Paris"}
    assert events[-1].type == "response.completed"


def test_responses_stream_incomplete(fake: FakeProvider) -> None:
    events = list(
        fake.openai().responses.create(model=GPT, input="Hi", max_output_tokens=16, stream=True)
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.usage is not None


# -- OpenAI embeddings and models ----------------------------------------------------------


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_base64_default_and_float_agree(fake: FakeProvider) -> None:
    client = fake.openai()
    texts = ["capital of France", "capital of Germany", "bananas are yellow"]
    decoded = client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert fake.requests[-1].json["encoding_format"] == "base64"  # the SDK's default
    floats = fake.openai(**STRICT).embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    assert [d.index for d in floats.data] == [0, 1, 2]
    france, germany, bananas = (d.embedding for d in floats.data)
    assert len(france) == 1536
    assert math.isclose(_cosine(france, france), 1.0, rel_tol=1e-5)
    assert math.isclose(_cosine(france, germany), 2 / 3, abs_tol=0.05)
    assert abs(_cosine(france, bananas)) < 0.2
    expected = sum(count_text_tokens("text-embedding-3-small", t) for t in texts)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == expected


def test_embeddings_dimensions_tokens_and_async(fake: FakeProvider) -> None:
    async def main() -> openai.types.CreateEmbeddingResponse:
        client = fake.async_openai()
        return await client.embeddings.create(
            model="text-embedding-3-large", input=[[1, 2, 3], [4, 5]], dimensions=64
        )

    result = run(main())
    assert [len(d.embedding) for d in result.data] == [64, 64]
    assert result.usage.prompt_tokens == 5
    large = fake.openai().embeddings.create(model="text-embedding-3-large", input="x")
    assert len(large.data[0].embedding) == 3072


def test_models_list_passes_through(fake: FakeProvider) -> None:
    ids = [model.id for model in fake.openai(**STRICT).models.list()]
    assert GPT in ids and "text-embedding-3-small" in ids
    claude_ids = [model.id for model in fake.anthropic(**STRICT).models.list()]
    assert CLAUDE in claude_ids

    async def main() -> list[str]:
        return [model.id async for model in fake.async_openai().models.list()]

    assert run(main()) == ids


def test_unserved_path_is_the_providers_404(fake: FakeProvider) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        fake.openai().files.list()
    assert raised.value.body == {
        "message": "Invalid URL (GET /v1/files)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert fake.requests[-1].endpoint is None


# -- Anthropic messages --------------------------------------------------------------------


def test_messages_default_reply_and_usage(fake: FakeProvider) -> None:
    message = fake.anthropic(**STRICT).messages.create(
        model=CLAUDE, max_tokens=200, system="Be brief.", messages=HELLO
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.id.startswith("msg_01")
    assert message.model == CLAUDE and message.role == "assistant"
    assert message.stop_reason == "end_turn"
    block = message.content[0]
    assert block.type == "text" and "capital of France" in block.text
    usage = message.usage
    assert usage.input_tokens == count_tokens(CLAUDE, HELLO, system="Be brief.")
    assert usage.output_tokens == count_text_tokens(CLAUDE, block.text)
    assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == 0
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert usage.service_tier == "standard"


def test_messages_cache_tokens_follow_anthropic_convention(fake: FakeProvider) -> None:
    fake.reply("Paris.", cached_tokens=3, cache_write_tokens=2, cache_write_1h_tokens=1)
    message = fake.anthropic(**STRICT).messages.create(model=CLAUDE, max_tokens=50, messages=HELLO)
    usage = message.usage
    assert usage.cache_read_input_tokens == 3
    assert usage.cache_creation_input_tokens == 3
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 2
    assert usage.cache_creation.ephemeral_1h_input_tokens == 1
    # input_tokens EXCLUDES cache reads and writes
    assert usage.input_tokens == count_tokens(CLAUDE, HELLO) - 6


def test_messages_async_tool_use(fake: FakeProvider) -> None:
    async def main() -> anthropic.types.Message:
        fake.reply("Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
        client = fake.async_anthropic(**STRICT)
        return await client.messages.create(model=CLAUDE, max_tokens=100, messages=HELLO)

    message = run(main())
    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text" and text.text == "Let me check."
    assert tool.type == "tool_use" and tool.id.startswith("toolu_01")
    assert tool.name == "get_weather" and tool.input == {"city": "Paris"}


def test_messages_max_tokens(fake: FakeProvider) -> None:
    message = fake.anthropic().messages.create(model=CLAUDE, max_tokens=12, messages=HELLO)
    assert message.stop_reason == "max_tokens"
    assert 0 < message.usage.output_tokens <= 12


def test_messages_stream_events(fake: FakeProvider) -> None:
    fake.reply("Paris is the capital of France.", cached_tokens=2)
    events = list(
        fake.anthropic(**STRICT).messages.create(
            model=CLAUDE, max_tokens=100, messages=HELLO, stream=True
        )
    )
    assert _collapse([e.type for e in events]) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    prompt = count_tokens(CLAUDE, HELLO)
    assert start.message.usage.input_tokens == prompt - 2
    assert start.message.usage.cache_read_input_tokens == 2
    assert start.message.usage.output_tokens == 1  # a placeholder until message_delta
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Paris is the capital of France."
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == count_text_tokens(CLAUDE, text)
    assert delta.usage.input_tokens == prompt - 2  # cumulative, not an increment


def test_messages_stream_wire_format_has_pings(fake: FakeProvider) -> None:
    with fake.anthropic().messages.with_streaming_response.create(
        model=CLAUDE, max_tokens=100, messages=HELLO, stream=True
    ) as response:
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]


def test_messages_stream_helper_and_tool_use(fake: FakeProvider) -> None:
    fake.reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
    with fake.anthropic().messages.stream(model=CLAUDE, max_tokens=100, messages=HELLO) as stream:
        final = stream.get_final_message()
    (tool,) = final.content
    assert tool.type == "tool_use" and tool.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == count_text_tokens(CLAUDE, 'get_weather{"city":"Paris"}')


def test_messages_stream_async(fake: FakeProvider) -> None:
    async def main() -> anthropic.types.Message:
        async with fake.async_anthropic().messages.stream(
            model=CLAUDE, max_tokens=100, messages=HELLO
        ) as stream:
            return await stream.get_final_message()

    final = run(main())
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 1


def test_count_tokens(fake: FakeProvider) -> None:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    result = fake.anthropic(**STRICT).messages.count_tokens(
        model=CLAUDE, messages=HELLO, system="Be brief.", tools=tools
    )
    assert result.input_tokens == count_tokens(CLAUDE, HELLO, system="Be brief.", tools=tools)

    async def main() -> int:
        counted = await fake.async_anthropic().messages.count_tokens(model=CLAUDE, messages=HELLO)
        return counted.input_tokens

    assert run(main()) == count_tokens(CLAUDE, HELLO)


# -- usage overrides -----------------------------------------------------------------------


def test_usage_override_is_rendered_in_each_convention(fake: FakeProvider) -> None:
    usage = Usage(
        input_tokens=100,
        cache_read_tokens=50,
        cache_write_5m_tokens=20,
        cache_write_1h_tokens=10,
        output_tokens=40,
        reasoning_tokens=15,
    )
    fake.reply("x", usage=usage, times=3)
    chat = fake.openai(**STRICT).chat.completions.create(model=GPT, messages=HELLO).usage
    assert chat is not None and chat.prompt_tokens_details and chat.completion_tokens_details
    assert (chat.prompt_tokens, chat.completion_tokens, chat.total_tokens) == (180, 40, 220)
    assert chat.prompt_tokens_details.cached_tokens == 50
    assert chat.prompt_tokens_details.cache_write_tokens == 30
    assert chat.completion_tokens_details.reasoning_tokens == 15
    response = fake.openai(**STRICT).responses.create(model=GPT, input="x").usage
    assert response is not None
    assert (response.input_tokens, response.output_tokens) == (180, 40)
    claude = fake.anthropic(**STRICT).messages.create(model=CLAUDE, max_tokens=9, messages=HELLO)
    assert claude.usage.input_tokens == 100
    assert claude.usage.cache_read_input_tokens == 50
    assert claude.usage.cache_creation_input_tokens == 30
    assert claude.usage.output_tokens == 40
    assert claude.usage.output_tokens_details is not None
    assert claude.usage.output_tokens_details.thinking_tokens == 15


def test_usage_mapping_is_sent_verbatim(fake: FakeProvider) -> None:
    fake.reply("x", usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    completion = fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }


# -- failures ------------------------------------------------------------------------------

OPENAI_STATUS = [
    (400, openai.BadRequestError, "invalid_request_error"),
    (401, openai.AuthenticationError, "invalid_request_error"),
    (403, openai.PermissionDeniedError, "request_forbidden"),
    (404, openai.NotFoundError, "invalid_request_error"),
    (429, openai.RateLimitError, "requests"),
    (500, openai.InternalServerError, "server_error"),
    (503, openai.InternalServerError, "server_error"),
]
ANTHROPIC_STATUS = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (503, anthropic.ServiceUnavailableError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "error", "error_type"), OPENAI_STATUS)
def test_openai_http_errors(
    fake: FakeProvider, status: int, error: type[openai.APIStatusError], error_type: str
) -> None:
    fake.fail(status)
    with pytest.raises(error) as raised:
        fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert raised.value.body["type"] == error_type
    assert raised.value.request_id is not None and raised.value.request_id.startswith("req_")


@pytest.mark.parametrize(("status", "error", "error_type"), ANTHROPIC_STATUS)
def test_anthropic_http_errors(
    fake: FakeProvider, status: int, error: type[anthropic.APIStatusError], error_type: str
) -> None:
    fake.fail(status, message="scripted")
    with pytest.raises(error) as raised:
        fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    assert raised.value.status_code == status
    assert raised.value.type == error_type
    assert raised.value.api_message == "scripted"
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"] == {"type": error_type, "message": "scripted"}
    assert raised.value.request_id == body["request_id"]


def test_retry_after_headers(fake: FakeProvider) -> None:
    fake.fail(429, retry_after=1.5)
    with pytest.raises(openai.RateLimitError) as raised:
        fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.response.headers["retry-after-ms"] == "1500"
    assert "try again in 1.5s" in raised.value.message
    fake.fail(529, retry_after=3)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    assert overloaded.value.response.headers["retry-after"] == "3"
    assert overloaded.value.response.headers["retry-after-ms"] == "3000"


@pytest.mark.parametrize(
    ("kind", "openai_error", "anthropic_error"),
    [
        ("timeout", openai.APITimeoutError, anthropic.APITimeoutError),
        ("connection", openai.APIConnectionError, anthropic.APIConnectionError),
    ],
)
def test_transport_failures(
    fake: FakeProvider,
    kind: Any,
    openai_error: type[Exception],
    anthropic_error: type[Exception],
) -> None:
    fake.fail(kind, times=4)
    with pytest.raises(openai_error):
        fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    with pytest.raises(anthropic_error):
        fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)

    async def main() -> None:
        with pytest.raises(openai_error):
            await fake.async_openai().chat.completions.create(model=GPT, messages=HELLO)
        with pytest.raises(anthropic_error):
            await fake.async_anthropic().messages.create(
                model=CLAUDE, max_tokens=10, messages=HELLO
            )

    run(main())
    assert fake.pending == 0 and len(fake.requests) == 4


def test_openai_chat_stream_error(fake: FakeProvider) -> None:
    fake.fail("stream_error")
    stream = fake.openai().chat.completions.create(model=GPT, messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(raised.value, openai.APIStatusError)
    assert len(received) >= 2 and received[0].choices[0].delta.role == "assistant"
    assert isinstance(raised.value.body, dict) and raised.value.body["type"] == "server_error"


def test_openai_responses_stream_error_is_an_event(fake: FakeProvider) -> None:
    fake.fail("stream_error", message="boom")
    events = list(fake.openai(**STRICT).responses.create(model=GPT, input="Hi", stream=True))
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert (failed.response.error.code, failed.response.error.message) == ("server_error", "boom")
    assert any(e.type == "response.output_text.delta" for e in events)


def test_anthropic_stream_error(fake: FakeProvider) -> None:
    async def main() -> tuple[list[Any], anthropic.APIStatusError]:
        fake.fail("stream_error")
        stream = await fake.async_anthropic().messages.create(
            model=CLAUDE, max_tokens=100, messages=HELLO, stream=True
        )
        received = []
        try:
            async for event in stream:
                received.append(event)
        except anthropic.APIStatusError as exc:
            return received, exc
        raise AssertionError("the stream did not fail")

    received, error = run(main())
    assert [e.type for e in received][:2] == ["message_start", "content_block_start"]
    assert error.status_code == 200  # the stream's status: the SDK raises APIStatusError
    assert error.type == "overloaded_error"
    assert error.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_stream_error_on_a_plain_request_is_an_http_error(fake: FakeProvider) -> None:
    fake.fail("stream_error", times=2)
    with pytest.raises(openai.InternalServerError):
        fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    with pytest.raises(anthropic.OverloadedError):
        fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)


def test_sdk_retries_consume_failures_without_sleeping(
    fake: FakeProvider, sleeps: list[float]
) -> None:
    fake.fail(429, retry_after=30, times=2)
    client = fake.openai(max_retries=2)
    completion = client.chat.completions.create(model=GPT, messages=HELLO)
    assert completion.choices[0].message.content
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]
    assert sleeps == [0.0, 0.0]

    async def main() -> None:
        fake.fail(529, retry_after=30)
        fake.fail("connection")
        await fake.async_anthropic(max_retries=2).messages.create(
            model=CLAUDE, max_tokens=10, messages=HELLO
        )

    run(main())
    assert sleeps[2:] == [0.0, 0.0]
    assert len(fake.requests) == 6


# -- the queue -----------------------------------------------------------------------------


def test_queue_is_fifo_across_providers(fake: FakeProvider) -> None:
    fake.reply("first")
    fake.reply("second")
    claude = fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    gpt = fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    assert claude.content[0].type == "text" and claude.content[0].text == "first"
    assert gpt.choices[0].message.content == "second"
    assert fake.pending == 0


def test_provider_and_endpoint_filters(fake: FakeProvider) -> None:
    fake.fail(429, provider="openai")
    fake.reply("from claude", provider="anthropic")
    fake.fail(500, endpoint="embeddings")
    fake.reply("from responses", endpoint="responses")
    # The anthropic call skips the openai failure; embeddings skip generation replies.
    claude = fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    assert claude.content[0].type == "text" and claude.content[0].text == "from claude"
    with pytest.raises(openai.InternalServerError):
        fake.openai().embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.RateLimitError):
        fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    assert fake.openai().responses.create(model=GPT, input="x").output_text == "from responses"
    assert fake.pending == 0


def test_fail_any_endpoint(fake: FakeProvider) -> None:
    fake.fail(500, endpoint="messages.count_tokens")
    fake.fail(429, endpoint=["models"], provider="openai")
    with pytest.raises(anthropic.InternalServerError):
        fake.anthropic().messages.count_tokens(model=CLAUDE, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        fake.openai().models.list()
    assert fake.pending == 0


def test_embeddings_and_count_tokens_do_not_take_generation_replies(fake: FakeProvider) -> None:
    fake.reply("kept for the chat call")
    fake.openai().embeddings.create(model="text-embedding-3-small", input="x")
    fake.anthropic().messages.count_tokens(model=CLAUDE, messages=HELLO)
    assert fake.pending == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda f: f.fail(200), ValueError),
        (lambda f: f.fail("nope"), ValueError),
        (lambda f: f.fail("timeout", retry_after=1), ValueError),
        (lambda f: f.fail(429, times=0), ValueError),
        (lambda f: f.fail(429, endpoint="audio.speech"), ValueError),
        (lambda f: f.reply("x", endpoint="embeddings"), ValueError),
        (lambda f: f.reply("x", provider="gemini"), ValueError),
        (lambda f: f.reply("x", cached_tokens=-1), ValueError),
        (lambda f: f.reply(tool_calls=[{"arguments": {}}]), TypeError),
        (lambda f: f.reply("x", usage=3), TypeError),
    ],
)
def test_bad_scripts_are_rejected(
    fake: FakeProvider, call: Callable[[FakeProvider], None], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(fake)
    assert fake.pending == 0


# -- recorded requests, reset, determinism, threads ----------------------------------------


def test_recorded_requests(fake: FakeProvider) -> None:
    fake.openai().chat.completions.create(model=GPT, messages=HELLO, stream=True)
    fake.anthropic(default_headers={"x-api-key": "sk-ant-extra-9876"}).messages.create(
        model=CLAUDE, max_tokens=10, messages=HELLO
    )
    chat, claude = fake.requests
    assert isinstance(chat, RecordedRequest)
    assert (chat.provider, chat.endpoint, chat.method) == ("openai", "chat.completions", "POST")
    assert chat.path == "/v1/chat/completions"
    assert chat.json == {"model": GPT, "messages": HELLO, "stream": True}
    assert chat.stream is True
    assert chat.headers["authorization"] == "Bearer ****0000"
    assert "sk-fake" not in json.dumps(chat.headers)
    assert (claude.provider, claude.endpoint, claude.stream) == ("anthropic", "messages", False)
    assert claude.headers["x-api-key"] == "****9876"
    assert claude.headers["authorization"] == "Bearer ****0000"
    with pytest.raises(AttributeError):
        chat.method = "GET"  # type: ignore[misc]


def test_reset(fake: FakeProvider) -> None:
    fake.reply("x")
    fake.openai().models.list()
    assert fake.requests and fake.pending == 1
    fake.reset()
    assert fake.requests == [] and fake.pending == 0


def test_the_clock_is_read_only_by_the_prompt_caches_and_must_be_callable() -> None:
    """Only the simulated prompt caches read the injected clock (OpenAI's as it notes a
    prompt, Anthropic's not for a request without breakpoints); a non-callable is refused."""
    readings: list[float] = []

    def clock() -> float:
        readings.append(0.0)
        return 0.0

    fake = FakeProvider(clock=clock)
    fake.openai().chat.completions.create(model=GPT, messages=HELLO)
    fake.anthropic().messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    assert readings == [0.0]
    with pytest.raises(TypeError, match="clock"):
        FakeProvider(clock=0.0)  # type: ignore[arg-type]


def _workload(fake: FakeProvider) -> list[Any]:
    out: list[Any] = []
    out.append(fake.openai().chat.completions.create(model=GPT, messages=HELLO).model_dump())
    out.append(
        [
            c.model_dump()
            for c in fake.openai().chat.completions.create(model=GPT, messages=HELLO, stream=True)
        ]
    )
    out.append(fake.openai().responses.create(model=GPT, input="Hi").model_dump())
    out.append(
        fake.openai().embeddings.create(model="text-embedding-3-small", input="Hi").model_dump()
    )
    out.append(
        fake.anthropic().messages.create(model=CLAUDE, max_tokens=99, messages=HELLO).model_dump()
    )
    return out


def test_default_replies_are_deterministic() -> None:
    first, second = _workload(FakeProvider()), _workload(FakeProvider())
    assert first == second
    other = _workload(FakeProvider(seed=1))
    assert other[0]["id"] != first[0]["id"]
    assert other[3]["data"][0]["embedding"] != first[3]["data"][0]["embedding"]


def test_created_timestamp() -> None:
    fake = FakeProvider(created=1_700_000_000)
    assert fake.openai().chat.completions.create(model=GPT, messages=HELLO).created == 1_700_000_000
    assert fake.openai().responses.create(model=GPT, input="x").created_at == 1_700_000_000


def test_threads_share_one_queue(fake: FakeProvider) -> None:
    fake.reply("scripted", times=40)
    client = fake.openai()
    texts: list[str | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            completion = client.chat.completions.create(model=GPT, messages=HELLO)
            with lock:
                texts.append(completion.choices[0].message.content)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.requests) == 80
    assert texts.count("scripted") == 40
    assert fake.pending == 0
    ids = [r.headers["x-stainless-retry-count"] for r in fake.requests]
    assert ids == ["0"] * 80


def test_async_clients_share_the_queue(fake: FakeProvider) -> None:
    async def main() -> list[str]:
        client = fake.async_anthropic()
        messages = await asyncio.gather(
            *(client.messages.create(model=CLAUDE, max_tokens=50, messages=HELLO) for _ in range(5))
        )
        return [m.content[0].text for m in messages if m.content[0].type == "text"]

    fake.reply("one", times=3)
    texts = run(main())
    assert texts.count("one") == 3 and len(texts) == 5


# -- the pytest plugin ---------------------------------------------------------------------


def test_fixture_from_the_plugin(
    fake_provider: FakeProvider, request: pytest.FixtureRequest
) -> None:
    assert isinstance(fake_provider, FakeProvider)
    assert request.config.pluginmanager.get_plugin("costguard") is not None
    fake_provider.reply("from the fixture")
    completion = fake_provider.openai().chat.completions.create(model=GPT, messages=HELLO)
    assert completion.choices[0].message.content == "from the fixture"
