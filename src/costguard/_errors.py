"""Exceptions and warnings raised by costguard itself.

Provider errors (``openai.APIStatusError``, ``anthropic.RateLimitError``, ...) are never
wrapped: they reach the caller unchanged. Everything below is a decision costguard made::

    CostGuardError
    ├── ConfigurationError          bad construction or wrap() argument
    │   └── LedgerError             the ledger cannot be opened or written
    ├── InvalidRequestError         a guarded call's parameters are unusable (also a ValueError)
    ├── PricingError                the price table cannot answer
    │   └── UnknownModelPriceError  no price for this model, and the guard is strict
    ├── BudgetExceededError         the call's worst case does not fit a budget (nothing sent)
    ├── RateLimitedError            a per-user rate limit refused the call (carries retry_after)
    ├── FallbackExhaustedError      the model and every fallback failed or were skipped
    │                               (carries attempts; __cause__ is the last provider error)
    ├── BatchItemError              one request of a batch got no answer (costguard.batch)
    └── BatchNotReadyError          a deferred request has not finished yet (costguard.batch)

    CostGuardWarning                degraded but working (unpriced model, failing sink, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "BudgetExceededError",
    "ConfigurationError",
    "CostGuardError",
    "CostGuardWarning",
    "FallbackAttempt",
    "FallbackExhaustedError",
    "InvalidRequestError",
    "LedgerError",
    "PricingError",
    "RateLimitedError",
    "UnknownModelPriceError",
    "require_callable",
]


class CostGuardError(Exception):
    """Root of every exception costguard raises on its own behalf."""


class ConfigurationError(CostGuardError):
    """costguard was configured or used in a way it cannot honour."""


class LedgerError(ConfigurationError):
    """The spend ledger cannot be opened, migrated or written."""


class InvalidRequestError(CostGuardError, ValueError):
    """A guarded call's parameters are invalid; raised before anything is sent.

    ``field`` names the offending parameter path, e.g. ``"messages[2].role"``.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PricingError(CostGuardError):
    """The price table is malformed or cannot price a request."""


class UnknownModelPriceError(PricingError, LookupError):
    """No price is known for ``model`` and the guard was told to be strict."""

    def __init__(self, model: str, *, provider: str | None = None) -> None:
        where = f" ({provider})" if provider else ""
        super().__init__(
            f"no price for model {model!r}{where}: add one with PriceTable.override() "
            "or a price file (CostGuardClient(prices=...))"
        )
        self.model = model
        self.provider = provider


class BudgetExceededError(CostGuardError):
    """A call was refused before sending: its worst-case cost does not fit a budget.

    ``budget`` names the budget, ``key`` the scope value it applies to (None for a global
    budget), and the amounts (exact ``Decimal`` USD) are the limit, what was spent and what
    other in-flight calls hold reserved in this period, and this call's worst case.
    """

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        key: str | None,
        limit: Decimal,
        spent: Decimal,
        reserved: Decimal,
        worst_case: Decimal,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.key = key
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.worst_case = worst_case


class RateLimitedError(CostGuardError):
    """A per-user rate limit refused the call; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, key: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.key = key


@dataclass(frozen=True, slots=True)
class FallbackAttempt:
    """One model of a fallback chain, as a guarded call went through it.

    Either the model was sent to and failed (``error`` is the exception's type name,
    ``message`` its text, ``wait_s`` the server's ``retry-after`` if it sent one), or it was
    not sent to at all (``skipped`` says why, e.g. ``"cooling down"``; ``wait_s`` is then the
    cooldown left, if any).
    """

    model: str
    error: str | None = None
    message: str | None = None
    wait_s: float | None = None
    skipped: str | None = None

    def describe(self) -> str:
        """``"gpt-4o (InternalServerError)"`` or ``"gpt-4o-mini (skipped: cooling down)"``."""
        if self.skipped is not None:
            return f"{self.model} (skipped: {self.skipped})"
        return f"{self.model} ({self.error})"


class FallbackExhaustedError(CostGuardError):
    """A call failed on its model and on every fallback (each failed or was skipped).

    ``attempts`` lists every model in the order considered; ``__cause__`` is the last
    provider error (``None`` if every model was skipped).
    """

    def __init__(self, requested: str, attempts: Sequence[FallbackAttempt]) -> None:
        listed = ", ".join(attempt.describe() for attempt in attempts)
        super().__init__(f"every model failed for {requested!r}: {listed}")
        self.requested = requested
        self.attempts = list(attempts)


def require_callable(where: str, value: object, *, optional: bool = False) -> None:
    """Raise :class:`ConfigurationError` naming ``where`` unless ``value`` is callable
    (or, with ``optional``, None)."""
    if optional and value is None:
        return
    if not callable(value):
        raise ConfigurationError(f"{where} must be callable, got {type(value).__name__} {value!r}")


class CostGuardWarning(UserWarning):
    """Something degraded but the call went on (unpriced model, failing ledger sink, ...)."""
