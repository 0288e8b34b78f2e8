"""What a test can queue on a FakeProvider: scripted replies and failures, and what they match."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from .._usage import Usage

__all__ = [
    "GENERATION_ENDPOINTS",
    "Endpoint",
    "Failure",
    "FailureKind",
    "Match",
    "Provider",
    "Reply",
    "ToolCall",
    "coerce_tool_call",
    "match_for",
    "validate_failure",
]

Provider: TypeAlias = Literal["openai", "anthropic"]
"""Which API a fake client speaks."""

Endpoint: TypeAlias = Literal[
    "chat.completions",
    "responses",
    "embeddings",
    "models",
    "messages",
    "messages.count_tokens",
    "files",
    "batches",
    "messages.batches",
]
"""An endpoint the fake serves, named like the SDK resource that calls it."""

FailureKind: TypeAlias = int | Literal["timeout", "connection", "stream_error"]
"""An HTTP status code, or a failure that is not an HTTP error response."""

GENERATION_ENDPOINTS: frozenset[Endpoint] = frozenset({"chat.completions", "responses", "messages"})
"""The endpoints that produce model output; scripted items match these unless told otherwise."""

_ENDPOINTS: frozenset[str] = frozenset(get_args(Endpoint))
_PROVIDERS: frozenset[str] = frozenset(get_args(Provider))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool (function) call in a scripted reply.

    ``arguments`` is a mapping (sent as JSON) or a JSON string sent verbatim, so a test can
    also script malformed arguments. ``id`` defaults to a deterministic provider-style id
    (``call_...`` for OpenAI, ``toolu_...`` for Anthropic).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"))

    @property
    def arguments_object(self) -> dict[str, Any]:
        """The arguments as a JSON object (Anthropic's ``input``); ``{}`` if not an object."""
        if not isinstance(self.arguments, str):
            return dict(self.arguments)
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a scripted item may answer."""

    endpoints: frozenset[str] = GENERATION_ENDPOINTS
    provider: str | None = None

    def accepts(self, provider: str, endpoint: str | None) -> bool:
        if self.provider is not None and provider != self.provider:
            return False
        return endpoint in self.endpoints


def match_for(
    endpoint: Endpoint | Iterable[Endpoint] | None,
    provider: Provider | None,
    *,
    allowed: frozenset[str] = _ENDPOINTS,
) -> Match:
    """Validate the ``endpoint=`` / ``provider=`` arguments of ``reply()`` and ``fail()``."""
    if endpoint is None:
        endpoints: frozenset[str] = GENERATION_ENDPOINTS
    elif isinstance(endpoint, str):
        endpoints = frozenset({endpoint})
    else:
        endpoints = frozenset(endpoint)
    unknown = sorted(endpoints - allowed)
    if unknown or not endpoints:
        raise ValueError(f"endpoint must be one or more of {sorted(allowed)}, got {unknown or []}")
    if provider is not None and provider not in _PROVIDERS:
        raise ValueError(f"provider must be one of {sorted(_PROVIDERS)}, got {provider!r}")
    return Match(endpoints=endpoints, provider=provider)


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted (or, with every field left empty, the default) successful answer."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | Mapping[str, Any] | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    service_tier: str | None = None
    match: Match = field(default_factory=Match)


@dataclass(frozen=True, slots=True)
class Failure:
    """A scripted failure: an HTTP error, a transport error, or an error inside a stream."""

    kind: FailureKind
    retry_after: float | None = None
    message: str | None = None
    match: Match = field(default_factory=Match)


def validate_failure(kind: object, retry_after: float | None, times: int) -> None:
    if isinstance(kind, bool) or not (
        (isinstance(kind, int) and 400 <= kind <= 599)
        or kind in ("timeout", "connection", "stream_error")
    ):
        raise ValueError(
            f"status must be an HTTP error status (400-599) or one of 'timeout', 'connection', "
            f"'stream_error'; got {kind!r}"
        )
    if retry_after is not None:
        if not isinstance(kind, int):
            raise ValueError(f"retry_after only applies to HTTP error statuses, not {kind!r}")
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
    if times < 1:
        raise ValueError(f"times must be >= 1, got {times!r}")


def coerce_tool_call(value: ToolCall | Mapping[str, Any]) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        arguments = value.get("arguments", {})
        if not isinstance(arguments, str | Mapping):
            raise TypeError(f"tool call arguments must be a mapping or a JSON string: {value!r}")
        call_id = value.get("id")
        return ToolCall(
            name=value["name"],
            arguments=arguments,
            id=call_id if isinstance(call_id, str) else None,
        )
    raise TypeError(
        f"a tool call is a ToolCall or a mapping with 'name' and 'arguments', got {value!r}"
    )
