"""The route layer: sends each call to the model a :class:`~costguard.routing.Router` picks.

The decisions are :meth:`Router.plan`'s; this layer passes the call inwards with the routed
``model`` (the same Call when nothing changed) and writes why on the Outcome's ``route``
(``"rule:classify"``, ``"complexity:0.31"``, ``"tier:draft"``, ``"fit:context"``, joined by
``+``), which the ledger records next to the requested and served models. For a stream the
reason is set on the Outcome that carries the stream, so it reaches the stream's final record.
A request no allowed model can hold raises :class:`~costguard.InvalidRequestError` before
anything is sent.

The router's models are checked against the price table here, at construction
(:class:`~costguard.ConfigurationError` naming the model).
"""

from __future__ import annotations

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import ConfigurationError
from ..pricing import PriceTable
from ..routing import Router

__all__ = ["RouteLayer"]


class RouteLayer:
    """Routes every call as ``router`` says, checking its models against ``prices``."""

    __slots__ = ("prices", "router")

    def __init__(self, router: Router, prices: PriceTable) -> None:
        if not isinstance(router, Router):
            raise ConfigurationError(f"RouteLayer needs a costguard Router, got {router!r}")
        if not isinstance(prices, PriceTable):
            raise ConfigurationError(f"RouteLayer needs a PriceTable, got {prices!r}")
        router.validate(prices)
        self.router = router
        self.prices = prices

    def prepare(self, call: Call) -> tuple[Call, str | None]:
        """``call`` as it should be sent, and why its model changed (``None``: unchanged)."""
        if call.scope.model is not None:
            return call, None  # the scope forced the model
        route = self.router.plan(call, self.prices)
        reason = route.reason
        if reason is None:
            return call, None
        return call.replace(params={**call.params, "model": route.model}), reason

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        routed, reason = self.prepare(call)
        return call_next(routed).routed(reason)

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        routed, reason = self.prepare(call)
        return (await call_next(routed)).routed(reason)
