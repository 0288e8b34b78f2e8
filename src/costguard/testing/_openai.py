"""The fake OpenAI API: chat completions, responses, embeddings and models, as JSON and SSE.

Shapes follow what the API sends (and what ``openai.types`` parses), including the parts that
bite stream consumers:

- Chat Completions streams are ``data: {chunk}`` lines without ``event:`` names, ending with
  ``data: [DONE]``. Usage arrives only with ``stream_options={"include_usage": true}``: then
  every chunk carries ``"usage": null`` and one last chunk has ``"choices": []`` and the usage.
  An error mid-stream is a ``data: {"error": {...}}`` line and no ``[DONE]``.
- Responses streams name every event (``event: response.output_text.delta``), each with a
  ``sequence_number`` from 0, end with ``response.completed`` (or ``response.incomplete``
  when ``max_output_tokens`` cut the answer) carrying the full response with usage, and send
  no ``[DONE]``. A failure mid-stream is a ``response.failed`` event.
- ``prompt_tokens`` / ``input_tokens`` include the cached tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx2

from .._usage import Usage
from ._script import Endpoint, Failure, ToolCall
from ._wire import (
    HEX,
    Answer,
    CacheSplit,
    Exchange,
    Handler,
    Ids,
    dumps,
    json_pieces,
    json_response,
    last_user_text,
    mappings,
    prefix_hashes,
    prompt_tokens,
    retry_headers,
    settle_usage,
    sse_response,
    stream_pieces,
    text_of,
    text_tokens,
)

__all__ = [
    "CACHE_IDLE_SECONDS",
    "FAKE_API_KEY",
    "HANDLERS",
    "MODELS",
    "ROUTES",
    "STREAM_ERROR_STATUS",
    "error_json",
    "error_response",
    "not_found",
]

FAKE_API_KEY = "sk-fake-" + "0" * 40

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
"""What ``GET /v1/models`` lists."""

_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSIONS = 1536

# status -> (error.type, error.code, message); "{model}" and "{wait}" are filled in.
_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (scripted by FakeProvider)."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake-****0000. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in {wait}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}

ROUTES: Mapping[tuple[str, str], Endpoint] = {
    ("POST", "/chat/completions"): "chat.completions",
    ("POST", "/responses"): "responses",
    ("POST", "/embeddings"): "embeddings",
    ("GET", "/models"): "models",
}
"""(method, path suffix) -> the endpoint it serves."""

STREAM_ERROR_STATUS = 500
"""What a scripted ``stream_error`` answers a request that does not stream."""


def _headers(ids: Ids) -> dict[str, str]:
    return {
        "x-request-id": ids.make("req_", 32, HEX),
        "openai-version": "2020-10-01",
        "openai-processing-ms": "0",
    }


def error_json(
    message: str, error_type: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    """The API's error body."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _error_body(status: int, *, model: str, message: str | None, wait: str) -> dict[str, Any]:
    default_type = "invalid_request_error" if status < 500 else "server_error"
    error_type, code, template = _ERRORS.get(status, (default_type, None, f"Error {status}."))
    text = message if message is not None else template.format(model=model, wait=wait)
    return error_json(text, error_type, code)


def error_response(
    status: int,
    ids: Ids,
    *,
    model: str,
    message: str | None = None,
    retry_after: float | None = None,
) -> httpx2.Response:
    """An HTTP error exactly as the API sends one, with ``retry-after`` headers if given."""
    headers = {**_headers(ids), **retry_headers(retry_after)}
    wait = "20s" if retry_after is None else f"{retry_after:g}s"
    return json_response(
        status, _error_body(status, model=model, message=message, wait=wait), headers
    )


def not_found(method: str, path: str, ids: Ids) -> httpx2.Response:
    return json_response(404, error_json(f"Invalid URL ({method} {path})"), _headers(ids))


def _service_tier(ex: Exchange) -> str:
    if ex.reply.service_tier is not None:
        return ex.reply.service_tier
    asked = ex.body.get("service_tier")
    if asked in ("flex", "priority", "scale"):
        return str(asked)
    if asked == "fast":  # the API reports Fast mode as priority
        return "priority"
    return "default"


def _fingerprint(ex: Exchange) -> str:
    return "fp_" + hashlib.sha256(f"{ex.seed}:{ex.served_model}".encode()).hexdigest()[:10]


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- chat completions ----------------------------------------------------------------------


def _chat_usage(ex: Exchange, usage: Usage) -> dict[str, Any]:
    if isinstance(ex.reply.usage, Mapping):
        return dict(ex.reply.usage)
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_completions(ex: Exchange) -> httpx2.Response:
    """A chat completion; streamed, it breaks mid-way if ``ex.failure`` says so."""
    body = ex.body
    messages = mappings(body.get("messages"))
    n = _int_or_none(body.get("n")) or 1
    limit = _int_or_none(body.get("max_completion_tokens")) or _int_or_none(body.get("max_tokens"))
    answer = Answer(ex, last_user_text(messages), limit)
    tools = mappings(body.get("tools")) or None
    lead = [tools] if tools else []
    simulate = functools.partial(
        _prompt_cache,
        ex,
        [*lead, *messages],
        lambda i: prompt_tokens(ex.model, messages[: i + 1 - len(lead)], tools=tools),
    )
    prompt = prompt_tokens(ex.model, messages, tools=tools)
    usage = _chat_usage(ex, settle_usage(ex.reply, prompt, answer.visible_tokens * n, simulate))
    finish = ex.reply.finish_reason or (
        "tool_calls" if answer.tool_calls else "length" if answer.truncated else "stop"
    )
    # Each choice has its own tool-call ids.
    calls = [
        [(call.id or ex.ids.make("call_", 24), call) for call in answer.tool_calls]
        for _ in range(n)
    ]
    head = {"id": ex.ids.make("chatcmpl-", 29), "created": ex.created, "model": ex.served_model}
    tail = {"service_tier": _service_tier(ex), "system_fingerprint": _fingerprint(ex)}
    if not ex.stream:
        choices = [
            {
                "index": index,
                "message": _chat_message(answer.text, calls[index]),
                "logprobs": None,
                "finish_reason": finish,
            }
            for index in range(n)
        ]
        completion = {**head, "object": "chat.completion", "choices": choices, "usage": usage}
        return json_response(200, {**completion, **tail}, _headers(ex.ids))

    options = body.get("stream_options")
    options = options if isinstance(options, Mapping) else {}
    include_usage = options.get("include_usage") is True
    obfuscate = options.get("include_obfuscation") is not False
    events: list[bytes] = []

    def send(choices: list[dict[str, Any]], chunk_usage: dict[str, Any] | None = None) -> None:
        chunk = {**head, "object": "chat.completion.chunk", **tail, "choices": choices}
        if include_usage:
            chunk["usage"] = chunk_usage
        if obfuscate:
            chunk["obfuscation"] = ex.ids.make("", 8)
        events.append(f"data: {dumps(chunk)}\n\n".encode())

    for index in range(n):
        for delta, finish_reason in _chat_deltas(answer.text, calls[index], finish):
            if ex.failure and (finish_reason or len(events) >= 3):
                error = _error_body(500, model=ex.model, message=ex.failure.message, wait="")
                events.append(f"data: {dumps(error)}\n\n".encode())
                return sse_response(events, _headers(ex.ids))
            choice = {"index": index, "delta": delta, "logprobs": None}
            send([{**choice, "finish_reason": finish_reason}])
    if include_usage:
        send([], usage)
    events.append(b"data: [DONE]\n\n")
    return sse_response(events, _headers(ex.ids))


def _chat_message(text: str | None, calls: list[tuple[str, ToolCall]]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call_id, call in calls
        ]
    return message


def _chat_deltas(
    text: str | None, calls: list[tuple[str, ToolCall]], finish: str
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """One choice's stream: (delta, finish_reason) per chunk, as the API sends them."""
    first: dict[str, Any] = {
        "role": "assistant",
        "content": None if text is None else "",
        "refusal": None,
    }
    pieces = stream_pieces(text or "")
    # With only tool calls, the role rides on the first tool-call chunk.
    if pieces or not calls:
        yield first, None
        first = {}
    for piece in pieces:
        yield {"content": piece}, None
    for position, (call_id, call) in enumerate(calls):
        start = {"index": position, "id": call_id, "type": "function"}
        yield (
            {**first, "tool_calls": [{**start, "function": {"name": call.name, "arguments": ""}}]},
            None,
        )
        first = {}
        for piece in json_pieces(call.arguments_json):
            yield {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}, None
    yield {}, finish


# -- responses -----------------------------------------------------------------------------


def _responses_messages(value: object) -> list[dict[str, Any]]:
    """Responses ``input`` as chat-style messages, for counting and the default answer."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    for item in mappings(value):
        kind = item.get("type")
        if isinstance(item.get("role"), str):
            messages.append({"role": item["role"], "content": item.get("content", "")})
        elif kind == "function_call":
            messages.append(
                {
                    "role": "assistant",
                    "content": f"{item.get('name', '')} {item.get('arguments', '')}",
                }
            )
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "content": text_of(output) or str(output or "")})
    return messages


def _responses_usage(ex: Exchange, usage: Usage) -> dict[str, Any]:
    if isinstance(ex.reply.usage, Mapping):
        return dict(ex.reply.usage)
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _responses(ex: Exchange) -> httpx2.Response:
    """A response; streamed, it ends in ``response.failed`` if ``ex.failure`` says so."""
    body = ex.body
    messages = _responses_messages(body.get("input"))
    instructions = body.get("instructions")
    tools = mappings(body.get("tools")) or None
    limit = _int_or_none(body.get("max_output_tokens"))
    answer = Answer(ex, last_user_text(messages), limit)
    system = instructions if isinstance(instructions, str) else None
    lead = [[system, tools]] if system or tools else []
    simulate = functools.partial(
        _prompt_cache,
        ex,
        [*lead, *messages],
        lambda i: prompt_tokens(
            ex.model, messages[: i + 1 - len(lead)], tools=tools, system=system
        ),
    )
    prompt = prompt_tokens(ex.model, messages, tools=tools, system=system)
    usage = settle_usage(ex.reply, prompt, answer.visible_tokens, simulate)
    # Responses has no finish reason: a cut answer (or a scripted "length") is "incomplete".
    cut = answer.truncated or ex.reply.finish_reason in (
        "length",
        "max_tokens",
        "max_output_tokens",
    )
    status = "incomplete" if cut else "completed"

    output: list[dict[str, Any]] = []
    if ex.reply.reasoning_tokens:
        output.append({"id": ex.ids.make("rs_", 48, HEX), "type": "reasoning", "summary": []})
    if answer.text is not None:
        output.append(
            {
                "id": ex.ids.make("msg_", 48, HEX),
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [_output_text(answer.text)],
            }
        )
    for call in answer.tool_calls:
        output.append(
            {
                "id": ex.ids.make("fc_", 48, HEX),
                "type": "function_call",
                "status": "completed",
                "arguments": call.arguments_json,
                "call_id": call.id or ex.ids.make("call_", 24),
                "name": call.name,
            }
        )

    reasoning = body.get("reasoning")
    text_config = body.get("text")
    response: dict[str, Any] = {
        "id": ex.ids.make("resp_", 48, HEX),
        "object": "response",
        "created_at": ex.created,
        "status": status,
        "background": body.get("background") is True,
        "completed_at": ex.created if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": instructions,
        "max_output_tokens": limit,
        "max_tool_calls": _int_or_none(body.get("max_tool_calls")),
        "model": ex.served_model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {
            "effort": reasoning.get("effort") if isinstance(reasoning, Mapping) else None,
            "summary": reasoning.get("summary") if isinstance(reasoning, Mapping) else None,
        },
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": _service_tier(ex),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text_config
        if isinstance(text_config, Mapping)
        else {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(tools or []),
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _responses_usage(ex, usage),
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    if not ex.stream:
        return json_response(200, response, _headers(ex.ids))
    return sse_response(_response_events(response, ex.failure), _headers(ex.ids))


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _response_events(response: dict[str, Any], failure: Failure | None) -> list[bytes]:
    """The stream of ``response``; with a ``failure``, it ends in ``response.failed`` after a
    couple of text deltas."""
    events: list[bytes] = []

    def send(event_type: str, **fields: Any) -> None:
        data = {"type": event_type, "sequence_number": len(events), **fields}
        events.append(f"event: {event_type}\ndata: {dumps(data)}\n\n".encode())

    in_progress = {
        **response,
        "status": "in_progress",
        "completed_at": None,
        "incomplete_details": None,
        "output": [],
        "usage": None,
    }
    send("response.created", response=in_progress)
    send("response.in_progress", response=in_progress)
    for output_index, item in enumerate(response["output"]):
        if item["type"] == "message":
            item_id = item["id"]
            text = item["content"][0]["text"]
            where = {"item_id": item_id, "output_index": output_index, "content_index": 0}
            send(
                "response.output_item.added",
                output_index=output_index,
                item={**item, "status": "in_progress", "content": []},
            )
            send("response.content_part.added", **where, part=_output_text(""))
            pieces = stream_pieces(text)
            for piece in pieces[:2] if failure else pieces:
                send("response.output_text.delta", **where, delta=piece, logprobs=[])
            if failure:
                break
            send("response.output_text.done", **where, text=text, logprobs=[])
            send("response.content_part.done", **where, part=_output_text(text))
        elif item["type"] == "function_call":
            where = {"item_id": item["id"], "output_index": output_index}
            send(
                "response.output_item.added",
                output_index=output_index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in json_pieces(item["arguments"]):
                send("response.function_call_arguments.delta", **where, delta=piece)
            send(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            send("response.output_item.added", output_index=output_index, item=item)
        send("response.output_item.done", output_index=output_index, item=item)
    if failure:
        error = {
            "code": "server_error",
            "message": failure.message or "The server had an error while processing your request.",
        }
        failed = {**in_progress, "status": "failed", "error": error}
        send("response.failed", response=failed)
    elif response["status"] == "incomplete":
        send("response.incomplete", response=response)
    else:
        send("response.completed", response=response)
    return events


# -- embeddings and models -----------------------------------------------------------------


def _embedding(seed: int, model: str, value: str | Sequence[int], dimensions: int) -> list[float]:
    """A unit vector from hashed words (or token ids): shared words mean similar vectors.

    Each word adds +-1 at four hashed positions, so the cosine similarity of two inputs is
    roughly the share of words they have in common: identical inputs score 1.0 and inputs
    without a common word score about 0.
    """
    words = re.findall(r"\w+", value.lower()) if isinstance(value, str) else [str(t) for t in value]
    vector = [0.0] * dimensions
    for word in words or [""]:
        digest = hashlib.sha256(f"{seed}\0{model}\0{word}".encode()).digest()
        for k in range(4):
            chunk = digest[4 * k : 4 * k + 4]
            position = int.from_bytes(chunk[:3], "big") % dimensions
            vector[position] += 1.0 if chunk[3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    # Round through float32, as the API's vectors are, so "float" and "base64" agree exactly.
    return list(
        struct.unpack(
            f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in vector))
        )
    )


def _embedding_inputs(value: object) -> list[str | Sequence[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and value and all(isinstance(v, int) for v in value):
        return [list(value)]  # one input given as token ids
    if isinstance(value, Sequence):
        return [
            v if isinstance(v, str) else list(v) for v in value if isinstance(v, str | Sequence)
        ]
    return []


def _embeddings(ex: Exchange) -> httpx2.Response:
    body = ex.body
    model = ex.model
    dimensions = _int_or_none(body.get("dimensions"))
    if dimensions is not None and model == "text-embedding-ada-002":
        return error_response(
            400, ex.ids, model=model, message="This model does not support specifying dimensions."
        )
    size = dimensions or _EMBEDDING_DIMENSIONS.get(model, _DEFAULT_EMBEDDING_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(_embedding_inputs(body.get("input"))):
        vector = _embedding(ex.seed, model, item, size)
        tokens += text_tokens(model, item) if isinstance(item, str) else len(item)
        encoded: list[float] | str = (
            base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    result = {
        "object": "list",
        "data": data,
        "model": ex.served_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(200, result, _headers(ex.ids))


def _models(ex: Exchange) -> httpx2.Response:
    data = [
        {"id": model, "object": "model", "created": ex.created, "owned_by": "system"}
        for model in MODELS
    ]
    return json_response(200, {"object": "list", "data": data}, _headers(ex.ids))


# -- prompt caching ------------------------------------------------------------------------
#
# OpenAI caches prompt prefixes of 1024 tokens or more by itself and reports the part of a
# prompt it read from the cache as cached_tokens, in steps of 128 tokens past the first 1024.
# Requests meet on a cache by their prefix and their prompt_cache_key. The fake remembers, per
# model and prompt_cache_key, every prefix of the requests it answered that ends at a message
# boundary (tools and instructions first); a request reads its longest remembered prefix.
# OpenAI keeps a prefix while it is used: "typically 5 to 10 minutes of inactivity, up to an
# hour off-peak". The fake takes the low end: a prefix is forgotten 5 minutes after the last
# request that used it, or after the minimum lifetime a request's prompt_cache_options.ttl
# asks for, if longer.

CACHE_MIN_TOKENS = 1024
"""The shortest prefix OpenAI caches."""
_CACHE_STEP = 128
CACHE_IDLE_SECONDS = 300.0
"""How long the fake keeps a cached prefix after the last request that used it."""
_CACHE_TTL_SECONDS: Mapping[str, float] = {"30m": 1800.0, "12h": 43200.0}


def _cache_lifetime(body: Mapping[str, Any]) -> float:
    """Seconds a prefix stays cached after this request: the idle time, or the minimum the
    request's ``prompt_cache_options.ttl`` asks for when that is longer."""
    options = body.get("prompt_cache_options")
    ttl = options.get("ttl") if isinstance(options, Mapping) else None
    asked = _CACHE_TTL_SECONDS.get(ttl, 0.0) if isinstance(ttl, str) else 0.0
    return max(CACHE_IDLE_SECONDS, asked)


def _prompt_cache(
    ex: Exchange,
    units: Sequence[object],
    tokens_at: Callable[[int], int],
    prompt: int,
) -> CacheSplit:
    """The cache split of a ``prompt`` made of ``units`` (``tokens_at(i)`` counts units 0..i):
    the cached tokens read, and no writes (OpenAI reports none)."""
    key = ex.body.get("prompt_cache_key")
    start = ["openai", ex.model, key if isinstance(key, str) else None]
    found = ex.caches.use(prefix_hashes(start, units), _cache_lifetime(ex.body))
    tokens = tokens_at(found) if found >= 0 else 0
    if tokens < CACHE_MIN_TOKENS:
        return 0, 0, 0
    cached = CACHE_MIN_TOKENS + (tokens - CACHE_MIN_TOKENS) // _CACHE_STEP * _CACHE_STEP
    return min(cached, prompt), 0, 0


HANDLERS: Mapping[Endpoint, Handler] = {
    "chat.completions": _chat_completions,
    "responses": _responses,
    "embeddings": _embeddings,
    "models": _models,
}
"""endpoint -> what answers it."""
