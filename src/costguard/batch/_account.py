"""What a batch request costs and where that is written: the ledger, the cache, the budgets.

Nothing here is batch-specific arithmetic: rows are built by the guard's own ledger layer, cache
keys, partitions and entries by its cache layer, and worst cases and settlements by its budget
book. A batch request is priced as an :class:`~costguard.Outcome` whose ``service_tier`` is
``"batch"``, which the price table answers with the model's batch rates.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._call import Call, ClientInfo, Outcome
from .._errors import CostGuardWarning
from .._estimate import worst_case_cost
from .._scope import Scope
from .._usage import Usage
from ..layers._pricing import price_outcome
from ..layers.cache import CacheLayer
from ..layers.ledger import LedgerLayer
from ..ledger import new_id
from ..providers import Operation, operations_for
from ..spend._budget import Budget, BudgetBook, Hold
from ._store import Item, dumps
from ._types import BatchItemError

if TYPE_CHECKING:
    from .._client import CostGuardClient

__all__ = ["Accounts", "scope_json"]

BATCH_TIER = "batch"


def _unsendable(**params: Any) -> Any:
    raise RuntimeError("a batch request is never sent as a live call")


def operation(provider: str, name: str) -> Operation:
    return next(op for op in operations_for(provider) if op.name == name)


def scope_json(scope: Scope) -> str:
    """The scope a request was made in, as stored with it: its attribution, its cache
    controls and its own budgets (which a later flush reserves against)."""
    return dumps(
        {
            "feature": scope.feature,
            "user": scope.user,
            "tenant": scope.tenant,
            "tags": dict(scope.tags),
            "cache": scope.cache,
            "cache_ttl": scope.cache_ttl,
            "tier": scope.tier,
            "budgets": [_budget_json(b) for b in scope.budgets],
        }
    )


def scope_from(text: str) -> Scope:
    data = json.loads(text)
    return Scope(
        feature=data.get("feature"),
        user=data.get("user"),
        tenant=data.get("tenant"),
        tags=MappingProxyType(dict(data.get("tags") or {})),
        cache=data.get("cache"),
        cache_ttl=data.get("cache_ttl"),
        tier=data.get("tier"),
        budgets=tuple(_budget_from(b) for b in data.get("budgets") or ()),
    )


def _budget_json(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "limit": str(budget.limit),
        "period": budget.period,
        "per": budget.per,
        "missing": budget.missing,
    }


def _budget_from(data: Mapping[str, Any]) -> Budget:
    return Budget(
        data["limit"],
        data["period"],
        data.get("per"),
        name=data["name"],
        missing=data.get("missing", "refuse"),
    )


def _hold_from(text: str, known: Iterable[Budget]) -> Hold:
    """A stored hold; its budgets as ``known`` defines them, else as they were stored."""
    data = json.loads(text)
    named = {b.name: b for b in known}
    rows = tuple(
        (named.get(spec["name"]) or _budget_from(spec), key, period)
        for spec, key, period in data["rows"]
    )
    return Hold(data["id"], rows, int(data["amount"]))


def meta_of(op: Operation, params: Mapping[str, Any]) -> str:
    """What the ledger row needs of a request later: its model and output limit."""
    keep = ("model", *op.output_limit_params)
    return dumps({k: params[k] for k in keep if k in params})


@dataclass(frozen=True, slots=True)
class CachePlan:
    key: str
    tag: str
    ttl: float | None
    lookup: bool
    store: bool


class Accounts:
    """The guard's ledger layer, cache layer and budgets, as the batch engine uses them."""

    def __init__(self, guard: CostGuardClient, info: ClientInfo, reservation_ttl: float) -> None:
        self.guard = guard
        self.info = info
        self.prices = guard.prices
        self.ledger_layer = next(la for la in guard.layers if isinstance(la, LedgerLayer))
        self.cache_layer = next((la for la in guard.layers if isinstance(la, CacheLayer)), None)
        self._reservation_ttl = reservation_ttl

    # -- calls -----------------------------------------------------------------------------

    def call(self, op: Operation, params: Mapping[str, Any], scope: Scope) -> Call:
        return Call(op, MappingProxyType(dict(params)), _unsendable, self.info, scope)

    def recorded_call(self, item: Item) -> Call:
        """The call an item stands for, as its ledger row describes it (no prompt needed)."""
        info = ClientInfo(
            item.provider, item.base_url, False, item.api_key_hash, item.api_key_last4
        )
        op = operation(item.provider, item.operation)
        return Call(op, json.loads(item.meta), _unsendable, info, scope_from(item.scope))

    def check_price(self, call: Call) -> None:
        """Refuse (strict prices) or warn once about an unpriced model, as a live call would."""
        self.ledger_layer._check_price(call)

    # -- the cache ---------------------------------------------------------------------------

    def cache_plan(self, call: Call) -> CachePlan | None:
        if self.cache_layer is None:
            return None
        plan = self.cache_layer._plan(call)
        if plan is None:
            return None
        return CachePlan(plan.key, plan.tag, plan.ttl, plan.lookup, plan.store)

    def cache_hit(self, call: Call, plan: CachePlan | None) -> tuple[Outcome, Any] | None:
        """(the hit's outcome, its stored JSON) when the exact cache holds the answer."""
        if plan is None or not plan.lookup or self.cache_layer is None:
            return None
        entry = self.cache_layer.exact.get(plan.key)
        hit = self.cache_layer._serve(call, plan.key, entry, "exact")
        if hit is None or entry is None:
            return None
        return dataclasses.replace(hit, service_tier=BATCH_TIER), entry["object"]

    def store_answer(self, item: Item, answer: Any) -> None:
        cache = self.guard.cache
        if cache is None or not item.cache_store or item.cache_key is None:
            return
        entry = CacheLayer._entry(self.recorded_call(item), answer)
        if entry is not None:
            cache.set(item.cache_key, entry, tag=item.cache_tag or "shared", ttl=item.cache_ttl)

    # -- the ledger --------------------------------------------------------------------------

    def answered(self, op: Operation, answer: Any, call: Call) -> Outcome:
        outcome = op.read(answer).outcome(None, max_tokens_sent=call.max_tokens)
        return dataclasses.replace(outcome, service_tier=BATCH_TIER)

    @staticmethod
    def failed(error: BatchItemError) -> Outcome:
        return Outcome(None, usage=Usage(), status="error", error=error, service_tier=BATCH_TIER)

    def write_row(
        self, item: Item, outcome: Outcome, *, latency_ms: float, call: Call | None = None
    ) -> Decimal | None:
        """Write the item's ledger row (idempotent: its id is fixed); return its cost."""
        call = call or self.recorded_call(item)
        cost = price_outcome(self.prices, call, outcome)
        try:
            row = self.ledger_layer._row(call, outcome, max(latency_ms, 0.0))
            row = dataclasses.replace(row, id=item.row_id or row.id, batch_id=item.batch_id)
            self.guard.ledger.write(row)
        except Exception as exc:  # bookkeeping never breaks the work, as for live calls
            warnings.warn(
                f"costguard could not write the ledger: {exc!r}", CostGuardWarning, stacklevel=3
            )
        if outcome.cache != "miss" or outcome.status != "ok":
            return None
        return None if cost is None else cost.usd

    # -- budgets -----------------------------------------------------------------------------

    def book(self, *, needed: bool = False) -> BudgetBook | None:
        """The guard's own budget book (the one live calls use).

        None when the guard has no budgets of its own and nothing ``needed`` one (a scope
        that brings budgets, a hold to settle). A ``":memory:"`` ledger cannot hold budgets:
        ConfigurationError, as for a live call in such a scope."""
        if self.guard.budgets is None and not needed:
            return None
        return self.guard._budgeting.book  # made on first need

    def reserve(self, call: Call) -> str | None:
        """Reserve the call's worst case at batch rates against the guard's budgets and its
        scope's (BudgetExceededError if refused); the hold as stored with the request (None:
        no budget applies)."""
        book = self.book(needed=bool(call.scope.budgets))
        if book is None:
            return None
        priced = call.replace(params={**call.params, "service_tier": BATCH_TIER})
        hold = book.reserve(
            new_id(),
            call.scope,
            worst_case_cost(priced, self.prices),
            ttl=self._reservation_ttl,  # as long as a batch may take
        )
        # Each budget is written out whole, so whichever guard collects the request settles
        # it, scope budgets included.
        rows = [[_budget_json(budget), key, period] for budget, key, period in hold.rows]
        return dumps({"id": hold.id, "amount": hold.amount, "rows": rows})

    def settle(self, hold_text: str | None, cost: Decimal | None, *, ok: bool) -> None:
        """Turn a stored hold into the request's real cost (``ok``), or release it."""
        if hold_text is None:
            return
        book = self.book(needed=True)
        assert book is not None
        hold = _hold_from(hold_text, book.budgets)
        if ok:
            book.settle(hold, cost)
        else:
            book.release(hold)
