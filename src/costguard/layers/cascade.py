"""The cascade layer: see :mod:`costguard.routing._cascade` for what it decides."""

from __future__ import annotations

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import CostGuardError
from .._usage import Usage
from ..pricing import PriceTable
from ..routing._cascade import Cascade, check_answer

__all__ = ["CascadeLayer"]

_CASCADED = frozenset({"chat.completions.create", "responses.create", "messages.create"})


class CascadeLayer:
    def __init__(self, cascade: Cascade, prices: PriceTable) -> None:
        cascade.validate(prices)
        self.cascade = cascade

    def _cheap_call(self, call: Call) -> Call | None:
        c = self.cascade
        if call.model != c.strong or call.stream or call.operation.name not in _CASCADED:
            return None
        if call.scope.model is not None:  # the scope forced this model
            return None
        if c.features is not None and call.scope.feature not in c.features:
            return None
        return call.replace(params={**call.params, "model": c.cheap})

    def _verdict(self, cheap: Call, outcome: Outcome) -> str | None:
        return check_answer(outcome.response, cheap.params, self.cascade.validator)

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        cheap = self._cheap_call(call)
        if cheap is None:
            return call_next(call)
        try:
            first = call_next(cheap)
        except CostGuardError:
            raise  # costguard's own decisions are not a bad answer
        except Exception as error:
            return _escalated(call_next(call), cheap, _failed(error), "error")
        reason = self._verdict(cheap, first)
        if reason is None:
            return _kept(first)
        return _escalated(call_next(call), cheap, first, reason)

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        cheap = self._cheap_call(call)
        if cheap is None:
            return await call_next(call)
        try:
            first = await call_next(cheap)
        except CostGuardError:
            raise
        except Exception as error:
            return _escalated(await call_next(call), cheap, _failed(error), "error")
        reason = self._verdict(cheap, first)
        if reason is None:
            return _kept(first)
        return _escalated(await call_next(call), cheap, first, reason)


def _join(route: str | None, step: str) -> str:
    return step if route is None else f"{route}+{step}"


def _kept(first: Outcome) -> Outcome:
    first.route = _join(first.route, "cascade:cheap")
    return first


def _failed(error: Exception) -> Outcome:
    return Outcome(response=None, usage=Usage(), status="error", error=error)


def _escalated(strong: Outcome, cheap: Call, first: Outcome, reason: str) -> Outcome:
    first.route = _join(first.route, f"cascade:cheap({reason})")
    first.response = None  # the ledger needs its cost, not its answer
    strong.route = _join(strong.route, f"cascade:escalated({reason})")
    strong.earlier = ((cheap, first), *strong.earlier)
    return strong
