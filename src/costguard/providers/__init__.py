"""What costguard knows about each guarded SDK operation, in one table per provider.

An :class:`Operation` says where the method lives on the client, which of its parameters change
the answer (``output_params``) and which do not (``noise_params``; together they must be exactly
the SDK method's parameters, which a test pins), how to read usage from a response, and how to
watch a stream of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .._usage import Usage

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


class StreamAccumulator(Protocol):
    def feed(self, item: Any) -> bool:
        """Observe one stream item; return False to hide it from the user."""
        ...

    def result(self) -> Reading: ...


@dataclass(frozen=True, slots=True)
class Operation:
    provider: str
    name: str
    path: tuple[str, ...]
    method: str
    read: Callable[[Any], Reading]
    accumulator: Callable[[Mapping[str, Any]], StreamAccumulator]
    output_params: frozenset[str]
    noise_params: frozenset[str]
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
