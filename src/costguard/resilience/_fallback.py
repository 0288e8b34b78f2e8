"""Fallback: which model to try next when a guarded call fails on the one it asked for.

Everything here is pure decision (plus one lock-guarded cooldown book); the sync and async
drivers in :class:`costguard.layers.fallback.FallbackLayer` only call, catch and loop.

- :func:`validate_chains` checks the configuration once (every model priced, no empty chain,
  no duplicate, no cycle) and :func:`expand` turns it into the order a call tries models in:
  the requested model, then each fallback followed by that fallback's own chain (depth
  first), each model once.
- :func:`move_on_reason` says whether an error is worth trying another model for:
  ``"retryable"`` (whatever :meth:`Retry.is_retryable` retries: 408, 409, 429, 5xx, timeouts,
  connection errors), ``"context"`` (a 400 saying the prompt does not fit the model's
  context window), or ``None`` (401, 403, 404, 422, any other 400, and costguard's own
  decisions): the error then reaches the caller unchanged.
- :class:`Cooldowns` skips a model that failed ``failures_before_cooldown`` times in a row
  (``"retryable"`` failures only) for ``cooldown_s``; after that it is tried again, and one
  more failure cools it down again; a success clears it.
- :class:`FallbackPlan` walks one call through its models: which Call to send next (or why a
  model is skipped), what a failure means, and the error when nothing is left.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._call import Call, Outcome, attempts_made, note_attempts
from .._errors import ConfigurationError, CostGuardError, FallbackAttempt, FallbackExhaustedError
from ..pricing import PriceTable
from ._retry import Retry, server_delay

__all__ = [
    "CROSS_PROVIDER_UNAVAILABLE",
    "Cooldowns",
    "CrossProvider",
    "FallbackPlan",
    "MoveOn",
    "expand",
    "is_context_overflow",
    "move_on_reason",
    "validate_chains",
]

#: Why a fallback of another provider is skipped when no ``cross_provider`` hook is set.
CROSS_PROVIDER_UNAVAILABLE = "cross-provider fallback not available"
#: Why a fallback whose context window is not larger than the one that overflowed is skipped.
CONTEXT_TOO_SMALL = "context window not larger than the one exceeded"
COOLING_DOWN = "cooling down"

MoveOn = Literal["retryable", "context"]

#: The hook for fallbacks of another provider. Called with the call as requested and the
#: fallback model; returns the Call to send (passed inwards through the same layers, its
#: Outcome handed back to the caller as it is, so its ``send`` must answer in the caller's
#: SDK shape, e.g. by translating) or a string: the reason that model is skipped.
CrossProvider = Callable[[Call, str], "Call | str"]

_SDKS = ("openai", "anthropic")
_CONTEXT_CODES = frozenset({"context_length_exceeded"})
_CONTEXT_WORDS = ("context length", "context window", "context_length", "prompt is too long")


def validate_chains(fallbacks: object, prices: PriceTable) -> dict[str, tuple[str, ...]]:
    """``fallbacks`` checked and copied, or :class:`~costguard.ConfigurationError` naming
    the fault: not a mapping of model to a list of models, an empty or repeating chain, a
    model ``prices`` does not know, or a cycle (``a -> b -> a``)."""
    if not isinstance(fallbacks, Mapping):
        raise ConfigurationError(
            f"fallbacks must map a model to its fallback models, got {fallbacks!r}"
        )
    chains: dict[str, tuple[str, ...]] = {}
    for model, chain in fallbacks.items():
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"fallbacks: {model!r} is not a model name")
        if isinstance(chain, str | bytes) or not isinstance(chain, Sequence):
            raise ConfigurationError(
                f"fallbacks[{model!r}] must be a list of model names, got {chain!r}"
            )
        if not chain:
            raise ConfigurationError(f"fallbacks[{model!r}] is empty: name at least one model")
        for fallback in chain:
            if not isinstance(fallback, str) or not fallback:
                raise ConfigurationError(f"fallbacks[{model!r}]: {fallback!r} is not a model name")
        if len(set(chain)) != len(chain):
            raise ConfigurationError(f"fallbacks[{model!r}] names a model twice: {list(chain)}")
        chains[model] = tuple(chain)
    for model in _named(chains):
        if prices.get(model) is None:
            raise ConfigurationError(
                f"fallbacks: no price for model {model!r}: fallbacks must be priced models "
                "(add one with PriceTable.override() or a price file)"
            )
    cycle = _find_cycle(chains)
    if cycle is not None:
        raise ConfigurationError(f"fallbacks form a cycle: {' -> '.join(cycle)}")
    return chains


def _named(chains: Mapping[str, Sequence[str]]) -> list[str]:
    named = dict.fromkeys(chains)
    for chain in chains.values():
        named.update(dict.fromkeys(chain))
    return list(named)


def _find_cycle(chains: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A path ``[a, b, ..., a]`` through the chains, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(model: str) -> list[str] | None:
        if model in path:
            return [*path[path.index(model) :], model]
        if model in done:
            return None
        path.append(model)
        for fallback in chains.get(model, ()):
            cycle = visit(fallback)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(model)
        return None

    for start in chains:
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def expand(chains: Mapping[str, Sequence[str]], model: str) -> tuple[str, ...]:
    """The models a call to ``model`` tries, in order: ``model``, then each fallback followed
    by its own fallbacks (depth first), each model once. Just ``(model,)`` without a chain."""
    order: dict[str, None] = {}

    def visit(name: str) -> None:
        if name in order:
            return
        order[name] = None
        for fallback in chains.get(name, ()):
            visit(fallback)

    visit(model)
    return tuple(order)


def _status_error(error: BaseException) -> bool:
    for name in _SDKS:
        sdk = sys.modules.get(name)
        if sdk is not None and isinstance(error, sdk.APIStatusError):
            return True
    return False


def is_context_overflow(error: BaseException) -> bool:
    """Whether ``error`` is a provider's 400 saying the prompt does not fit the context window:
    OpenAI's ``code == "context_length_exceeded"`` or a message about the context length;
    Anthropic's ``prompt is too long`` or a message about the context."""
    if isinstance(error, CostGuardError) or not _status_error(error):
        return False
    if getattr(error, "status_code", None) != 400:
        return False
    if getattr(error, "code", None) in _CONTEXT_CODES:
        return True
    message = getattr(error, "message", None)
    text = (message if isinstance(message, str) else str(error)).lower()
    return any(words in text for words in _CONTEXT_WORDS) or (
        "anthropic" in type(error).__module__ and "context" in text
    )


def move_on_reason(error: BaseException) -> MoveOn | None:
    """Why another model might answer where ``error`` came back, or None if none would."""
    if isinstance(error, CostGuardError):
        return None
    if Retry.is_retryable(error):
        return "retryable"
    if is_context_overflow(error):
        return "context"
    return None


@dataclass(slots=True)
class _Health:
    failures: int = 0
    until: float | None = None


class Cooldowns:
    """Per-model run of failures and cooldown deadline, shared by every call (thread-safe).

    A model that failed ``failures_before_cooldown`` times in a row is skipped until
    ``cooldown_s`` after the last of them; once that passes it is tried again, and a single
    further failure starts a new cooldown. A success clears the model.
    """

    __slots__ = ("_health", "_lock", "cooldown_s", "failures_before_cooldown")

    def __init__(self, *, cooldown_s: float, failures_before_cooldown: int) -> None:
        self.cooldown_s = cooldown_s
        self.failures_before_cooldown = failures_before_cooldown
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()

    def remaining(self, model: str, now: float) -> float | None:
        """Seconds of cooldown ``model`` has left at ``now``, or None if it may be tried."""
        with self._lock:
            health = self._health.get(model)
            if health is None or health.until is None or now >= health.until:
                return None
            return health.until - now

    def failed(self, model: str, now: float) -> None:
        with self._lock:
            health = self._health.setdefault(model, _Health())
            health.failures += 1
            if health.failures >= self.failures_before_cooldown:
                health.until = now + self.cooldown_s

    def succeeded(self, model: str) -> None:
        with self._lock:
            self._health.pop(model, None)


@dataclass(slots=True)
class FallbackPlan:
    """One call's walk through its models. Each driver loops: ``next_call()`` gives the
    Call to send (None: nothing left, raise ``exhausted() from last_error``); a failure goes
    to ``failed(error)`` (False: re-raise ``error`` unchanged); an answer goes through
    ``succeeded(outcome)``.
    """

    call: Call
    models: tuple[str, ...]
    prices: PriceTable
    cooldowns: Cooldowns
    clock: Callable[[], float]
    cross_provider: CrossProvider | None = None
    attempts: list[FallbackAttempt] = field(default_factory=list)
    last_error: BaseException | None = None
    sent: int = 0  # provider attempts made so far (retries included)
    _index: int = 0
    _current: str | None = None
    _context_above: float | None = None  # only windows larger than this may be tried

    def next_call(self) -> Call | None:
        """The next Call to send, or None when every model failed or was skipped."""
        while self._index < len(self.models):
            model = self.models[self._index]
            self._index += 1
            prepared = self._prepare(model)
            if isinstance(prepared, Call):
                self._current = model
                return prepared
            reason, wait = prepared
            self.attempts.append(FallbackAttempt(model, wait_s=wait, skipped=reason))
        self._current = None
        return None

    def _prepare(self, model: str) -> Call | tuple[str, float | None]:
        left = self.cooldowns.remaining(model, self.clock())
        if left is not None:
            return COOLING_DOWN, left
        price = self.prices.get(model)
        if self._context_above is not None:
            window = None if price is None else price.context_window
            if window is None or window <= self._context_above:
                return CONTEXT_TOO_SMALL, None
        if model == self.call.model:
            return self.call
        if price is not None and price.provider != self.call.provider:
            if self.cross_provider is None:
                return CROSS_PROVIDER_UNAVAILABLE, None
            hooked = self.cross_provider(self.call, model)
            return hooked if isinstance(hooked, Call) else (str(hooked), None)
        return self.call.replace(params={**self.call.params, "model": model})

    def failed(self, error: BaseException) -> bool:
        """Note that the current model raised ``error``; False: let ``error`` through as is."""
        model = self._current
        assert model is not None, "failed() without a call in flight"
        reason = move_on_reason(error)
        if reason is None:
            note_attempts(error, self.sent + attempts_made(error))
            return False
        self.sent += attempts_made(error)
        self.last_error = error
        if reason == "retryable":
            self.cooldowns.failed(model, self.clock())
        else:
            price = self.prices.get(model)
            window = None if price is None else price.context_window
            # An unknown window that overflowed: no other window is known to be larger.
            above = window if window is not None else math.inf
            self._context_above = max(self._context_above or 0.0, above)
        message = getattr(error, "message", None)
        self.attempts.append(
            FallbackAttempt(
                model,
                error=type(error).__name__,
                message=message if isinstance(message, str) else str(error),
                wait_s=server_delay(error),
            )
        )
        return True

    def succeeded(self, outcome: Outcome) -> Outcome:
        """``outcome`` from the current model, with attempts summed and the route noted."""
        model = self._current
        assert model is not None, "succeeded() without a call in flight"
        self.cooldowns.succeeded(model)
        outcome.attempts = self.sent + outcome.attempts
        if model != self.call.model:
            reason = f"fallback:{model}"
            outcome.route = reason if outcome.route is None else f"{reason}+{outcome.route}"
        return outcome

    def exhausted(self) -> FallbackExhaustedError:
        """The error for a call no model answered (raise it ``from plan.last_error``)."""
        error = FallbackExhaustedError(self.call.model or "?", self.attempts)
        note_attempts(error, max(self.sent, 1))
        return error
