"""The two values every layer sees: the Call going in and the Outcome coming back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._scope import Scope
from ._usage import Usage

if TYPE_CHECKING:
    from ._streams import StreamTap
    from .providers import Operation

__all__ = ["Call", "ClientInfo", "Outcome", "attempts_made", "note_attempts"]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What costguard knows about the SDK client a call goes through (never the raw API key)."""

    provider: str
    base_url: str
    is_async: bool
    api_key_hash: str | None = None
    api_key_last4: str | None = None
    sdk: Any = field(default=None, compare=False, repr=False)  # the wrapped client itself
    cache_partition: str | None = None  # the exact cache's partition for this API key
    max_retries: int | None = None  # the client's own setting, before costguard took retries over


@dataclass(frozen=True, slots=True)
class Call:
    """One guarded SDK call, as it will be sent.

    ``params`` are the keyword arguments for the SDK method, exactly as the user gave them
    (layers may replace them with :meth:`replace`); ``send`` is the SDK method itself.
    """

    operation: Operation
    params: Mapping[str, Any]
    send: Callable[..., Any]
    client: ClientInfo
    scope: Scope
    attempt: int = 1
    #: Set by the cache layer: assemble a stream's final answer so that it can be stored.
    collect: bool = False

    @property
    def provider(self) -> str:
        return self.client.provider

    @property
    def model(self) -> str | None:
        model = self.params.get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        return self.operation.always_streams or self.params.get("stream") is True

    @property
    def raw_response(self) -> str | None:
        """``"raw"`` (``"true"`` in openai's legacy wrapper) or ``"stream"`` when the call came
        through ``.with_raw_response`` / ``.with_streaming_response``: the SDK then returns
        its response wrapper, not the answer."""
        headers = self.params.get("extra_headers")
        return headers.get(_RAW_RESPONSE_HEADER) if isinstance(headers, Mapping) else None

    @property
    def max_tokens(self) -> int | None:
        """The output limit in the operation's own parameter, if one is set."""
        for name in self.operation.output_limit_params:
            value = self.params.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    def replace(self, **changes: Any) -> Call:
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class Outcome:
    """What came back: the SDK's own response object plus what costguard learned about it.

    For a stream, ``usage`` is ``None`` until the stream ends; ``stream`` then carries the tap
    that reports the final Outcome to callbacks registered with ``stream.on_finish``.
    """

    response: Any
    usage: Usage | None = None
    raw_usage: Mapping[str, Any] | None = None
    served_model: str | None = None
    service_tier: str | None = None
    status: str = "ok"
    error: BaseException | None = None
    cache: str = "miss"
    attempts: int = 1
    saved_usd: Decimal = Decimal(0)
    max_tokens_sent: int | None = None  # the output limit the SDK was given
    route: str | None = None  # why the served model is not the requested one (set by routers)
    #: Earlier attempts billed separately (a cascade's cheap try): the ledger writes a row for
    #: each and links this call's row to the first.
    earlier: tuple[tuple[Call, Outcome], ...] = ()
    stream: StreamTap | None = field(default=None, repr=False)

    def routed(self, reason: str | None) -> Outcome:
        """This outcome with ``reason`` in front of any route an inner layer recorded."""
        if reason is not None:
            self.route = reason if self.route is None else f"{reason}+{self.route}"
        return self

    def settled(self, final: Outcome) -> Outcome:
        """This streaming outcome once its stream ended: what the stream reported (usage,
        model, tier, status) over what layers set here (cache, attempts, savings)."""
        return dataclasses.replace(
            self,
            response=None,
            usage=final.usage,
            raw_usage=final.raw_usage,
            served_model=final.served_model or self.served_model,
            service_tier=final.service_tier or self.service_tier,
            status=final.status,
            error=final.error,
            stream=None,
        )


_ATTEMPTS_ATTR = "_costguard_attempts"
_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"  # set by both SDKs' with_*_response


def attempts_made(error: BaseException) -> int:
    """How many attempts a call made before ``error`` reached its caller (1 if not retried).

    The retry layer notes the count on the provider's exception as it re-raises it (a private
    attribute; the exception is otherwise unchanged), so that the ledger can record one row
    with the right ``attempts`` for a call that failed.
    """
    count = getattr(error, _ATTEMPTS_ATTR, 1)
    return count if isinstance(count, int) and count >= 1 else 1


def note_attempts(error: BaseException, attempts: int) -> None:
    """Record on ``error`` that it ended a call after ``attempts`` attempts."""
    setattr(error, _ATTEMPTS_ATTR, attempts)
