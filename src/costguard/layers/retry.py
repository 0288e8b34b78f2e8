"""The retry layer: sends a call again, as a :class:`~costguard.resilience.Retry` decides.

Each driver only calls, sleeps and counts; what to retry and how long to wait is
:meth:`Retry.decide`, shared by both. The layer sits just outside the SDK method, so:

- a failed attempt is never a ledger row of its own: the call's one row carries ``attempts``
  (set here on the Outcome; on an error, noted on the exception for
  :func:`~costguard.resilience.attempts_made`), and nothing is billed for failed attempts;
- when retries run out, the provider's own last exception reaches the caller unchanged;
- a stream is retried only while it starts (the SDK raises before returning it); once the
  caller holds the stream, an error in it surfaces as the SDK raises it.

costguard owns retries when this layer is in the chain: the wrapped clients must send with
``max_retries=0``, or the SDK's retries multiply with these.
"""

from __future__ import annotations

from .._call import Call, Outcome, note_attempts
from .._chain import AsyncHandler, Handler
from .._errors import ConfigurationError
from ..resilience._retry import Retry

__all__ = ["RetryLayer"]


class RetryLayer:
    """Retries failed provider calls as ``retry`` says."""

    __slots__ = ("retry",)

    def __init__(self, retry: Retry) -> None:
        if not isinstance(retry, Retry):
            raise ConfigurationError(f"RetryLayer needs a costguard Retry, got {retry!r}")
        self.retry = retry

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        retry = self.retry
        limit = retry.attempts_for(call.client)
        attempt, waited = 1, 0.0
        while True:
            try:
                outcome = call_next(_numbered(call, attempt))
            except Exception as error:
                wait = retry.decide(error, attempt=attempt, waited=waited, max_attempts=limit)
                if wait is None:
                    note_attempts(error, attempt)
                    raise
            else:
                outcome.attempts = attempt
                return outcome
            retry.sleep(wait)  # outside the except block: the next error is not chained to this
            attempt += 1
            waited += wait

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        retry = self.retry
        limit = retry.attempts_for(call.client)
        attempt, waited = 1, 0.0
        while True:
            try:
                outcome = await call_next(_numbered(call, attempt))
            except Exception as error:
                wait = retry.decide(error, attempt=attempt, waited=waited, max_attempts=limit)
                if wait is None:
                    note_attempts(error, attempt)
                    raise
            else:
                outcome.attempts = attempt
                return outcome
            await retry.asleep(wait)
            attempt += 1
            waited += wait


def _numbered(call: Call, attempt: int) -> Call:
    return call if call.attempt == attempt else call.replace(attempt=attempt)
