"""Taps on SDK streams: the user keeps the SDK's own Stream object; costguard watches it pass.

The tap replaces the stream's internal iterator with a generator that feeds every item to the
operation's accumulator, and its ``close`` with one that also settles the tap. The tap settles
exactly once: when the stream is exhausted (``ok``), closed, dropped early or never read
(``incomplete``), or fails mid-way (``error``). Callbacks registered with
:meth:`StreamTap.on_finish` then receive the final :class:`StreamOutcome`.

A stream still open when the interpreter shuts down is not settled: by then the ledger's
writer thread cannot start (waiting for it would hang the exit) and its database is closed.
"""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._call import Outcome
from ._errors import CostGuardWarning

if TYPE_CHECKING:
    from .providers import StreamAccumulator

__all__ = ["StreamOutcome", "StreamTap", "tap_async", "tap_sync"]

FinishCallback = Callable[[Outcome], None]


@dataclass(slots=True)
class StreamOutcome(Outcome):
    """A stream's final Outcome, plus what the stream said about the answer as it passed.

    ``response`` is the assembled answer only when the call asked for it (``Call.collect``,
    set by the exact cache); ``response_id`` and ``finish_reasons`` are noted by every
    stream's accumulator, so they are known without assembling anything: the id from the
    first event (also for a stream closed early), the finish reasons from the events that
    carry them, ``()`` if none came. Finish reasons are per choice for chat completions,
    the stop reason for Anthropic, and the status (or why it is incomplete) for the
    Responses API.
    """

    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()


class StreamTap:
    __slots__ = ("_accumulator", "_callbacks", "_final")

    # Kept on the class: a module's globals may already be cleared when a stream is
    # finalised at interpreter shutdown.
    _shutting_down = staticmethod(sys.is_finalizing)

    def __init__(self, accumulator: StreamAccumulator) -> None:
        self._accumulator = accumulator
        self._callbacks: list[FinishCallback] = []
        self._final: StreamOutcome | None = None

    @property
    def finished(self) -> bool:
        return self._final is not None

    def on_finish(self, callback: FinishCallback) -> None:
        """Call ``callback(final_outcome)`` when the stream ends (at once if it already has)."""
        if self._final is not None:
            _safely(callback, self._final)
        else:
            self._callbacks.append(callback)

    def finish(self, status: str, error: BaseException | None = None) -> None:
        """Settle the tap (once) and tell the callbacks; nothing at interpreter shutdown."""
        if self._final is not None or self._shutting_down():
            return
        accumulator = self._accumulator
        reading = accumulator.result()
        # The response is the assembled answer when collected (for the cache), else None.
        # The providers' stream accumulators note the id and finish reasons as events pass;
        # the StreamAccumulator protocol does not require them (the embeddings placeholder,
        # never built, has neither), hence getattr.
        self._final = StreamOutcome(
            response=reading.final,
            usage=reading.usage,
            raw_usage=reading.raw_usage,
            served_model=reading.served_model,
            service_tier=reading.service_tier,
            status=status,
            error=error,
            response_id=getattr(accumulator, "response_id", None),
            finish_reasons=getattr(accumulator, "finish_reasons", ()),
        )
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _safely(callback, self._final)


class _Watch:
    """Kept in the SDK stream's ``__dict__``: when the stream is garbage-collected without
    having ended (never iterated, never closed), it settles the tap as ``incomplete``, so the
    call, which the provider received and bills, still reaches the ledger (unpriced, since
    its usage never arrived; budgets keep its worst case). A generator that never started
    runs no ``finally``, hence this object."""

    __slots__ = ("tap",)

    def __init__(self, tap: StreamTap) -> None:
        self.tap = tap

    def __del__(self) -> None:
        self.tap.finish("incomplete")


def _safely(callback: FinishCallback, outcome: Outcome) -> None:
    # A stream's consumer must never see costguard's bookkeeping fail.
    try:
        callback(outcome)
    except Exception as exc:
        warnings.warn(
            f"costguard could not record a finished stream: {exc!r}", CostGuardWarning, stacklevel=2
        )


def tap_sync(stream: Any, tap: StreamTap) -> None:
    inner: Iterator[Any] = stream._iterator
    feed = tap._accumulator.feed

    def tapped() -> Generator[Any, None, None]:
        status, error = "incomplete", None
        try:
            for item in inner:
                if feed(item):
                    yield item
            status = "ok"
        except Exception as exc:
            status, error = "error", exc
            raise
        finally:
            tap.finish(status, error)

    generator = tapped()
    stream.__dict__["_iterator"] = generator
    stream.__dict__["_costguard_watch"] = _Watch(tap)
    ref = weakref.ref(stream)  # no cycle: a dropped stream is finalised at once

    def close() -> None:
        generator.close()
        tap.finish("incomplete")
        if (owner := ref()) is not None:
            type(owner).close(owner)

    stream.close = close


def tap_async(stream: Any, tap: StreamTap) -> None:
    inner: AsyncIterator[Any] = stream._iterator
    feed = tap._accumulator.feed

    async def tapped() -> AsyncGenerator[Any, None]:
        status, error = "incomplete", None
        try:
            async for item in inner:
                if feed(item):
                    yield item
            status = "ok"
        except Exception as exc:
            status, error = "error", exc
            raise
        finally:
            tap.finish(status, error)

    generator = tapped()
    stream.__dict__["_iterator"] = generator
    stream.__dict__["_costguard_watch"] = _Watch(tap)
    ref = weakref.ref(stream)

    async def close() -> None:
        await generator.aclose()
        tap.finish("incomplete")
        if (owner := ref()) is not None:
            await type(owner).close(owner)

    stream.close = close
