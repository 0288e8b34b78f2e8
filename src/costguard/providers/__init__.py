"""What costguard knows about each guarded SDK operation, in one table per provider.

An :class:`Operation` says where the method lives on the client, which of its parameters change
the answer (``output_params``) and which do not (``noise_params``; together they must be exactly
the SDK method's parameters, which a test pins), how to read usage from a response, and how to
watch a stream of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._usage import Usage

if TYPE_CHECKING:
    from .._call import Outcome

__all__ = [
    "REQUEST_OPTIONS",
    "Operation",
    "Reading",
    "StreamAccumulator",
    "operations_for",
]

#: SDK per-request options that shape the HTTP request, not the body.
REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "timeout"})


@dataclass(frozen=True, slots=True)
class Reading:
    """What a response (or a finished stream) says about its own cost."""

    usage: Usage | None = None
    raw_usage: Mapping[str, Any] | None = None
    served_model: str | None = None
    service_tier: str | None = None
    final: Any = None  # a finished stream's answer as the plain SDK object, when collected

    def outcome(self, response: Any, **fields: Any) -> Outcome:
        """An Outcome returning ``response`` with what this reading says about its cost."""
        from .._call import Outcome

        return Outcome(
            response=response,
            usage=self.usage,
            raw_usage=self.raw_usage,
            served_model=self.served_model,
            service_tier=self.service_tier,
            **fields,
        )


class StreamAccumulator(Protocol):
    def feed(self, item: Any) -> bool:
        """Observe one stream item; return False to hide it from the user."""
        ...

    def result(self) -> Reading:
        """What the stream said about its cost (and, when collecting, its final answer)."""
        ...


@dataclass(frozen=True, slots=True)
class Operation:
    provider: str
    name: str
    path: tuple[str, ...]
    method: str
    read: Callable[[Any], Reading]
    accumulator: Callable[[Mapping[str, Any], bool], StreamAccumulator]
    output_params: frozenset[str]
    noise_params: frozenset[str]
    family: str  # operations whose answers are interchangeable (plain and streamed)
    rebuild: Callable[[Mapping[str, Any]], Any]  # stored JSON -> the SDK's own object
    cacheable: Callable[[Any], bool]  # False for refusals, filtered or unfinished answers
    replay: Callable[[Any, Mapping[str, Any], Any, bool], Any] | None = None  # -> SDK stream
    output_limit_params: tuple[str, ...] = ()
    messages_param: str | None = None
    roles: frozenset[str] = frozenset()
    always_streams: bool = False
    prepare_stream: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None

    @property
    def params(self) -> frozenset[str]:
        return self.output_params | self.noise_params

    def __repr__(self) -> str:
        return f"<Operation {self.provider}:{self.name}>"


def operations_for(provider: str) -> tuple[Operation, ...]:
    if provider == "openai":
        from .openai import OPERATIONS
    else:
        from .anthropic import OPERATIONS
    return OPERATIONS


def dump(model: Any) -> dict[str, Any] | None:
    """The JSON of an SDK model (or a dict), as the provider sent it."""
    if model is None:
        return None
    if isinstance(model, Mapping):
        return dict(model)
    result: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True)
    return result


def rebuild_as(model: Any, data: Mapping[str, Any]) -> Any:
    """``model`` (an SDK response class) from its stored JSON: validated by pydantic-core,
    which is ~10x faster than the SDK's lenient ``construct``, kept as the fallback for data
    a newer API sent that this SDK version would not validate."""
    data = plain(dict(data))
    try:
        return model.model_validate(data)
    except ValueError:  # pydantic.ValidationError is a ValueError
        return model.construct(**data)


def plain(data: Any) -> Any:
    """``data`` without the SDK helpers' parsed-output fields, for a plain model type."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items() if k not in ("parsed", "parsed_output")}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


_encode = json.JSONEncoder(separators=(",", ":")).encode


def sse(events: Iterable[tuple[str | None, Mapping[str, Any]]], *, done: bool = False) -> bytes:
    """Server-sent events as the APIs send them: ``event:`` (if named) and ``data:`` lines."""
    parts = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        parts.append(f"{head}data: {_encode(data)}\n\n")
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def sdk_stream(client: Any, stream_cls: Any, cast_to: Any, body: bytes) -> Any:
    """A real SDK stream object reading ``body`` (SSE bytes) through the SDK's own parser."""
    import httpx2

    request = httpx2.Request("POST", str(client.base_url))
    response = httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=body, request=request
    )
    return stream_cls(cast_to=cast_to, response=response, client=client)


def pieces(text: str) -> list[str]:
    """``text`` cut where a live stream would cut it: roughly a word per piece."""
    return _PIECE.findall(text) or [text]


_PIECE = re.compile(r"\s*\S+\s*?(?=\s|$)|\s+$", re.S)
