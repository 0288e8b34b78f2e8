"""Anthropic operations: messages.create (plain and streamed) and the messages.stream helper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._normalise import usage_from_anthropic
from . import REQUEST_OPTIONS, Operation, Reading, dump, pieces, rebuild_as, sdk_stream, sse

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
    """Usage arrives in two parts: ``message_start`` (input side), ``message_delta`` (output).
    So do the message's id (``message_start``) and its stop reason (``message_delta``)."""

    __slots__ = (
        "_json_bufs",
        "_snapshot",
        "collect",
        "model",
        "response_id",
        "stop_reason",
        "stopped",
        "usage",
    )

    def __init__(self, params: Mapping[str, Any], collect: bool = False) -> None:
        self.model: str | None = None
        self.response_id: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.collect = collect
        self.stopped = False
        self._snapshot: Any = None
        self._json_bufs: dict[int, bytes] = {}

    def feed(self, event: Any) -> bool:
        kind = event.type
        if kind == "message_start":
            message = event.message
            self.model = message.model
            self.response_id = message.id
            self.usage = dump(message.usage)
        elif kind == "message_delta":
            if event.delta.stop_reason is not None:
                self.stop_reason = event.delta.stop_reason
            if event.usage is not None:
                delta = dump(event.usage) or {}
                self.usage = {
                    **(self.usage or {}),
                    **{k: v for k, v in delta.items() if v is not None},
                }
        elif kind == "message_stop":
            self.stopped = True
        if self.collect:
            from anthropic.lib.streaming._messages import accumulate_event

            self._snapshot = accumulate_event(
                event=event, current_snapshot=self._snapshot, json_bufs=self._json_bufs
            )
        return True

    @property
    def finish_reasons(self) -> tuple[str, ...]:
        return () if self.stop_reason is None else (self.stop_reason,)

    def result(self) -> Reading:
        if self.usage is None:
            return Reading(served_model=self.model)
        final = None
        if self._snapshot is not None and self.stopped:
            final = _rebuild_message(self._snapshot.model_dump(mode="json", exclude_unset=True))
        return Reading(
            usage=usage_from_anthropic(self.usage),
            raw_usage=self.usage,
            served_model=self.model,
            service_tier=_tier(self.usage),
            final=final,
        )


def _rebuild_message(data: Mapping[str, Any]) -> Any:
    from anthropic.types import Message

    return rebuild_as(Message, data)


def _message_cacheable(message: Any) -> bool:
    return message.stop_reason not in (None, "refusal", "pause_turn")


def _replay_message(message: Any, params: Mapping[str, Any], client: Any, is_async: bool) -> Any:
    """The Messages API's event sequence for ``message``, as a live stream sends it."""
    import anthropic
    from anthropic.types import RawMessageStreamEvent

    full = message.model_dump(mode="json", exclude_unset=True)
    usage = full.get("usage", {})
    start = {**full, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}
    events: list[tuple[str | None, Mapping[str, Any]]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields}))

    emit("message_start", message=start)
    for index, block in enumerate(full.get("content", [])):
        kind = block.get("type")
        if kind == "text":
            emit("content_block_start", index=index, content_block={**block, "text": ""})
            for piece in pieces(block.get("text", "")):
                emit(
                    "content_block_delta", index=index, delta={"type": "text_delta", "text": piece}
                )
        elif kind == "tool_use":
            emit("content_block_start", index=index, content_block={**block, "input": {}})
            arguments = _encode(block.get("input", {}))
            for piece in pieces(arguments):
                delta = {"type": "input_json_delta", "partial_json": piece}
                emit("content_block_delta", index=index, delta=delta)
        elif kind == "thinking":
            opening = {**block, "thinking": "", "signature": ""}
            emit("content_block_start", index=index, content_block=opening)
            for piece in pieces(block.get("thinking", "")):
                delta = {"type": "thinking_delta", "thinking": piece}
                emit("content_block_delta", index=index, delta=delta)
            delta = {"type": "signature_delta", "signature": block.get("signature", "")}
            emit("content_block_delta", index=index, delta=delta)
        else:  # blocks that arrive whole
            emit("content_block_start", index=index, content_block=block)
        emit("content_block_stop", index=index)
    stop = {"stop_reason": full.get("stop_reason"), "stop_sequence": full.get("stop_sequence")}
    emit("message_delta", delta=stop, usage=usage)
    emit("message_stop")
    stream_cls = anthropic.AsyncStream if is_async else anthropic.Stream
    return sdk_stream(client, stream_cls, RawMessageStreamEvent, sse(events))


_encode = json.JSONEncoder(separators=(",", ":")).encode


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
    "family": "anthropic.messages",
    "rebuild": _rebuild_message,
    "cacheable": _message_cacheable,
    "replay": _replay_message,
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
