"""The budget layer: reserve a call's worst case before it is sent, settle it when it ends.

It runs inside the cache layer, so a cache hit never touches a budget, and after capping and
routing, so the worst case is priced for the request as it will really be sent. The refusal
(:class:`~costguard.BudgetExceededError`) comes before anything is sent. A provider error
releases the reservation (a failed request is not billed). A finished call settles it to the
real cost; a stream settles when it ends; an unknown cost (a stream stopped early without usage)
keeps the worst case, so spend is never under-counted. From async code the database work runs
in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._estimate import worst_case_cost
from ..ledger import new_id
from ..pricing import PriceTable
from ..spend._budget import BudgetBook, Hold
from ._pricing import price_outcome

__all__ = ["BudgetLayer"]


class BudgetLayer:
    """Reserves against the guard's budgets and the call's scope budgets.

    ``make_book`` makes the :class:`BudgetBook`: at once when the guard has budgets of its own
    (``eager``), else only when a scope first brings one, so that calls without scope budgets
    pass straight through and a guard without budgets opens no book.
    """

    __slots__ = ("_book", "_eager", "_lock", "_make", "prices")

    def __init__(
        self, make_book: Callable[[], BudgetBook], prices: PriceTable, *, eager: bool
    ) -> None:
        self._make = make_book
        self._lock = threading.Lock()
        self._eager = eager
        self._book = make_book() if eager else None
        self.prices = prices

    @property
    def made(self) -> BudgetBook | None:
        """The book, if it has been made."""
        return self._book

    @property
    def book(self) -> BudgetBook:
        """The book, made now if need be."""
        book = self._book
        if book is None:
            with self._lock:
                if self._book is None:
                    self._book = self._make()
                book = self._book
        return book

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        if not self._eager and not call.scope.budgets:
            return call_next(call)
        hold = self.book.reserve(new_id(), call.scope, worst_case_cost(call, self.prices))
        try:
            outcome = call_next(call)
        except BaseException:
            self.book.release(hold)
            raise
        self._settle_when_done(call, hold, outcome)
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        if not self._eager and not call.scope.budgets:
            return await call_next(call)
        import asyncio

        worst = worst_case_cost(call, self.prices)
        hold = await asyncio.to_thread(self.book.reserve, new_id(), call.scope, worst)
        try:
            outcome = await call_next(call)
        except BaseException:
            await asyncio.to_thread(self.book.release, hold)
            raise
        if outcome.stream is None:
            cost = price_outcome(self.prices, call, outcome)
            await asyncio.to_thread(self.book.settle, hold, None if cost is None else cost.usd)
        else:
            self._settle_when_done(call, hold, outcome)
        return outcome

    def _settle_when_done(self, call: Call, hold: Hold, outcome: Outcome) -> None:
        if outcome.stream is None:
            self._settle(call, hold, outcome)
        else:
            outcome.stream.on_finish(lambda final: self._settle(call, hold, final))

    def _settle(self, call: Call, hold: Hold, outcome: Outcome) -> None:
        cost = price_outcome(self.prices, call, outcome)
        self.book.settle(hold, None if cost is None else cost.usd)
