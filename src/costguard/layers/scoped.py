"""The scope layer: applies a scope's own policies (``guard.scope(model=, max_tokens=,
max_cost_usd=)``) to every call made inside it.

- ``model`` forces the model of every chat call of the same provider (embeddings keep
  theirs); the ledger's ``route`` says ``scope:model``, and the router and cascade stand aside.
  A forced model the price table knows to be of the other provider is refused before
  anything is sent.
- ``max_tokens`` and ``max_cost_usd`` act as a :class:`~costguard.Cap` would, for calls inside
  the scope: the output limit is only ever lowered, a call whose smallest worst case is over the
  ceiling is refused. They run before the guard's own cap, so the stricter of the two wins.

Calls in a scope without these pass straight through.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import TYPE_CHECKING

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import InvalidRequestError
from ..pricing import PriceTable
from .cap import capped

if TYPE_CHECKING:
    from ..spend._cap import Cap

__all__ = ["ScopeLayer"]


@functools.lru_cache(maxsize=256)
def _cap(max_tokens: int | None, max_cost_usd: Decimal | None) -> Cap:
    from ..spend._cap import Cap  # loaded on first use: spend pulls in token counting

    return Cap(max_tokens, max_cost_usd=max_cost_usd)


class ScopeLayer:
    __slots__ = ("prices",)

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices

    def prepare(self, call: Call) -> tuple[Call, str | None]:
        scope = call.scope
        reason = None
        forced = scope.model
        if forced is not None and call.operation.output_limit_params and forced != call.model:
            price = self.prices.get(forced)
            if price is not None and price.provider != call.provider:
                raise InvalidRequestError(
                    f"scope forces model {forced!r} ({price.provider}) on a {call.provider} "
                    f"call; force a {call.provider} model here",
                    field="model",
                )
            call = call.replace(params={**call.params, "model": forced})
            reason = "scope:model"
        if scope.max_tokens is not None or scope.max_cost_usd is not None:
            call = capped(_cap(scope.max_tokens, scope.max_cost_usd), call, self.prices)
        return call, reason

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        scope = call.scope
        if scope.model is None and scope.max_tokens is None and scope.max_cost_usd is None:
            return call_next(call)
        prepared, reason = self.prepare(call)
        return call_next(prepared).routed(reason)

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        scope = call.scope
        if scope.model is None and scope.max_tokens is None and scope.max_cost_usd is None:
            return await call_next(call)
        prepared, reason = self.prepare(call)
        return (await call_next(prepared)).routed(reason)
