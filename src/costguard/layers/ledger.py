"""The ledger layer: prices every call and writes one ledger row for it, failures included.

It is the outermost layer, so it sees what the user asked for and, through the Outcome, what was
served. A stream is recorded when it ends or is closed. Bookkeeping never breaks a call: a
failing write becomes a :class:`~costguard.CostGuardWarning`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from .._call import Call, Outcome, attempts_made
from .._chain import AsyncHandler, Handler
from .._errors import CostGuardError, CostGuardWarning, UnknownModelPriceError
from .._usage import Usage
from ..ledger import CallRecord, Ledger, new_id
from ..pricing import PriceTable, Rates
from ._pricing import price_outcome, service_tier

__all__ = ["LedgerLayer"]

_NO_USAGE = Usage()
_ZERO = Decimal(0)
_HITS = frozenset({"exact", "semantic"})
_RATE_FIELDS = tuple(f.name for f in fields(Rates) if f.init)


logger = logging.getLogger("costguard")


def _log_row(row: CallRecord, error: BaseException | None) -> None:
    """One line per call at DEBUG; costguard's own refusals at INFO. Never prompts, answers
    or keys: only what the ledger row holds."""
    if isinstance(error, CostGuardError):
        logger.info(
            "costguard refused a %s call to %s: %s", row.provider, row.requested_model, error
        )
        return
    logger.debug(
        "%s %s %s -> %s: %s, cost %s, saved %s, cache %s, attempts %d%s",
        row.provider,
        row.operation,
        row.requested_model,
        row.served_model,
        row.status,
        "unpriced" if row.cost_usd is None else f"${row.cost_usd}",
        f"${row.saved_usd}",
        row.cache,
        row.attempts,
        f", route {row.route}" if row.route else "",
    )


def _failed(error: Exception) -> Outcome:
    """A request that failed before any answer: providers bill nothing for it."""
    return Outcome(
        response=None,
        usage=_NO_USAGE,
        status="error",
        error=error,
        attempts=attempts_made(error),
    )


class LedgerLayer:
    def __init__(
        self,
        ledger: Ledger,
        prices: PriceTable,
        *,
        strict_prices: bool = False,
        timer: Callable[[], float] = time.perf_counter,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.strict_prices = strict_prices
        self._timer = timer
        self._now = now
        self._warned: set[str] = set()
        self._rates_seen: dict[int, tuple[Rates, Mapping[str, str]]] = {}

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        self._check_price(call)
        start = self._timer()
        try:
            outcome = call_next(call)
        except Exception as exc:
            self._record(call, start, _failed(exc))
            raise
        self._settle(call, start, outcome)
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        self._check_price(call)
        start = self._timer()
        try:
            outcome = await call_next(call)
        except Exception as exc:
            self._record(call, start, _failed(exc))
            raise
        self._settle(call, start, outcome)
        return outcome

    def _check_price(self, call: Call) -> None:
        """Refuse (strict) or warn about an unpriced model before anything is sent."""
        model = call.model
        if model is None or model in self._warned or model in self.prices:
            return
        if self.strict_prices:
            raise UnknownModelPriceError(model, provider=call.provider)
        self._warned.add(model)
        warnings.warn(
            f"costguard has no price for model {model!r} ({call.provider}); its calls are "
            "recorded as unpriced. Add a price with PriceTable.override() or a price file.",
            CostGuardWarning,
            stacklevel=5,
        )

    def _settle(self, call: Call, start: float, outcome: Outcome) -> None:
        if outcome.stream is None:
            self._record(call, start, outcome)
        else:
            outcome.stream.on_finish(
                lambda final: self._record(call, start, outcome.settled(final))
            )

    def _record(self, call: Call, start: float, outcome: Outcome) -> None:
        latency_ms = (self._timer() - start) * 1000.0
        try:
            linked_to = None
            for earlier_call, earlier in outcome.earlier:  # attempts billed on their own
                row = self._row(earlier_call, earlier, 0.0)
                self.ledger.write(row)
                linked_to = linked_to or row.id
            row = self._row(call, outcome, latency_ms)
            if linked_to is not None:
                row = dataclasses.replace(row, linked_to=linked_to)
            self.ledger.write(row)
            if logger.isEnabledFor(logging.INFO):
                _log_row(row, outcome.error)
        except Exception as exc:
            logger.warning("costguard could not write the ledger: %r", exc)
            warnings.warn(
                f"costguard could not write the ledger: {exc!r}", CostGuardWarning, stacklevel=2
            )

    def _rate_strings(self, rates: Rates) -> Mapping[str, str]:
        """The rates as the ledger stores them; the table's Rates objects repeat, so cache."""
        seen = self._rates_seen.get(id(rates))
        if seen is not None and seen[0] is rates:
            return seen[1]
        strings = MappingProxyType({name: str(getattr(rates, name)) for name in _RATE_FIELDS})
        if len(self._rates_seen) > 1024:
            self._rates_seen.clear()
        self._rates_seen[id(rates)] = (rates, strings)
        return strings

    def _row(self, call: Call, outcome: Outcome, latency_ms: float) -> CallRecord:
        served = outcome.served_model
        usage = outcome.usage
        cost = rates = version = None
        tier = service_tier(call, outcome)
        priced = price_outcome(self.prices, call, outcome, tier)
        if priced is not None:
            cost, version = priced.usd, priced.version
            rates = self._rate_strings(priced.rates)
        saved = outcome.saved_usd
        if outcome.cache in _HITS:
            # Nothing was bought: the row costs nothing and saves what the answer would cost
            # today; its token columns stay zero (raw_usage keeps the stored answer's usage).
            if cost is not None:
                saved, cost = saved + cost, _ZERO
            usage = None
        scope, client = call.scope, call.client
        error = outcome.error
        return CallRecord(
            id=new_id(),
            ts=self._now(),
            provider=call.provider,
            operation=call.operation.name,
            requested_model=call.model,
            served_model=served,
            usage=usage or _NO_USAGE,
            raw_usage=outcome.raw_usage,
            cost_usd=cost,
            saved_usd=saved,
            rates=rates,
            price_version=version,
            service_tier=tier,
            cache=outcome.cache,
            latency_ms=latency_ms,
            attempts=outcome.attempts,
            status=outcome.status,
            error_type=type(error).__name__ if error is not None else None,
            stream=call.stream,
            feature=scope.feature,
            user=scope.user,
            tenant=scope.tenant,
            tags=scope.tags,
            api_key_hash=client.api_key_hash,
            api_key_last4=client.api_key_last4,
            requested_max_tokens=call.max_tokens,
            sent_max_tokens=outcome.max_tokens_sent,
            route=outcome.route,
        )
