"""OpenAI operations: chat completions, responses and embeddings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._normalise import (
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
)
from .._usage import Usage
from . import REQUEST_OPTIONS, Operation, Reading, dump

__all__ = ["OPERATIONS"]

# Parameters that never change the answer. Anything not listed here changes it (the safe side).
_CHAT_NOISE = frozenset(
    {
        "metadata",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "user",
    }
)


def _reader(normalise: Callable[[Any], Usage]) -> Callable[[Any], Reading]:
    """Reads a chat completion or a Responses object: both carry model, tier and usage."""

    def read(response: Any) -> Reading:
        raw = dump(response.usage)
        return Reading(
            usage=normalise(raw) if raw is not None else None,
            raw_usage=raw,
            served_model=response.model,
            service_tier=response.service_tier,
        )

    return read


_read_chat = _reader(usage_from_openai_chat)
_read_response = _reader(usage_from_openai_responses)


class _ChatStream:
    """Watches a chat stream; hides the usage-only chunk when costguard asked for it."""

    __slots__ = ("_hide_usage", "model", "tier", "usage")

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._hide_usage = not _asked_for_usage(params)
        self.model: str | None = None
        self.tier: str | None = None
        self.usage: Any = None

    def feed(self, chunk: Any) -> bool:
        if self.model is None:
            self.model = chunk.model
        if chunk.service_tier is not None:
            self.tier = chunk.service_tier
        if chunk.usage is not None:
            self.usage = chunk.usage
            return not (self._hide_usage and not chunk.choices)
        return True

    def result(self) -> Reading:
        return Reading(
            usage=usage_from_openai_chat(self.usage) if self.usage is not None else None,
            raw_usage=dump(self.usage),
            served_model=self.model,
            service_tier=self.tier,
        )


def _asked_for_usage(params: Mapping[str, Any]) -> bool:
    options = params.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _with_stream_usage(params: Mapping[str, Any]) -> Mapping[str, Any]:
    # The API reports a stream's usage only when asked; ask, and hide the extra chunk.
    if _asked_for_usage(params):
        return params
    options = params.get("stream_options")
    merged = (
        {**options, "include_usage": True}
        if isinstance(options, Mapping)
        else {"include_usage": True}
    )
    return {**params, "stream_options": merged}


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesStream:
    __slots__ = ("reading",)

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.reading = Reading(served_model=params.get("model"))

    def feed(self, event: Any) -> bool:
        if event.type in _FINAL_RESPONSE_EVENTS:
            self.reading = _read_response(event.response)
        return True

    def result(self) -> Reading:
        return self.reading


def _read_embeddings(response: Any) -> Reading:
    raw = dump(response.usage)
    return Reading(
        usage=usage_from_openai_embeddings(raw),
        raw_usage=raw,
        served_model=response.model,
    )


class _NoStream:
    def __init__(self, params: Mapping[str, Any]) -> None:
        raise TypeError("embeddings are never streamed")

    def feed(self, item: Any) -> bool:  # pragma: no cover - never constructed
        return True

    def result(self) -> Reading:  # pragma: no cover
        return Reading()


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        provider="openai",
        name="chat.completions.create",
        path=("chat", "completions"),
        method="create",
        read=_read_chat,
        accumulator=_ChatStream,
        prepare_stream=_with_stream_usage,
        output_limit_params=("max_completion_tokens", "max_tokens"),
        messages_param="messages",
        roles=frozenset({"system", "developer", "user", "assistant", "tool", "function"}),
        noise_params=_CHAT_NOISE | REQUEST_OPTIONS,
        output_params=frozenset(
            {
                "messages",
                "model",
                "audio",
                "frequency_penalty",
                "function_call",
                "functions",
                "logit_bias",
                "logprobs",
                "max_completion_tokens",
                "max_tokens",
                "modalities",
                "moderation",
                "n",
                "parallel_tool_calls",
                "prediction",
                "presence_penalty",
                "reasoning_effort",
                "response_format",
                "seed",
                "stop",
                "temperature",
                "tool_choice",
                "tools",
                "top_logprobs",
                "top_p",
                "verbosity",
                "web_search_options",
                "extra_body",
            }
        ),
    ),
    Operation(
        provider="openai",
        name="responses.create",
        path=("responses",),
        method="create",
        read=_read_response,
        accumulator=_ResponsesStream,
        output_limit_params=("max_output_tokens",),
        messages_param="input",
        roles=frozenset({"system", "developer", "user", "assistant"}),
        noise_params=_CHAT_NOISE | REQUEST_OPTIONS,
        output_params=frozenset(
            {
                "access_programs",
                "background",
                "background_options",
                "context_management",
                "conversation",
                "image",
                "include",
                "input",
                "instructions",
                "max_output_tokens",
                "max_tool_calls",
                "model",
                "moderation",
                "parallel_tool_calls",
                "previous_response_id",
                "prompt",
                "reasoning",
                "temperature",
                "text",
                "tool_choice",
                "tools",
                "top_logprobs",
                "top_p",
                "truncation",
                "extra_body",
            }
        ),
    ),
    Operation(
        provider="openai",
        name="embeddings.create",
        path=("embeddings",),
        method="create",
        read=_read_embeddings,
        accumulator=_NoStream,
        noise_params=frozenset({"user"}) | REQUEST_OPTIONS,
        output_params=frozenset({"input", "model", "dimensions", "encoding_format", "extra_body"}),
    ),
)
