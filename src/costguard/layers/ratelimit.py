"""The rate-limit layer: admits each call against a :class:`~costguard.spend.RateLimits` before
it is sent, and charges its tokens when it ends.

A refused call raises :class:`~costguard.RateLimitedError` and nothing is sent (in ``wait``
mode it first sleeps, through the limits' injected ``sleep`` / ``asleep``, for at most
``max_wait_s`` in all). Every admitted call counts as one request, whether it then succeeds,
fails or is answered from the cache (the cache layer sits inside this one). Tokens are
charged from ``outcome.usage`` (``total_tokens``); cache hits and calls without usage charge
nothing. A stream is charged when it finishes or is closed.

Both drivers share one decision function, :meth:`RateLimitLayer._admit`; the async driver
runs it (and every other database write) in a worker thread, so the event loop never waits
on SQLite's lock.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import TYPE_CHECKING

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import CostGuardWarning, LedgerError
from ..spend._ratelimit import Bucket, RateLimits, RateStore

if TYPE_CHECKING:
    from asyncio import Future

    from ..ledger import Ledger

__all__ = ["RateLimitLayer"]

_HITS = frozenset({"exact", "semantic"})


def _tokens(outcome: Outcome) -> int:
    if outcome.cache in _HITS or outcome.usage is None:
        return 0
    return outcome.usage.total_tokens


class RateLimitLayer:
    """Enforce ``limits`` with the events kept in the ledger database at ``ledger``.

    ``ledger`` is the ledger's file (or the :class:`~costguard.Ledger` itself): every layer,
    in any process, that uses the same file and the same limit key and window shares the
    counts. The layer opens its own connection on first use.
    """

    def __init__(self, limits: RateLimits, ledger: Ledger | str | os.PathLike[str]) -> None:
        self.limits = limits
        path = ledger if isinstance(ledger, str | os.PathLike) else ledger.path
        self.store = RateStore(path)
        self._pending: set[Future[None]] = set()  # token charges running in worker threads

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        bucket = self.limits.bucket(call.scope)
        waited = 0.0
        while (delay := self._admit(bucket, waited)) is not None:
            self.limits.sleep(delay)
            waited += delay
        outcome = call_next(call)
        if (tokens := self._settle(bucket, outcome)) is not None:
            self._charge(bucket, tokens, self.limits.clock())
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        import asyncio  # not at import time: `import costguard` must not load asyncio

        bucket = self.limits.bucket(call.scope)
        waited = 0.0
        while (delay := await asyncio.to_thread(self._admit, bucket, waited)) is not None:
            await self.limits.asleep(delay)
            waited += delay
        outcome = await call_next(call)
        if (tokens := self._settle(bucket, outcome)) is not None:
            await asyncio.to_thread(self._charge, bucket, tokens, self.limits.clock())
        return outcome

    def _admit(self, bucket: Bucket, waited: float) -> float | None:
        """One admission attempt: ``None`` if admitted, seconds to sleep, or raise."""
        refusal = self.store.try_admit(bucket, self.limits.clock())
        return self.limits.decide(bucket, refusal, waited)

    def _settle(self, bucket: Bucket, outcome: Outcome) -> int | None:
        """Tokens to charge now, or ``None``: no token limit, or a stream (charged when it
        finishes)."""
        if bucket.tokens_per_minute is None:
            return None
        if outcome.stream is None:
            return _tokens(outcome)
        if outcome.cache not in _HITS:
            outcome.stream.on_finish(functools.partial(self._stream_finished, bucket))
        return None

    def _stream_finished(self, bucket: Bucket, final: Outcome) -> None:
        at = self.limits.clock()
        tokens = _tokens(final)
        if tokens <= 0:
            return
        try:
            import asyncio

            loop = asyncio.get_running_loop()
        except RuntimeError:  # a sync stream, or one finalised outside any loop
            self._charge(bucket, tokens, at)
            return
        # An async stream ends inside the event loop: write from a worker thread.
        future = loop.run_in_executor(None, self._charge, bucket, tokens, at)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _charge(self, bucket: Bucket, tokens: int, at: float) -> None:
        # The call already happened: failing bookkeeping warns, never fails the caller.
        try:
            self.store.charge(bucket, tokens, at)
        except LedgerError as exc:
            warnings.warn(
                f"costguard could not charge tokens to the rate limit: {exc}",
                CostGuardWarning,
                stacklevel=2,
            )

    def close(self) -> None:
        """Close the layer's database connection (it reopens if the layer is used again)."""
        self.store.close()

    def __repr__(self) -> str:
        return f"RateLimitLayer({self.limits!r}, {str(self.store.path)!r})"
