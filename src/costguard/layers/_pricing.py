"""Pricing an outcome: one rule for the ledger and for budgets."""

from __future__ import annotations

from .._call import Call, Outcome
from ..pricing import Cost, PriceTable, compute_cost

__all__ = ["price_outcome", "service_tier"]


def service_tier(call: Call, outcome: Outcome) -> str | None:
    """The tier the call was served at: as the response says, else as the request asked."""
    requested = call.params.get("service_tier")
    return outcome.service_tier or (requested if isinstance(requested, str) else None)


def price_outcome(
    prices: PriceTable, call: Call, outcome: Outcome, tier: str | None = None
) -> Cost | None:
    """What ``outcome`` cost, or None when the model or the usage is unknown.

    The served model's price is used (a snapshot name resolves to its family), else the
    requested model's; flex and priority tiers are charged when the response or the request
    names them (``tier``: that tier, when the caller already worked it out).
    """
    served = outcome.served_model
    price = (prices.get(served) if served else None) or (
        prices.get(call.model) if call.model else None
    )
    if price is None or outcome.usage is None:
        return None
    return compute_cost(
        price,
        outcome.usage,
        service_tier=tier if tier is not None else service_tier(call, outcome),
        version=prices.version,
    )
