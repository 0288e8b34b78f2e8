"""The cap layer: applies a :class:`~costguard.spend.Cap` to every call before it is sent.

The decisions are :meth:`Cap.plan`'s; this layer looks the model's price up, passes the call
inwards with the planned parameters (the same Call when nothing changed), and lets Cap's
refusals (:class:`~costguard.BudgetExceededError`, :class:`~costguard.InvalidRequestError`,
:class:`~costguard.UnknownModelPriceError`) propagate before anything reaches the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import ConfigurationError
from ..pricing import PriceTable

if TYPE_CHECKING:  # the spend package loads only when a cap is used
    from ..spend._cap import Cap

__all__ = ["CapLayer", "capped"]


def capped(cap: Cap, call: Call, prices: PriceTable) -> Call:
    """``call`` as ``cap`` would send it, priced with ``prices`` (the same Call when nothing
    changes); raises Cap's refusals before anything is sent."""
    model = call.model
    params = cap.plan(call, prices.get(model) if model is not None else None)
    return call if params is call.params else call.replace(params=params)


class CapLayer:
    """Caps output limits, cost and prompt size as ``cap`` says, pricing with ``prices``."""

    __slots__ = ("cap", "prices")

    def __init__(self, cap: Cap, prices: PriceTable) -> None:
        from ..spend._cap import Cap

        if not isinstance(cap, Cap):
            raise ConfigurationError(f"CapLayer needs a costguard Cap, got {cap!r}")
        self.cap = cap
        self.prices = prices

    def prepare(self, call: Call) -> Call:
        """``call`` as it should be sent (raises if it should not be sent at all)."""
        return capped(self.cap, call, self.prices)

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        return call_next(self.prepare(call))

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        return await call_next(self.prepare(call))
