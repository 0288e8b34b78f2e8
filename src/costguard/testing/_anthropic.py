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

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2

from .._usage import Usage
from ._script import Endpoint, Failure
from ._wire import (
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
    rfc3339,
    settle_usage,
    sse_response,
    stream_pieces,
)

__all__ = [
    "FAKE_API_KEY",
    "HANDLERS",
    "ID_ALPHABET",
    "MODELS",
    "ROUTES",
    "STREAM_ERROR_STATUS",
    "error_response",
    "not_found",
]

FAKE_API_KEY = "sk-ant-fake-" + "0" * 36

MODELS: Mapping[str, tuple[str, str]] = {
    "claude-opus-4-5": ("Claude Opus 4.5", "opus"),
    "claude-haiku-4-5": ("Claude Haiku 4.5", "haiku"),
}
"""What ``GET /v1/models`` lists: id -> (display name, model line)."""

ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
"""Anthropic's id alphabet (base58-like: no 0, O, I or l)."""

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

ROUTES: Mapping[tuple[str, str], Endpoint] = {
    ("POST", "/messages/count_tokens"): "messages.count_tokens",
    ("POST", "/messages"): "messages",
    ("GET", "/models"): "models",
}
"""(method, path suffix) -> the endpoint it serves."""

STREAM_ERROR_STATUS = 529
"""What a scripted ``stream_error`` answers a request that does not stream: overloaded."""


def _request_id(ids: Ids) -> str:
    return ids.make("req_011C", 20, ID_ALPHABET)


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
    headers = {"request-id": request_id, **retry_headers(retry_after)}
    body = {**_error_body(status, model=model, message=message), "request_id": request_id}
    return json_response(status, body, headers)


def not_found(method: str, path: str, ids: Ids) -> httpx2.Response:
    return error_response(404, ids, model="", message="Not Found")


def _system(value: object) -> str | list[Mapping[str, Any]] | None:
    if isinstance(value, str):
        return value
    blocks = mappings(value)
    return blocks or None


def _prompt(ex: Exchange) -> int:
    body = _strip(ex.body)  # cache_control markers are not prompt tokens
    return prompt_tokens(
        ex.model,
        mappings(body.get("messages")),
        tools=mappings(body.get("tools")) or None,
        system=_system(body.get("system")),
    )


def _usage(ex: Exchange, usage: Usage) -> dict[str, Any]:
    if isinstance(ex.reply.usage, Mapping):
        return dict(ex.reply.usage)
    rendered: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.output_tokens,
        "service_tier": ex.reply.service_tier or "standard",
    }
    if usage.reasoning_tokens:
        rendered["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return rendered


def _messages(ex: Exchange) -> httpx2.Response:
    """A message; streamed, it breaks mid-way if ``ex.failure`` says so."""
    reply = ex.reply
    problem = _cache_control_problem(ex.body)
    if problem is not None:
        return error_response(400, ex.ids, model=ex.model, message=problem)
    limit = ex.body.get("max_tokens")
    answer = Answer(
        ex,
        last_user_text(mappings(ex.body.get("messages"))),
        limit if isinstance(limit, int) else None,
    )
    text, truncated = answer.text, answer.truncated
    simulate = functools.partial(_prompt_cache_counts, ex)
    usage = _usage(ex, settle_usage(reply, _prompt(ex), answer.visible_tokens, simulate))
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
                "id": call.id or ex.ids.make("toolu_01", 22, ID_ALPHABET),
                "name": call.name,
                "input": call.arguments_object,
            }
        )
    result = {
        "id": ex.ids.make("msg_01", 22, ID_ALPHABET),
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
    return sse_response(_events(result, tool_json, ex.failure), headers)


def _events(
    message: dict[str, Any], tool_json: Sequence[str], failure: Failure | None
) -> list[bytes]:
    """The stream of ``message``; ``tool_json`` is each tool_use block's input as sent. With a
    ``failure``, the stream breaks with an ``error`` event after a couple of deltas."""
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
            pieces = ["", *json_pieces(next(tool_inputs))]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        if index == 0:
            send("ping")
        for delta in deltas[:2] if failure else deltas:
            send("content_block_delta", index=index, delta=delta)
        if failure:
            break
        send("content_block_stop", index=index)
    if failure:
        error = _error_body(529, model="", message=failure.message)
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


def _count_tokens(ex: Exchange) -> httpx2.Response:
    return json_response(200, {"input_tokens": _prompt(ex)}, {"request-id": _request_id(ex.ids)})


def _models(ex: Exchange) -> httpx2.Response:
    created_at = rfc3339(ex.created)
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


# -- prompt caching ------------------------------------------------------------------------
#
# A request's prompt is a sequence of blocks: tools, system blocks, then each message's content
# blocks (a string is one text block). A block with ``cache_control`` (or, for a top-level
# ``cache_control``, the last block that can carry one) is a breakpoint. The cache entry of a
# breakpoint is the hash of every block up to it (markers removed), per model. A request reads
# the longest prefix found at one of its breakpoints or up to 20 blocks before one, and writes
# every breakpoint after that whose prefix reaches the model's minimum cacheable length, each
# segment at its breakpoint's TTL. ``input_tokens`` is what neither read nor wrote. Entries
# live in the FakeProvider's ``PromptCaches``, by its clock: an entry lives its breakpoint's
# TTL (5 minutes, or 1 hour for ``"ttl": "1h"``) from its write, and each read starts that
# TTL again, as the API's entries do.

_LOOKBACK = 20  # blocks the API checks, back from a breakpoint, for an earlier entry
_TTL_SECONDS: Mapping[str, float] = {"5m": 300.0, "1h": 3600.0}
_NOT_CACHEABLE = frozenset({"thinking", "redacted_thinking"})


def _strip(value: Any) -> Any:
    """``value`` without any ``cache_control`` key, at any depth."""
    if isinstance(value, Mapping):
        return {k: _strip(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _marks(block: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The cache_control marks on a block, including those inside a tool_result."""
    marks = [block["cache_control"]] if isinstance(block.get("cache_control"), Mapping) else []
    if block.get("type") == "tool_result":
        marks += [m for inner in mappings(block.get("content")) for m in _marks(inner)]
    return marks


def _blocks(body: Mapping[str, Any]) -> list[tuple[tuple[int, int, int], str, Mapping[str, Any]]]:
    """Every block of the prompt, in order: (position, role, block)."""
    found: list[tuple[tuple[int, int, int], str, Mapping[str, Any]]] = []
    for i, tool in enumerate(mappings(body.get("tools"))):
        found.append(((0, i, 0), "tools", tool))
    system = body.get("system")
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else None
    for j, block in enumerate(system_blocks or mappings(system)):
        found.append(((1, j, 0), "system", block))
    for m, message in enumerate(mappings(body.get("messages"))):
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else None
        for k, block in enumerate(blocks or mappings(content)):
            found.append(((2, m, k), str(message.get("role")), block))
    return found


def _can_carry(block: Mapping[str, Any]) -> bool:
    kind = block.get("type")
    return kind not in _NOT_CACHEABLE and (kind != "text" or bool(block.get("text")))


def _breakpoints(body: Mapping[str, Any]) -> tuple[list[tuple[int, str]], int]:
    """(block index, TTL) of each breakpoint in order, and how many cache_control marks the
    request has (a top-level one counts)."""
    blocks = _blocks(body)
    points: dict[int, str] = {}
    count = 0
    for index, (_, _, block) in enumerate(blocks):
        marks = _marks(block)
        count += len(marks)
        if marks:
            points[index] = "1h" if marks[-1].get("ttl") == "1h" else "5m"
    automatic = body.get("cache_control")
    if isinstance(automatic, Mapping):
        count += 1
        last = next((i for i in range(len(blocks) - 1, -1, -1) if _can_carry(blocks[i][2])), None)
        if last is not None:
            points.setdefault(last, "1h" if automatic.get("ttl") == "1h" else "5m")
    return sorted(points.items()), count


def _cache_control_problem(body: Mapping[str, Any]) -> str | None:
    """The API's 400 message for cache_control it refuses, or None."""
    points, count = _breakpoints(body)
    if count > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {count}."
    blocks = _blocks(body)
    for position, _, block in blocks:
        if _marks(block) and not _can_carry(block):
            what = "empty text blocks" if block.get("type") == "text" else "this block type"
            return f"cache_control cannot be set for {what} (block {position})."
        for mark in _marks(block):
            if mark.get("ttl", "5m") not in _TTL_SECONDS or mark.get("type") != "ephemeral":
                return f"cache_control at block {position}: need type 'ephemeral', ttl 5m or 1h."
    ttls = [ttl for _, ttl in points]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        return "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block."
    return None


def _prompt_cache_counts(ex: Exchange, prompt: int) -> CacheSplit:
    """(read, written for 5 minutes, written for 1 hour) prompt tokens of this request."""
    points, _ = _breakpoints(ex.body)
    if not points:
        return 0, 0, 0
    blocks = _blocks(_strip(ex.body))
    hashes = prefix_hashes(["anthropic", ex.model], blocks)

    @functools.cache
    def tokens(index: int) -> int:
        """Prompt tokens up to and including block ``index``."""
        tools: list[Mapping[str, Any]] = []
        system: list[Mapping[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for (section, m, _), role, block in blocks[: index + 1]:
            if section == 0:
                tools.append(block)
            elif section == 1:
                system.append(block)
            elif messages and messages[-1]["index"] == m:
                messages[-1]["content"].append(block)
            else:
                messages.append({"index": m, "role": role, "content": [block]})
        counted = [{"role": msg["role"], "content": msg["content"]} for msg in messages]
        return min(
            prompt, prompt_tokens(ex.model, counted, tools=tools or None, system=system or None)
        )

    from ..layers.promptcache import min_cacheable_tokens

    minimum = min_cacheable_tokens(ex.model)
    read_at = -1
    for point, _ in points:
        low = max(point - _LOOKBACK, read_at) + 1
        found = ex.caches.read(hashes[low : point + 1])
        if found >= 0:
            read_at = low + found
    read = tokens(read_at) if read_at >= 0 else 0
    written = {"5m": 0, "1h": 0}
    done = read
    for point, ttl in points:
        if point <= read_at or tokens(point) < minimum:
            continue
        written[ttl] += tokens(point) - done
        done = tokens(point)
        ex.caches.write(hashes[point], _TTL_SECONDS[ttl])
    return read, written["5m"], written["1h"]


HANDLERS: Mapping[Endpoint, Handler] = {
    "messages": _messages,
    "messages.count_tokens": _count_tokens,
    "models": _models,
}
"""endpoint -> what answers it."""
