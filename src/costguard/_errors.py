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
    └── RateLimitedError            a per-user rate limit refused the call (carries retry_after)

    CostGuardWarning                degraded but working (unpriced model, failing sink, ...)
"""

from __future__ import annotations

from decimal import Decimal

__all__ = [
    "BudgetExceededError",
    "ConfigurationError",
    "CostGuardError",
    "CostGuardWarning",
    "InvalidRequestError",
    "LedgerError",
    "PricingError",
    "RateLimitedError",
    "UnknownModelPriceError",
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


class CostGuardWarning(UserWarning):
    """Something degraded but the call went on (unpriced model, failing ledger sink, ...)."""
