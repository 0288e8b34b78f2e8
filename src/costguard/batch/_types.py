"""The values the batch APIs hand back: handles, per-request errors, reports and settings."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigurationError, CostGuardError, require_callable

__all__ = [
    "ANTHROPIC_LIMITS",
    "OPENAI_LIMITS",
    "BatchHandle",
    "BatchItemError",
    "BatchLimits",
    "BatchNotReadyError",
    "BatchOptions",
    "BatchProgress",
    "FlushReport",
]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How much one provider batch may hold; larger inputs are split into several batches.

    ``max_bytes`` is measured on what is sent: the JSONL input file (OpenAI) or the JSON body of
    the create request (Anthropic). ``max_embedding_inputs`` counts the inputs of every
    embeddings request in one OpenAI batch.
    """

    max_requests: int
    max_bytes: int
    max_embedding_inputs: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_bytes", "max_embedding_inputs"):
            value = getattr(self, name)
            if value is None and name == "max_embedding_inputs":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"BatchLimits.{name} must be a positive int, got {value!r}"
                )


#: OpenAI Batch API: 50,000 requests and 200 MB per input file; 50,000 embedding inputs.
OPENAI_LIMITS = BatchLimits(50_000, 200 * 1000 * 1000, 50_000)
#: Anthropic Message Batches: 100,000 requests or 256 MB per batch, whichever comes first.
ANTHROPIC_LIMITS = BatchLimits(100_000, 256 * 1000 * 1000)


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """One poll of one provider batch: ``done`` of its ``total`` requests have ended."""

    batch_id: str
    status: str
    done: int
    total: int
    ended: bool


@dataclass(frozen=True)
class BatchOptions:
    """How the batch APIs submit, poll and recover. Every field has a working default.

    :param limits: per-batch limits (default: the provider's, :data:`OPENAI_LIMITS` /
        :data:`ANTHROPIC_LIMITS`).
    :param poll_interval_s: the first wait between polls; each later wait is ``backoff`` times
        longer, up to ``max_poll_interval_s``.
    :param timeout_s: how long ``wait=True`` polls before giving up with
        :class:`BatchNotReadyError` (the batches keep running; collect them later).
    :param lease_s: a request claimed for submission by a process that then died is submitted
        again once this long has passed.
    :param reservation_ttl_s: how long a batch's budget reservation is held (a batch may take
        24 hours to end).
    :param max_items: submit at most this many queued requests per flush (None: all; 0: only
        collect).
    :param sleep: how the sync APIs wait (injectable: tests record the waits instead of
        waiting).
    :param asleep: how the async APIs (``abatch``, ``aflush_deferred``, ``aresolve``) wait: an
        async function of seconds, ``asyncio.sleep`` by default (injectable like ``sleep``).
    :param clock: unix seconds (injectable).
    :param on_progress: called with a :class:`BatchProgress` after every poll.
    :param on_step: called with ``(step, ident)`` after each durable step: ``"claimed"``
        (attempt id), ``"created"`` (the provider accepted a batch; its id, not yet recorded),
        ``"submitted"`` and ``"collected"`` (batch id). For logging; an exception raised here
        propagates, which lets tests stop the work at any step as a crash would.

    Both callbacks run on the caller's thread (with the async APIs: on the event loop). With
    the async APIs, an awaitable they return is awaited; the sync APIs refuse one.
    """

    limits: BatchLimits | None = None
    poll_interval_s: float = 10.0
    max_poll_interval_s: float = 300.0
    backoff: float = 1.5
    timeout_s: float = 26 * 3600.0
    lease_s: float = 600.0
    reservation_ttl_s: float = 26 * 3600.0
    max_items: int | None = None
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    on_progress: Callable[[BatchProgress], object] | None = None
    on_step: Callable[[str, str], object] | None = None

    def __post_init__(self) -> None:
        for name in ("poll_interval_s", "max_poll_interval_s", "timeout_s", "lease_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"BatchOptions.{name} must be >= 0, got {value!r}")
        if not isinstance(self.backoff, int | float) or self.backoff < 1:
            raise ConfigurationError(f"BatchOptions.backoff must be >= 1, got {self.backoff!r}")
        ttl = self.reservation_ttl_s
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
            raise ConfigurationError(
                f"BatchOptions.reservation_ttl_s must be positive seconds, got {ttl!r}"
            )
        items = self.max_items
        if items is not None and (
            isinstance(items, bool) or not isinstance(items, int) or items < 0
        ):
            raise ConfigurationError(
                f"BatchOptions.max_items must be None or an int >= 0, got {items!r}"
            )
        for name in ("sleep", "asleep", "clock", "on_progress", "on_step"):
            optional = name.startswith("on_")
            require_callable(f"BatchOptions.{name}", getattr(self, name), optional=optional)


@dataclass(frozen=True, slots=True)
class BatchHandle:
    """What ``guard.batch(..., wait=False)`` returns: collect it later with
    ``guard.resolve(handle, client)`` (or ``guard.resolve(handle.id, client)`` from another
    process). ``items`` are the per-request handles, in the order of the requests;
    ``batch_ids`` the provider batches that carry them (none for answers found in the cache)."""

    id: str
    items: tuple[str, ...]
    batch_ids: tuple[str, ...]

    def __str__(self) -> str:
        return self.id


class BatchItemError(CostGuardError):
    """One request of a batch produced no answer. It sits in that request's slot of the list
    ``guard.batch`` returns (``guard.resolve`` of a single handle raises it).

    ``kind`` says why: ``"error"`` (the API answered the request with an error:
    ``status_code``, ``code`` and ``body`` as the API sent them), ``"expired"`` (the batch's
    24 hours ran out first), ``"cancelled"``, ``"failed"`` (the whole batch failed, e.g. its
    input was refused), ``"rejected"`` (the batch could not be submitted) or ``"missing"`` (the
    provider returned no result for it). ``index`` is the request's position, ``handle`` its
    handle, ``batch_id`` the provider batch.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status_code: int | None = None,
        code: str | None = None,
        body: Any = None,
        batch_id: str | None = None,
        handle: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code
        self.code = code
        self.body = body
        self.batch_id = batch_id
        self.handle = handle
        self.index = index

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "kind": self.kind,
            "status_code": self.status_code,
            "code": self.code,
            "body": self.body,
            "batch_id": self.batch_id,
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, handle: str | None = None, index: int | None = None
    ) -> BatchItemError:
        return cls(
            str(data.get("message", "")),
            kind=str(data.get("kind", "error")),
            status_code=data.get("status_code"),
            code=data.get("code"),
            body=data.get("body"),
            batch_id=data.get("batch_id"),
            handle=handle,
            index=index,
        )

    def __repr__(self) -> str:
        return f"BatchItemError({self.message!r}, kind={self.kind!r})"


class BatchNotReadyError(CostGuardError):
    """``wait=True`` gave up before every batch ended (``timeout_s``). Nothing is lost: the
    batches keep running; ``handle`` collects them later with ``guard.resolve`` (after
    ``guard.flush_deferred(wait=True)`` it is empty: a later flush collects them)."""

    def __init__(self, message: str, *, handle: str) -> None:
        super().__init__(message)
        self.handle = handle


@dataclass
class FlushReport:
    """What one ``guard.flush_deferred(client)`` did."""

    submitted: int = 0  # requests sent in new batches
    batch_ids: list[str] = field(default_factory=list)  # the new batches
    cache_hits: int = 0  # requests answered from the cache, never sent
    held: int = 0  # left queued: a budget refused their worst case for now
    recovered: int = 0  # claimed by a process that died; adopted or queued again
    finished: int = 0  # requests whose answers were collected
    failed: int = 0  # requests that ended without an answer
    open: list[str] = field(default_factory=list)  # batches still running
    errors: list[str] = field(default_factory=list)  # submissions that failed (kept queued)
