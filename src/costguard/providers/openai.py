"""OpenAI operations: chat completions, responses and embeddings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .._normalise import (
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
)
from .._usage import Usage
from . import REQUEST_OPTIONS, Operation, Reading, dump, pieces, rebuild_as, sdk_stream, sse

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
    """Watches a chat stream; hides the usage-only chunk when costguard asked for it.

    Notes the completion's id (every chunk carries it) and each choice's finish reason (sent
    once per choice, in its last chunk) as they pass, whether or not the answer is collected.
    """

    __slots__ = ("_hide_usage", "_reasons", "_state", "model", "response_id", "tier", "usage")

    def __init__(self, params: Mapping[str, Any], collect: bool = False) -> None:
        self._hide_usage = not _asked_for_usage(params)
        self.model: str | None = None
        self.response_id: str | None = None
        self.tier: str | None = None
        self.usage: Any = None
        self._reasons: dict[int, str] = {}  # choice index -> finish reason
        self._state: Any = None
        if collect:
            from openai.lib.streaming.chat._completions import ChatCompletionStreamState

            self._state = ChatCompletionStreamState()

    def feed(self, chunk: Any) -> bool:
        if self._state is not None:
            for _ in self._state.handle_chunk(chunk):
                pass
        if self.model is None:
            self.model = chunk.model
            self.response_id = chunk.id
        if chunk.service_tier is not None:
            self.tier = chunk.service_tier
        choices = chunk.choices
        # The API sends one choice per chunk; look further only when a chunk has more.
        if choices and (choices[0].finish_reason is not None or len(choices) > 1):
            for choice in choices:
                if choice.finish_reason is not None:
                    self._reasons[choice.index] = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
            return not (self._hide_usage and not choices)
        return True

    @property
    def finish_reasons(self) -> tuple[str, ...]:
        """One finish reason per finished choice, in choice order."""
        reasons = self._reasons
        return tuple(reasons[index] for index in sorted(reasons))

    def result(self) -> Reading:
        final = None
        if self._state is not None and self.model is not None:
            try:
                completion = self._state.get_final_completion()
            except Exception:  # an unfinished stream has no final answer to keep
                completion = None
            if completion is not None:
                final = _rebuild_chat(completion.model_dump(mode="json", exclude_unset=True))
        return Reading(
            usage=usage_from_openai_chat(self.usage) if self.usage is not None else None,
            raw_usage=dump(self.usage),
            served_model=self.model,
            service_tier=self.tier,
            final=final,
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


def _rebuild_chat(data: Mapping[str, Any]) -> Any:
    from openai.types.chat import ChatCompletion

    return rebuild_as(ChatCompletion, data)


def _chat_cacheable(completion: Any) -> bool:
    return all(
        choice.finish_reason != "content_filter" and not choice.message.refusal
        for choice in completion.choices
    )


def _replay_chat(completion: Any, params: Mapping[str, Any], client: Any, is_async: bool) -> Any:
    """A live-looking chunk stream of ``completion``, ending with usage if it was asked for."""
    import openai
    from openai.types.chat import ChatCompletionChunk

    with_usage = _asked_for_usage(params)
    head = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "service_tier": completion.service_tier,
        "system_fingerprint": completion.system_fingerprint,
    }
    if with_usage:
        head["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice]}

    events: list[tuple[str | None, Mapping[str, Any]]] = []
    for choice in completion.choices:
        message, i = choice.message, choice.index
        events.append((None, chunk(i, {"role": "assistant", "content": "", "refusal": None})))
        for piece in pieces(message.content) if message.content else []:
            events.append((None, chunk(i, {"content": piece})))
        for n, call in enumerate(message.tool_calls or []):
            opening = {"index": n, "id": call.id, "type": call.type}
            opening["function"] = {"name": call.function.name, "arguments": ""}
            events.append((None, chunk(i, {"tool_calls": [opening]})))
            for piece in pieces(call.function.arguments):
                args = {"index": n, "function": {"arguments": piece}}
                events.append((None, chunk(i, {"tool_calls": [args]})))
        events.append((None, chunk(i, {}, choice.finish_reason)))
    if with_usage and completion.usage is not None:
        usage = completion.usage.model_dump(mode="json", exclude_unset=True)
        events.append((None, {**head, "choices": [], "usage": usage}))
    stream_cls = openai.AsyncStream if is_async else openai.Stream
    return sdk_stream(client, stream_cls, ChatCompletionChunk, sse(events, done=True))


def _rebuild_response(data: Mapping[str, Any]) -> Any:
    from openai.types.responses import Response

    return rebuild_as(Response, data)


def _response_cacheable(response: Any) -> bool:
    if response.status != "completed":
        return False
    for item in response.output:
        for part in getattr(item, "content", None) or []:
            if getattr(part, "type", None) == "refusal":
                return False
    return True


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesStream:
    """Watches a Responses stream: its last event carries the whole response and usage; the
    first (``response.created``) already carries the id."""

    __slots__ = ("collect", "final", "reading", "response_id")

    def __init__(self, params: Mapping[str, Any], collect: bool = False) -> None:
        self.reading = Reading(served_model=params.get("model"))
        self.collect = collect
        self.final: Any = None
        self.response_id: str | None = None

    def feed(self, event: Any) -> bool:
        kind = event.type
        if kind in _FINAL_RESPONSE_EVENTS:
            self.reading = _read_response(event.response)
            self.final = event.response
            self.response_id = event.response.id
        elif kind == "response.created":
            self.response_id = event.response.id
        return True

    @property
    def finish_reasons(self) -> tuple[str, ...]:
        """The final status (``"completed"``, ``"failed"``), or why the response is
        incomplete (``"max_output_tokens"``); ``()`` before the last event."""
        response = self.final
        if response is None:
            return ()
        reason = getattr(response.incomplete_details, "reason", None)
        status = response.status
        if isinstance(reason, str):
            return (reason,)
        return (status,) if isinstance(status, str) else ()

    def result(self) -> Reading:
        if self.final is None or not self.collect:  # rebuilding the answer costs; only if asked
            return self.reading
        final = _rebuild_response(self.final.model_dump(mode="json", exclude_unset=True))
        return replace(self.reading, final=final)


def _replay_response(response: Any, params: Mapping[str, Any], client: Any, is_async: bool) -> Any:
    """The Responses API's event sequence for ``response``, ending with response.completed."""
    import openai
    from openai.types.responses import ResponseStreamEvent

    full = response.model_dump(mode="json", exclude_unset=True)
    events: list[tuple[str | None, Mapping[str, Any]]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **fields}))

    opening = {**full, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=opening)
    emit("response.in_progress", response=opening)
    for index, item in enumerate(full.get("output", [])):
        emit("response.output_item.added", output_index=index, item=_opened(item))
        item_id = item.get("id")
        if item.get("type") == "function_call":
            for piece in pieces(item.get("arguments", "")):
                emit(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=index,
                    delta=piece,
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                arguments=item.get("arguments", ""),
            )
        for part_index, part in enumerate(item.get("content") or []):
            where = {"item_id": item_id, "output_index": index, "content_index": part_index}
            if part.get("type") != "output_text":
                emit("response.content_part.added", **where, part=part)
                emit("response.content_part.done", **where, part=part)
                continue
            emit("response.content_part.added", **where, part={**part, "text": ""})
            for piece in pieces(part.get("text", "")):
                emit("response.output_text.delta", **where, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, text=part.get("text", ""), logprobs=[])
            emit("response.content_part.done", **where, part=part)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=full)
    stream_cls = openai.AsyncStream if is_async else openai.Stream
    return sdk_stream(client, stream_cls, ResponseStreamEvent, sse(events))


def _opened(item: Mapping[str, Any]) -> dict[str, Any]:
    """An output item as announced before its content streams in."""
    opened = {**item, "status": "in_progress"}
    if "content" in opened:
        opened["content"] = []
    if opened.get("type") == "function_call":
        opened["arguments"] = ""
    return opened


def _read_embeddings(response: Any) -> Reading:
    raw = dump(response.usage)
    return Reading(
        usage=usage_from_openai_embeddings(raw),
        raw_usage=raw,
        served_model=response.model,
    )


def _rebuild_embeddings(data: Mapping[str, Any]) -> Any:
    from openai.types import CreateEmbeddingResponse

    return rebuild_as(CreateEmbeddingResponse, data)


class _NoStream:
    def __init__(self, params: Mapping[str, Any], collect: bool = False) -> None:
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
        family="openai.chat",
        rebuild=_rebuild_chat,
        cacheable=_chat_cacheable,
        replay=_replay_chat,
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
        family="openai.responses",
        rebuild=_rebuild_response,
        cacheable=_response_cacheable,
        replay=_replay_response,
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
        family="openai.embeddings",
        rebuild=_rebuild_embeddings,
        cacheable=lambda response: True,
        read=_read_embeddings,
        accumulator=_NoStream,
        noise_params=frozenset({"user"}) | REQUEST_OPTIONS,
        output_params=frozenset({"input", "model", "dimensions", "encoding_format", "extra_body"}),
    ),
)
