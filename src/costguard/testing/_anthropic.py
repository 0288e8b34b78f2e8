"""The fake Anthropic API: messages (plain and streamed), count_tokens and models.

Shapes follow what the API sends (and what ``anthropic.types`` parses), including the parts
that bite stream consumers:

- ``usage.input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; ``cache_creation`` splits the writes into 5-minute and
  1-hour parts.
- A stream is named events: ``message_start`` (usage with the input side and a placeholder
  ``output_tokens`` of 1), per block ``content_block_start`` / ``content_block_delta`` /
  ``content_block_stop``, a ``ping`` after the first block starts, ``message_delta`` (the
  stop reason and CUMULATIVE usage: totals that replace, not add to, ``message_start``'s) and
  ``message_stop``.
- An error mid-stream is ``event: error`` with an ``overloaded_error`` body; the SDK raises it
  as ``anthropic.APIStatusError`` whose ``status_code`` is the stream's 200.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2

from ._script import Endpoint
from ._wire import (
    Answer,
    Exchange,
    Ids,
    TokenCounts,
    dumps,
    find_route,
    json_response,
    prompt_tokens,
    settle_usage,
    sse_response,
    stream_pieces,
    text_of,
)

__all__ = [
    "FAKE_API_KEY",
    "MODELS",
    "error_response",
    "handle",
    "not_found",
    "route",
    "stream_error",
]

FAKE_API_KEY = "sk-ant-fake-" + "0" * 36

MODELS: Mapping[str, tuple[str, str]] = {
    "claude-opus-4-5": ("Claude Opus 4.5", "opus"),
    "claude-haiku-4-5": ("Claude Haiku 4.5", "haiku"),
}
"""What ``GET /v1/models`` lists: id -> (display name, model line)."""

# Anthropic's id alphabet (base58-like: no 0, O, I or l).
_ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# status -> (error.type, message); "{model}" is filled in.
_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (scripted by FakeProvider)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
        "see the response headers for current usage. Please reduce the prompt length or the "
        "maximum tokens requested, or try again later.",
    ),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service Unavailable"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}

_ROUTES: Mapping[tuple[str, str], Endpoint] = {
    ("POST", "/messages/count_tokens"): "messages.count_tokens",
    ("POST", "/messages"): "messages",
    ("GET", "/models"): "models",
}


def route(method: str, path: str) -> Endpoint | None:
    return find_route(_ROUTES, method, path)


def handle(endpoint: Endpoint, ex: Exchange) -> httpx2.Response:
    if endpoint == "messages":
        return _messages(ex, fail_mid_stream=False)
    if endpoint == "messages.count_tokens":
        return _count_tokens(ex)
    if endpoint == "models":
        return _models(ex)
    raise AssertionError(f"not an Anthropic endpoint: {endpoint}")


def stream_error(endpoint: Endpoint, ex: Exchange, message: str | None) -> httpx2.Response:
    """A stream that starts fine and then fails; a 529 if the request did not stream."""
    if ex.stream and endpoint == "messages":
        return _messages(ex, fail_mid_stream=True, message=message)
    return error_response(529, ex.ids, model=ex.model, message=message)


def _request_id(ids: Ids) -> str:
    return ids.make("req_011C", 20, _ID_ALPHABET)


def _error_body(status: int, *, model: str, message: str | None) -> dict[str, Any]:
    default_type = "invalid_request_error" if status < 500 else "api_error"
    error_type, template = _ERRORS.get(status, (default_type, f"Error {status}."))
    text = message if message is not None else template.format(model=model)
    return {"type": "error", "error": {"type": error_type, "message": text}}


def error_response(
    status: int,
    ids: Ids,
    *,
    model: str,
    message: str | None = None,
    retry_after: float | None = None,
) -> httpx2.Response:
    """An HTTP error exactly as the API sends one, with ``retry-after`` headers if given."""
    request_id = _request_id(ids)
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = str(math.ceil(retry_after))
        headers["retry-after-ms"] = str(round(retry_after * 1000))
    body = {**_error_body(status, model=model, message=message), "request_id": request_id}
    return json_response(status, body, headers)


def not_found(method: str, path: str, ids: Ids) -> httpx2.Response:
    request_id = _request_id(ids)
    body = {
        "type": "error",
        "error": {"type": "not_found_error", "message": "Not Found"},
        "request_id": request_id,
    }
    return json_response(404, body, {"request-id": request_id})


def _mappings(value: object) -> list[Mapping[str, Any]]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _system(value: object) -> str | list[Mapping[str, Any]] | None:
    if isinstance(value, str):
        return value
    blocks = _mappings(value)
    return blocks or None


def _prompt(ex: Exchange) -> int:
    return prompt_tokens(
        ex.model,
        _mappings(ex.body.get("messages")),
        tools=_mappings(ex.body.get("tools")) or None,
        system=_system(ex.body.get("system")),
    )


def _usage(ex: Exchange, counts: TokenCounts) -> dict[str, Any]:
    if isinstance(ex.reply.usage, Mapping):
        return dict(ex.reply.usage)
    usage: dict[str, Any] = {
        "input_tokens": counts.uncached_input,
        "cache_creation_input_tokens": counts.cache_write,
        "cache_read_input_tokens": counts.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": counts.cache_write_5m,
            "ephemeral_1h_input_tokens": counts.cache_write_1h,
        },
        "output_tokens": counts.output,
        "service_tier": ex.reply.service_tier or "standard",
    }
    if counts.reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": counts.reasoning}
    return usage


def _messages(
    ex: Exchange, *, fail_mid_stream: bool, message: str | None = None
) -> httpx2.Response:
    reply = ex.reply
    messages = _mappings(ex.body.get("messages"))
    last_user = next(
        (text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    limit = ex.body.get("max_tokens")
    answer = Answer(ex, last_user, limit if isinstance(limit, int) else None)
    text, truncated = answer.text, answer.truncated
    counts = settle_usage(reply, _prompt(ex), answer.visible_tokens)
    stop_reason = reply.finish_reason or (
        "tool_use" if reply.tool_calls else "max_tokens" if truncated else "end_turn"
    )

    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    for call in reply.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id or ex.ids.make("toolu_01", 22, _ID_ALPHABET),
                "name": call.name,
                "input": call.arguments_object,
            }
        )
    usage = _usage(ex, counts)
    result = {
        "id": ex.ids.make("msg_01", 22, _ID_ALPHABET),
        "type": "message",
        "role": "assistant",
        "model": ex.served_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    headers = {"request-id": _request_id(ex.ids)}
    if not ex.stream:
        return json_response(200, result, headers)
    tool_json = [call.arguments_json for call in reply.tool_calls]
    return sse_response(_events(result, tool_json, fail_mid_stream, message), headers)


def _events(
    message: dict[str, Any],
    tool_json: Sequence[str],
    fail_mid_stream: bool,
    error_message: str | None,
) -> list[bytes]:
    """The stream of ``message``; ``tool_json`` is each tool_use block's input as sent."""
    events: list[bytes] = []

    def send(event_type: str, **fields: Any) -> None:
        data = {"type": event_type, **fields}
        events.append(f"event: {event_type}\ndata: {dumps(data)}\n\n".encode())

    usage = message["usage"]
    start_usage = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}
    start_usage.pop("output_tokens_details", None)
    send(
        "message_start",
        message={**message, "content": [], "stop_reason": None, "usage": start_usage},
    )
    if not message["content"]:
        send("ping")
    tool_inputs = iter(tool_json)
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            send("content_block_start", index=index, content_block={"type": "text", "text": ""})
            deltas = [{"type": "text_delta", "text": p} for p in stream_pieces(block["text"])]
        else:
            send("content_block_start", index=index, content_block={**block, "input": {}})
            pieces = ["", *_json_pieces(next(tool_inputs))]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        if index == 0:
            send("ping")
        for delta in deltas[:2] if fail_mid_stream else deltas:
            send("content_block_delta", index=index, delta=delta)
        if fail_mid_stream:
            break
        send("content_block_stop", index=index)
    if fail_mid_stream:
        error = _error_body(529, model="", message=error_message)
        events.append(f"event: error\ndata: {dumps(error)}\n\n".encode())
        return events
    totals = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    delta_usage = {
        key: usage[key]
        for key in (*totals, "output_tokens", "output_tokens_details")
        if key in usage
    }
    send(
        "message_delta",
        delta={"stop_reason": message["stop_reason"], "stop_sequence": None},
        usage=delta_usage,
    )
    send("message_stop")
    return events


def _json_pieces(text: str) -> list[str]:
    """Tool input as the API streams it: a few characters of JSON at a time."""
    return [text[i : i + 8] for i in range(0, len(text), 8)]


def _count_tokens(ex: Exchange) -> httpx2.Response:
    return json_response(200, {"input_tokens": _prompt(ex)}, {"request-id": _request_id(ex.ids)})


def _models(ex: Exchange) -> httpx2.Response:
    created_at = dt.datetime.fromtimestamp(ex.created, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = [
        {
            "type": "model",
            "id": model,
            "display_name": display_name,
            "created_at": created_at,
            "lifecycle": "active",
            "line": line,
            "max_input_tokens": 200_000,
            "max_tokens": 64_000,
        }
        for model, (display_name, line) in MODELS.items()
    ]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return json_response(200, body, {"request-id": _request_id(ex.ids)})
