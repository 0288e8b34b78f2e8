"""Retry: when and how long to wait before sending a failed provider call again.

The policy is built from tenacity's strategies, evaluated on tenacity's ``RetryCallState``:

- retry: ``retry_if_exception(Retry.is_retryable)``: HTTP 408, 409, 429 and 5xx (Anthropic's
  529 too), timeouts and connection errors; never a 4xx such as 400, 401, 403, 404 or 422, a
  response carrying ``x-should-retry: false``, or costguard's own decisions (every
  :class:`~costguard.CostGuardError`).
- wait: the server's ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date), at most
  ``retry_after_cap_s``; otherwise ``wait_exponential`` (``initial_delay_s`` doubling up to
  ``max_delay_s``) less a jitter of up to 25%, as both SDKs do.
- stop: ``stop_after_attempt(max_attempts) | StopAfterWaiting(max_wait_s)``; the second stops
  when the next wait would take the total waited past ``max_wait_s``.

:meth:`Retry.decide` is the one pure decision the sync and async drivers share (see
:class:`costguard.layers.retry.RetryLayer`); each driver only calls, sleeps and counts. The
drivers do not run tenacity's own ``Retrying.iter()``: it re-raises the provider's error from
inside tenacity (through ``Future.result()``), and its async twin awaits every step. Here the
driver re-raises the error with a bare ``raise``, so the caller gets the SDK's exception as the
SDK raised it, and both drivers share exactly the same decision code.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import tenacity
from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .._aio import sleep as sleep_async
from .._call import ClientInfo, attempts_made
from .._errors import ConfigurationError, CostGuardError, require_callable

__all__ = ["Retry", "attempts_made"]

logger = logging.getLogger("costguard")

#: Both SDKs retry twice unless told otherwise.
SDK_DEFAULT_MAX_RETRIES = 2
#: The backoff is cut by up to this fraction, at random (both SDKs use 25%).
JITTER_FRACTION = 0.25

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_SDKS = ("openai", "anthropic")


def _wait_setting(name: str, value: object, *, finite: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"Retry({name}=...) must be a number of seconds, got {value!r}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0 or (finite and math.isinf(seconds)):
        kind = "a finite number" if finite else "a number"
        raise ConfigurationError(f"Retry({name}=...) must be {kind} >= 0, got {value!r}")
    return seconds


def _header(error: BaseException, name: str) -> str | None:
    response: Any = getattr(error, "response", None)
    headers: Any = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except Exception:  # a foreign object in place of httpx2.Headers: no hint
        return None
    return value if isinstance(value, str) else None


def server_delay(error: BaseException, now: Callable[[], float] = time.time) -> float | None:
    """The wait the server asked for in ``error``'s response, in seconds, or None.

    ``retry-after-ms`` (milliseconds) wins over ``retry-after`` (seconds, or an HTTP date,
    measured from ``now()``, a wall clock). A value that is malformed, negative or NaN is
    ignored; a date already past means 0.
    """
    for name, unit in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = _header(error, name)
        if value is None:
            continue
        try:
            seconds = float(value) / unit
        except ValueError:
            continue
        if seconds >= 0:  # False for NaN
            return seconds
    value = _header(error, "retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


class StopAfterWaiting(stop_base):
    """Stop when the next wait would take the total waited past ``max_wait_s``."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self.max_wait_s


class WaitServerOrBackoff(wait_base):
    """The server's ``retry-after`` (capped), else exponential backoff with jitter."""

    def __init__(self, policy: Retry) -> None:
        self.policy = policy
        self.backoff = tenacity.wait_exponential(
            multiplier=policy.initial_delay_s, max=policy.max_delay_s, exp_base=2
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        policy = self.policy
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if error is not None:
            asked = server_delay(error, policy.now)
            if asked is not None:
                return min(asked, policy.retry_after_cap_s)
        draw = float(policy.jitter())
        draw = 0.0 if math.isnan(draw) else min(max(draw, 0.0), 1.0)
        return float(self.backoff(retry_state)) * (1.0 - JITTER_FRACTION * draw)


class Retry:
    """How costguard retries a provider call that failed: which errors, how often, how long.

    >>> policy = Retry(max_attempts=4, max_wait_s=30)   # run by costguard.layers.retry.RetryLayer

    :param max_attempts: attempts in all, the first included. ``None`` (the default) takes the
        wrapped client's own ``max_retries`` + 1, so ``OpenAI(max_retries=5)`` makes 6 attempts
        and a client left at the SDK default (2) makes 3.
    :param max_wait_s: the most time spent waiting between attempts, summed over one call. When
        the next wait would pass it, the call stops and the last error is raised.
    :param max_delay_s: the longest single backoff wait (default 8, as the SDKs).
    :param retry_after_cap_s: the longest wait a server's ``retry-after`` is honoured for; a
        longer request is cut to this.
    :param initial_delay_s: the first backoff wait; it doubles with each attempt.
    :param jitter: the jitter source: returns a float in [0, 1]; each backoff wait is cut by
        ``25% * jitter()``. Inject ``lambda: 0.0`` for exact exponential waits.
    :param sleep: how the sync driver waits (``time.sleep``).
    :param asleep: how the async driver waits (``asyncio.sleep``).
    :param now: the wall clock (``time.time``), read only to turn a ``retry-after`` HTTP date
        into seconds.

    Bad values (``max_attempts < 1``, a negative or NaN wait) raise
    :class:`~costguard.ConfigurationError`.
    """

    __slots__ = (
        "_stop_waiting",
        "_tenacity",
        "asleep",
        "initial_delay_s",
        "jitter",
        "max_attempts",
        "max_delay_s",
        "max_wait_s",
        "now",
        "retry_after_cap_s",
        "sleep",
    )

    def __init__(
        self,
        *,
        max_attempts: int | None = None,
        max_wait_s: float = 60.0,
        max_delay_s: float = 8.0,
        retry_after_cap_s: float = 60.0,
        initial_delay_s: float = 0.5,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], object] = time.sleep,
        asleep: Callable[[float], Awaitable[object]] = sleep_async,
        now: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ConfigurationError(
                f"Retry(max_attempts=...) must be an int >= 1 or None, got {max_attempts!r}"
            )
        self.max_attempts = max_attempts
        self.max_wait_s = _wait_setting("max_wait_s", max_wait_s)
        self.max_delay_s = _wait_setting("max_delay_s", max_delay_s)
        self.retry_after_cap_s = _wait_setting("retry_after_cap_s", retry_after_cap_s)
        self.initial_delay_s = _wait_setting("initial_delay_s", initial_delay_s, finite=True)
        for name, value in (("jitter", jitter), ("sleep", sleep), ("asleep", asleep), ("now", now)):
            require_callable(f"Retry({name}=...)", value)
        self.jitter = jitter
        self.sleep = sleep
        self.asleep = asleep
        self.now = now
        self._stop_waiting = StopAfterWaiting(self.max_wait_s)
        # Holds the strategies (and is what each RetryCallState points back to).
        self._tenacity = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self.is_retryable),
            wait=WaitServerOrBackoff(self),
            stop=self._stop_waiting,
            reraise=True,
        )

    def __repr__(self) -> str:
        return (
            f"Retry(max_attempts={self.max_attempts!r}, max_wait_s={self.max_wait_s!r}, "
            f"max_delay_s={self.max_delay_s!r}, retry_after_cap_s={self.retry_after_cap_s!r}, "
            f"initial_delay_s={self.initial_delay_s!r})"
        )

    def attempts_for(self, client: ClientInfo) -> int:
        """The attempts allowed for a call through ``client``: ``max_attempts``, or else the
        client's own ``max_retries`` + 1 (the SDK default, 2, when it is unknown)."""
        if self.max_attempts is not None:
            return self.max_attempts
        retries = client.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            retries = SDK_DEFAULT_MAX_RETRIES
        return retries + 1

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """Whether sending again might succeed where this error came back.

        Yes for an SDK status error with HTTP 408, 409, 429 or 5xx (Anthropic's 529 included)
        and for the SDKs' ``APIConnectionError`` (``APITimeoutError`` is one). No for any other
        status, for a response with ``x-should-retry: false``, for costguard's own errors and
        for anything else. An SDK that is not imported cannot have raised ``error``, so neither
        SDK is imported here.
        """
        if isinstance(error, CostGuardError):
            return False
        for name in _SDKS:
            sdk = sys.modules.get(name)
            if sdk is None:
                continue
            if isinstance(error, sdk.APIStatusError):
                if _header(error, "x-should-retry") == "false":
                    return False
                status = getattr(error, "status_code", None)
                return isinstance(status, int) and (
                    status in _RETRYABLE_STATUSES or 500 <= status <= 599
                )
            if isinstance(error, sdk.APIConnectionError):
                return True
        return False

    def decide(
        self, error: BaseException, *, attempt: int, waited: float, max_attempts: int
    ) -> float | None:
        """After attempt number ``attempt`` raised ``error``, with ``waited`` seconds already
        spent waiting: the seconds to wait before the next attempt, or ``None`` to stop and
        let ``error`` through.

        Pure apart from the jitter source and, for an HTTP-date ``retry-after``, the clock;
        the sync and async drivers both use it, so they decide alike.
        """
        controller = self._tenacity
        state = RetryCallState(controller, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        state.idle_for = waited
        state.set_exception((type(error), error, error.__traceback__))
        if not controller.retry(state):
            return None
        state.upcoming_sleep = controller.wait(state)
        stop = tenacity.stop_after_attempt(max_attempts) | self._stop_waiting
        if stop(state):
            return None
        logger.info(
            "costguard retrying after %s (attempt %d of %d failed): waiting %.3fs",
            type(error).__name__,
            attempt,
            max_attempts,
            state.upcoming_sleep,
        )
        return state.upcoming_sleep
