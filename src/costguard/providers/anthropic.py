"""Anthropic operations: messages.create (plain and streamed) and the messages.stream helper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._normalise import usage_from_anthropic
from . import REQUEST_OPTIONS, Operation, Reading, dump

__all__ = ["OPERATIONS"]


def _tier(usage: Any) -> str | None:
    if isinstance(usage, Mapping):
        return usage.get("service_tier")
    return getattr(usage, "service_tier", None)


def _read_message(response: Any) -> Reading:
    raw = dump(response.usage)
    return Reading(
        usage=usage_from_anthropic(raw),
        raw_usage=raw,
        served_model=response.model,
        service_tier=_tier(raw),
    )


class _MessageStream:
    """Usage arrives in two parts: ``message_start`` (input side), ``message_delta`` (output)."""

    __slots__ = ("model", "usage")

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None

    def feed(self, event: Any) -> bool:
        kind = event.type
        if kind == "message_start":
            self.model = event.message.model
            self.usage = dump(event.message.usage)
        elif kind == "message_delta" and event.usage is not None:
            delta = dump(event.usage) or {}
            self.usage = {**(self.usage or {}), **{k: v for k, v in delta.items() if v is not None}}
        return True

    def result(self) -> Reading:
        if self.usage is None:
            return Reading(served_model=self.model)
        return Reading(
            usage=usage_from_anthropic(self.usage),
            raw_usage=self.usage,
            served_model=self.model,
            service_tier=_tier(self.usage),
        )


_NOISE = frozenset(
    {
        "cache_control",
        "diagnostics",
        "inference_geo",
        "metadata",
        "service_tier",
        "speed",
        "stream",
        "user_profile_id",
        "workspace_id",
    }
)
_OUTPUT = frozenset(
    {
        "max_tokens",
        "messages",
        "model",
        "container",
        "output_config",
        "stop_sequences",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "extra_body",
    }
)
_COMMON: dict[str, Any] = {
    "provider": "anthropic",
    "path": ("messages",),
    "read": _read_message,
    "accumulator": _MessageStream,
    "output_limit_params": ("max_tokens",),
    "messages_param": "messages",
    "roles": frozenset({"user", "assistant"}),
    "noise_params": _NOISE | REQUEST_OPTIONS,
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(name="messages.create", method="create", output_params=_OUTPUT, **_COMMON),
    Operation(
        name="messages.stream",
        method="stream",
        always_streams=True,
        output_params=_OUTPUT | {"output_format"},
        **{**_COMMON, "noise_params": (_NOISE - {"stream"}) | REQUEST_OPTIONS},
    ),
)
