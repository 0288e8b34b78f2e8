"""Tests for the pure OpenAI chat <-> Anthropic messages translations used by fallback."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import openai.types.chat
import pytest
from hypothesis import given
from hypothesis import strategies as st

from costguard.resilience._translate import (
    DEFAULT_MAX_TOKENS,
    Untranslatable,
    chat_to_message,
    chat_to_messages,
    message_to_chat,
    messages_to_chat,
)
from costguard.testing import FakeProvider

CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-4o"
PNG = "iVBORw0KGgoAAAANSUhEUg=="


def _round_trip(params: dict[str, Any]) -> dict[str, Any]:
    return messages_to_chat(chat_to_messages(params, model=CLAUDE), model=GPT)


def _anthropic_message(**overrides: Any) -> anthropic.types.Message:
    data: dict[str, Any] = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Hi there"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        },
    }
    data.update(overrides)
    return anthropic.types.Message.model_validate(data)


def _chat_completion(**message: Any) -> openai.types.chat.ChatCompletion:
    finish = message.pop("finish_reason", "stop")
    return openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": None, **message},
                }
            ],
            "usage": {
                "prompt_tokens": 130,
                "completion_tokens": 5,
                "total_tokens": 135,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
            },
        }
    )


# -- requests: round trips ------------------------------------------------------------------


def test_plain_text_conversation_survives_a_round_trip() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    assert _round_trip({"model": GPT, "messages": messages})["messages"] == messages


def test_text_parts_survive_a_round_trip() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}]}]
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"}]}]
    assert _round_trip({"messages": messages})["messages"] == messages


def test_system_message_becomes_the_anthropic_system_prompt_and_back() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["system"] == "Be brief."
    assert translated["messages"] == [{"role": "user", "content": "Hi"}]
    assert _round_trip({"messages": messages})["messages"] == messages


def test_system_and_developer_messages_join_into_system_blocks() -> None:
    messages = [
        {"role": "system", "content": "One."},
        {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
        {"role": "user", "content": "Hi"},
    ]
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["system"] == [
        {"type": "text", "text": "One."},
        {"type": "text", "text": "Two."},
    ]


def test_base64_image_becomes_a_base64_source_and_back() -> None:
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What?"}, part]}]
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert _round_trip({"messages": messages})["messages"] == messages


def test_image_detail_is_dropped() -> None:
    url = "https://example.com/cat.jpg"
    part = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    translated = chat_to_messages({"messages": [{"role": "user", "content": [part]}]}, model=CLAUDE)
    assert translated["messages"][0]["content"][0] == {
        "type": "image",
        "source": {"type": "url", "url": url},
    }


def test_http_image_becomes_a_url_source_and_back() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    messages = [{"role": "user", "content": [part]}]
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["messages"][0]["content"][0]["source"] == {
        "type": "url",
        "url": "https://example.com/cat.jpg",
    }
    assert _round_trip({"messages": messages})["messages"] == messages


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tools_become_input_schema_tools_and_back() -> None:
    translated = chat_to_messages({"messages": [], "tools": [WEATHER_TOOL]}, model=CLAUDE)
    assert translated["tools"] == [
        {
            "name": "weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert _round_trip({"messages": [], "tools": [WEATHER_TOOL]})["tools"] == [WEATHER_TOOL]


@pytest.mark.parametrize(
    ("openai_choice", "anthropic_choice"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"type": "tool", "name": "weather"},
        ),
    ],
)
def test_tool_choice_maps_to_its_anthropic_form_and_back(
    openai_choice: Any, anthropic_choice: dict[str, Any]
) -> None:
    params = {"messages": [], "tools": [WEATHER_TOOL], "tool_choice": openai_choice}
    assert chat_to_messages(params, model=CLAUDE)["tool_choice"] == anthropic_choice
    assert _round_trip(params)["tool_choice"] == openai_choice


def test_parallel_tool_calls_false_disables_parallel_tool_use_and_back() -> None:
    params = {"messages": [], "tools": [WEATHER_TOOL], "parallel_tool_calls": False}
    translated = chat_to_messages(params, model=CLAUDE)
    assert translated["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert _round_trip(params)["parallel_tool_calls"] is False


TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": "rainy"},
]


def test_tool_calls_become_tool_use_blocks_with_dict_input() -> None:
    translated = chat_to_messages({"messages": TOOL_CONVERSATION}, model=CLAUDE)
    assert translated["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
        ],
    }


def test_consecutive_tool_results_merge_into_one_user_message() -> None:
    translated = chat_to_messages({"messages": TOOL_CONVERSATION}, model=CLAUDE)
    assert [m["role"] for m in translated["messages"]] == ["user", "assistant", "user"]
    assert translated["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "rainy"},
    ]


def test_tool_calls_and_results_survive_a_round_trip() -> None:
    back = _round_trip({"messages": TOOL_CONVERSATION})["messages"]
    assert back[2:] == TOOL_CONVERSATION[2:]
    calls = back[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert back[1]["content"] is None


def test_a_tool_result_followed_by_user_text_stays_one_user_turn_then_splits_back() -> None:
    messages = [*TOOL_CONVERSATION[:3], {"role": "user", "content": "Thanks"}]
    messages[1] = {**messages[1], "tool_calls": messages[1]["tool_calls"][:1]}
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "text", "text": "Thanks"},
    ]
    back = messages_to_chat(translated, model=GPT)["messages"]
    assert back[2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]


def test_consecutive_user_messages_merge_into_one_turn() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    translated = chat_to_messages({"messages": messages}, model=CLAUDE)
    assert translated["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_stop_becomes_stop_sequences_and_back() -> None:
    assert chat_to_messages({"messages": [], "stop": "END"}, model=CLAUDE)["stop_sequences"] == [
        "END"
    ]
    assert _round_trip({"messages": [], "stop": ["a", "b"]})["stop"] == ["a", "b"]


def test_temperature_and_top_p_are_dropped_because_anthropic_2_has_no_sampling_params() -> None:
    params = {"messages": [], "temperature": 1.5, "top_p": 0.9}
    translated = chat_to_messages(params, model=CLAUDE)
    assert "temperature" not in translated
    assert "top_p" not in translated


def test_sampling_params_are_refused_from_anthropic_kwargs() -> None:
    with pytest.raises(Untranslatable, match="temperature"):
        messages_to_chat({"max_tokens": 5, "messages": [], "temperature": 0.5}, model=GPT)


def test_timeout_passes_through_both_ways() -> None:
    assert _round_trip({"messages": [], "timeout": 30.0})["timeout"] == 30.0


def test_max_completion_tokens_becomes_max_tokens_and_back() -> None:
    translated = chat_to_messages({"messages": [], "max_completion_tokens": 300}, model=CLAUDE)
    assert translated["max_tokens"] == 300
    assert _round_trip({"messages": [], "max_tokens": 300})["max_completion_tokens"] == 300


def test_missing_max_tokens_uses_the_given_default_else_4096() -> None:
    params: dict[str, Any] = {"messages": []}
    assert chat_to_messages(params, model=CLAUDE)["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert chat_to_messages(params, model=CLAUDE, default_max_tokens=64000)["max_tokens"] == 64000


def test_user_becomes_metadata_user_id_and_back() -> None:
    translated = chat_to_messages({"messages": [], "user": "u-1"}, model=CLAUDE)
    assert translated["metadata"] == {"user_id": "u-1"}
    assert _round_trip({"messages": [], "user": "u-1"})["user"] == "u-1"


def test_the_target_model_replaces_the_requested_one() -> None:
    assert chat_to_messages({"model": GPT, "messages": []}, model=CLAUDE)["model"] == CLAUDE
    assert messages_to_chat({"model": CLAUDE, "messages": []}, model=GPT)["model"] == GPT


def test_serving_hints_are_dropped() -> None:
    params = {"messages": [], "seed": 7, "store": True, "service_tier": "flex", "n": 1, "top_p": 1}
    assert chat_to_messages(params, model=CLAUDE) == {
        "model": CLAUDE,
        "messages": [],
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    params = {"messages": [], "max_tokens": 5, "service_tier": "auto", "cache_control": {}}
    assert messages_to_chat(params, model=GPT) == {
        "model": GPT,
        "messages": [],
        "max_completion_tokens": 5,
    }


# -- requests: refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"n": 2}, "n=2 has no Anthropic equivalent"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "json_schema has no direct Anthropic equivalent",
        ),
        ({"response_format": {"type": "json_object"}}, "json_object"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"stream": True}, "stream"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"extra_body": {"x": 1}}, "extra_body"),
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"verbosity": "low"}, "verbosity"),
    ],
)
def test_openai_only_parameters_are_refused_with_a_reason(
    extra: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Untranslatable, match=reason):
        chat_to_messages({"messages": [{"role": "user", "content": "x"}], **extra}, model=CLAUDE)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
            },
            "input_audio",
        ),
        ({"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}, "file"),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]},
            "image URL",
        ),
        ({"role": "user", "content": "x", "name": "bob"}, "name"),
        ({"role": "function", "name": None, "content": "x"}, "function"),
        (
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
                ],
            },
            "not valid JSON",
        ),
    ],
)
def test_openai_messages_without_an_anthropic_form_are_refused(
    message: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Untranslatable, match=reason):
        chat_to_messages({"messages": [message]}, model=CLAUDE)


def test_a_system_message_after_the_conversation_started_is_refused() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]
    with pytest.raises(Untranslatable, match="system message after the conversation started"):
        chat_to_messages({"messages": messages}, model=CLAUDE)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "thinking"),
        ({"container": "container_1"}, "container"),
        ({"top_k": 5}, "top_k"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "limit of 4"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tool"),
        ({"inference_geo": "us"}, "inference_geo"),
        ({"output_config": {"effort": "low"}}, "output_config"),
        ({"mcp_servers": []}, "mcp_servers"),
    ],
)
def test_anthropic_only_parameters_are_refused_with_a_reason(
    extra: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Untranslatable, match=reason):
        messages_to_chat({"max_tokens": 5, "messages": [], **extra}, model=GPT)


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "x"},
            },
            "document",
        ),
        ({"type": "image", "source": {"type": "file", "file_id": "f"}}, "file image sources"),
        (
            {"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True},
            "is_error",
        ),
        (
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}],
            },
            "image blocks",
        ),
    ],
)
def test_anthropic_content_without_an_openai_form_is_refused(
    block: dict[str, Any], reason: str
) -> None:
    params = {"max_tokens": 5, "messages": [{"role": "user", "content": [block]}]}
    with pytest.raises(Untranslatable, match=reason):
        messages_to_chat(params, model=GPT)


def test_anthropic_thinking_blocks_in_history_are_refused() -> None:
    turn = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
    }
    with pytest.raises(Untranslatable, match="thinking"):
        messages_to_chat({"max_tokens": 5, "messages": [turn]}, model=GPT)


def test_untranslatable_message_is_the_reason() -> None:
    with pytest.raises(Untranslatable) as caught:
        chat_to_messages({"messages": [], "n": 2}, model=CLAUDE)
    assert str(caught.value) == "n=2 has no Anthropic equivalent"


# -- answers --------------------------------------------------------------------------------


def test_an_anthropic_answer_becomes_a_real_chat_completion() -> None:
    completion = message_to_chat(_anthropic_message(), requested_model=GPT)
    assert type(completion) is openai.types.chat.ChatCompletion
    assert openai.types.chat.ChatCompletion.model_validate(completion.model_dump()) == completion
    assert completion.choices[0].message.content == "Hi there"
    assert completion.choices[0].finish_reason == "stop"


def test_the_chat_completion_names_the_model_that_served() -> None:
    completion = message_to_chat(_anthropic_message(), requested_model=GPT)
    assert completion.model == "claude-haiku-4-5"


def test_anthropic_usage_becomes_openai_usage_including_cache_tokens() -> None:
    usage = message_to_chat(_anthropic_message(), requested_model=GPT).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (130, 5, 135)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.prompt_tokens_details.cache_write_tokens == 20


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    completion = message_to_chat(_anthropic_message(stop_reason=stop_reason), requested_model=GPT)
    assert completion.choices[0].finish_reason == finish_reason


def test_tool_use_blocks_become_tool_calls_with_json_arguments() -> None:
    message = _anthropic_message(
        content=[
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
        ],
        stop_reason="tool_use",
    )
    choice = message_to_chat(message, requested_model=GPT).choices[0]
    assert choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.id, call.function.name) == ("toolu_1", "weather")
    assert json.loads(call.function.arguments) == {"city": "Oslo"}


def test_thinking_blocks_in_an_anthropic_answer_are_refused() -> None:
    message = _anthropic_message(content=[{"type": "thinking", "thinking": "x", "signature": "s"}])
    with pytest.raises(Untranslatable, match="thinking"):
        message_to_chat(message, requested_model=GPT)


def test_an_openai_answer_becomes_a_real_anthropic_message() -> None:
    message = chat_to_message(_chat_completion(content="Hello"), requested_model=CLAUDE)
    assert type(message) is anthropic.types.Message
    assert anthropic.types.Message.model_validate(message.model_dump()) == message
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello"
    assert message.model == "gpt-4o-2024-08-06"
    assert message.stop_reason == "end_turn"


def test_openai_usage_becomes_anthropic_usage_excluding_cache_tokens_from_input() -> None:
    usage = chat_to_message(_chat_completion(content="x"), requested_model=CLAUDE).usage
    assert usage.input_tokens == 10
    assert usage.cache_read_input_tokens == 100
    assert usage.cache_creation_input_tokens == 20
    assert usage.output_tokens == 5


def test_answers_survive_a_round_trip_with_usage_and_tool_calls() -> None:
    original = _anthropic_message(
        content=[
            {"type": "text", "text": "On it.", "citations": None},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
        ],
        stop_reason="tool_use",
    )
    back = chat_to_message(message_to_chat(original, requested_model=GPT), requested_model=CLAUDE)
    assert back.content == original.content
    assert back.stop_reason == original.stop_reason
    assert back.usage.model_dump(exclude_none=True) == original.usage.model_dump(exclude_none=True)


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_finish_reasons_map_to_stop_reasons(finish_reason: str, stop_reason: str) -> None:
    completion = _chat_completion(content="x", finish_reason=finish_reason)
    assert chat_to_message(completion, requested_model=CLAUDE).stop_reason == stop_reason


def test_an_openai_refusal_becomes_a_refusal_stop_with_its_text() -> None:
    message = chat_to_message(_chat_completion(refusal="I can't."), requested_model=CLAUDE)
    assert message.stop_reason == "refusal"
    assert message.content[0].type == "text"
    assert message.content[0].text == "I can't."


def test_openai_tool_calls_become_tool_use_blocks() -> None:
    completion = _chat_completion(
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
        finish_reason="tool_calls",
    )
    message = chat_to_message(completion, requested_model=CLAUDE)
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("call_1", "weather", {"city": "Oslo"})


def test_an_openai_answer_with_several_choices_is_refused() -> None:
    completion = _chat_completion(content="x")
    completion.choices.append(completion.choices[0])
    with pytest.raises(Untranslatable, match="2 choices"):
        chat_to_message(completion, requested_model=CLAUDE)


# -- property and end to end ----------------------------------------------------------------

_text = st.text(min_size=1, max_size=20)


@st.composite
def _text_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_text)})
    turns = draw(st.integers(min_value=1, max_value=6))
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        if draw(st.booleans()):
            content: Any = draw(_text)
        else:
            parts = draw(st.lists(_text, min_size=1, max_size=3))
            content = [{"type": "text", "text": t} for t in parts]
        messages.append({"role": role, "content": content})
    return messages


@given(_text_conversations())
def test_text_conversations_survive_chat_to_messages_to_chat(
    messages: list[dict[str, Any]],
) -> None:
    back = _round_trip({"messages": messages})["messages"]
    assert back == messages


def test_a_fallback_to_the_fake_anthropic_gives_a_chat_completion_with_its_text() -> None:
    fake = FakeProvider()
    fake.reply("Bonjour from Claude")
    client = fake.anthropic()
    params = {
        "model": GPT,
        "messages": [
            {"role": "system", "content": "Be French."},
            {"role": "user", "content": "Hello"},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
    }
    message = client.messages.create(**chat_to_messages(params, model=CLAUDE))
    completion = message_to_chat(message, requested_model=GPT)
    assert type(completion) is openai.types.chat.ChatCompletion
    assert completion.choices[0].message.content == "Bonjour from Claude"
    assert completion.model == CLAUDE
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0


def test_a_fallback_to_the_fake_openai_gives_an_anthropic_message_with_its_text() -> None:
    fake = FakeProvider()
    fake.reply("Hello from GPT")
    params = {
        "model": CLAUDE,
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
        "stop_sequences": ["END"],
    }
    completion = fake.openai().chat.completions.create(**messages_to_chat(params, model=GPT))
    message = chat_to_message(completion, requested_model=CLAUDE)
    assert type(message) is anthropic.types.Message
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from GPT"
    assert message.model.startswith(GPT)
