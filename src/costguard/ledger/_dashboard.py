"""Dashboard figures over a ledger: spend, shares, cache hit rate and what each saving saved.

:func:`dashboard` reads a ledger (a time range of it) and returns a :class:`Dashboard`: pure
figures, no formatting. Grouped totals come from ``Ledger.summary``; the savings that need
more than a sum (routing, output caps, provider prompt caching) are computed here from the
rows that can carry them, selected in SQL so a large ledger is not loaded into memory.

Money is exact: every amount is summed in integer picodollars and returned as ``Decimal``.
How each saving is defined (docs/reports.md says the same, with examples):

- **cache**: the ``saved_usd`` of rows answered by costguard's cache (``cache`` is ``exact``
  or ``semantic``): what the answer would have cost when it was served.
- **routing**: for each priced row with a ``route`` whose served model has a different price
  entry than the requested one, the cost of the row's usage at the requested model's price
  (``compute_cost`` on ``prices``, same service tier) minus the row's real cost. Rows where
  either price is unknown are skipped; rows whose route includes a fallback step are left out
  (an outage chose that model, not a cost decision). A cascade's discarded cheap attempt
  (``cascade:cheap(<reason>)``) counts against routing: its whole cost is subtracted. The
  figure is net, so it can be negative.
- **capping** (an upper bound): for each priced row whose output limit was lowered or filled in
  (``sent_max_tokens`` below ``requested_max_tokens``, or none requested) and whose answer used
  all of it (``output_tokens >= sent_max_tokens``): ``(requested - sent) * output rate``, where
  ``requested`` is the caller's limit, or the model's maximum output when the caller set none,
  and never more than the model's maximum output. The model might have stopped sooner.
- **prompt caching**: for each priced row, from the rates it was charged (its ``rates``
  column): cache-read tokens times (input rate - cache-read rate), minus cache-write tokens
  times (cache-write rate - input rate), for the 5-minute and 1-hour writes. Net of the write
  premium, so it can be negative.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from .._usage import Usage
from ._record import from_pusd
from ._store import _GROUP_KEYS, Ledger, SummaryRow, _where

if TYPE_CHECKING:
    from ..pricing import PriceTable

__all__ = [
    "GROUP_KEYS",
    "Dashboard",
    "DaySpend",
    "ModelShare",
    "Saving",
    "Savings",
    "Slice",
    "dashboard",
]

GROUP_KEYS: tuple[str, ...] = tuple(sorted(_GROUP_KEYS))
"""The keys ``Ledger.summary`` (and ``costguard report --group-by``) can group by."""

_HITS = ("exact", "semantic")
_ZERO = Decimal(0)

TimeBound = datetime | date | None


@dataclass(frozen=True, slots=True)
class Slice:
    """Spend of one feature, user or model (``key`` None: calls made without one)."""

    key: str | None
    calls: int
    cost_usd: Decimal
    errors: int = 0
    unpriced: int = 0


@dataclass(frozen=True, slots=True)
class ModelShare:
    """One model's calls and spend, and its share of all calls and of all spend (0..1)."""

    model: str | None
    calls: int
    cost_usd: Decimal
    unpriced: int
    call_share: float
    cost_share: float


@dataclass(frozen=True, slots=True)
class DaySpend:
    """One UTC day: calls, costguard cache hits, spend, and spend per model."""

    day: str
    calls: int
    cache_hits: int
    cost_usd: Decimal
    by_model: Mapping[str | None, Decimal]

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class Saving:
    """Money one kind of saving saved, and how many calls it came from.

    ``upper_bound`` is True when ``usd`` is the most it can have saved (output caps).
    """

    usd: Decimal
    calls: int
    upper_bound: bool = False


@dataclass(frozen=True, slots=True)
class Savings:
    """Money saved, by kind (see the module docstring for each definition)."""

    cache: Saving
    routing: Saving
    capping: Saving
    prompt_caching: Saving
    cheaper_calls: int = 0
    """Routed calls whose requested model would have cost more for the same usage."""
    discarded_cascade_calls: int = 0
    """Cascade cheap attempts whose answer was discarded (their cost counts against routing)."""

    @property
    def exact_usd(self) -> Decimal:
        """The savings known exactly: cache, routing and prompt caching (not the caps)."""
        return self.cache.usd + self.routing.usd + self.prompt_caching.usd


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Every dashboard figure of one ledger range. Lists are sorted by cost, highest first."""

    calls: int
    errors: int
    unpriced: int
    cost_usd: Decimal
    cache_hits: int
    first_ts: datetime | None
    last_ts: datetime | None
    features: tuple[Slice, ...]
    users: tuple[Slice, ...]
    models: tuple[ModelShare, ...]
    days: tuple[DaySpend, ...]
    savings: Savings
    cache_hits_by_kind: Mapping[str, int] = field(default_factory=dict)

    @property
    def cache_hit_rate(self) -> float:
        """Share of all calls answered by costguard's cache (0..1)."""
        return self.cache_hits / self.calls if self.calls else 0.0

    @property
    def error_rate(self) -> float:
        """Share of all calls that failed (status ``error``)."""
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cheaper_share(self) -> float:
        """Share of all calls sent to a cheaper model than the one requested."""
        return self.savings.cheaper_calls / self.calls if self.calls else 0.0

    @property
    def unpriced_models(self) -> tuple[str | None, ...]:
        """The models of unpriced calls."""
        return tuple(m.model for m in self.models if m.unpriced)


def dashboard(
    ledger: Ledger,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    prices: PriceTable | None = None,
) -> Dashboard:
    """The dashboard figures of ``ledger`` for ``since <= ts < until``.

    ``prices`` (default: ``PriceTable.default()``) prices the routing counterfactual and gives
    models' maximum output for the caps; everything else comes from the ledger's own rows.
    """
    if prices is None:
        from ..pricing import PriceTable

        prices = PriceTable.default()

    def summary(keys: str | list[str]) -> list[SummaryRow]:
        return ledger.summary(keys, since=since, until=until)

    total = summary([])
    if not total:
        empty, bound = Saving(_ZERO, 0), Saving(_ZERO, 0, upper_bound=True)
        return Dashboard(
            0, 0, 0, _ZERO, 0, None, None, (), (), (), (), Savings(empty, empty, bound, empty)
        )
    [overall] = total
    by_day_cache = summary(["day", "cache"])
    hits_by_kind: dict[str, int] = {}
    cache_saved = _ZERO
    for row in by_day_cache:
        kind = row.key["cache"]
        if kind in _HITS:
            hits_by_kind[kind] = hits_by_kind.get(kind, 0) + row.calls
            cache_saved += row.saved_usd
    hits = sum(hits_by_kind.values())
    clause, params = _where(since, until, {})  # since <= ts < until, as summary() does
    routing, cheaper, discarded = _routing(ledger, prices, clause, params)
    first, last = ledger._query(f"SELECT min(ts), max(ts) FROM calls{clause}", params)[0]
    return Dashboard(
        calls=overall.calls,
        errors=overall.errors,
        unpriced=overall.unpriced,
        cost_usd=overall.cost_usd,
        cache_hits=hits,
        first_ts=datetime.fromisoformat(first) if first else None,
        last_ts=datetime.fromisoformat(last) if last else None,
        features=_slices(summary("feature"), "feature"),
        users=_slices(summary("user"), "user"),
        models=_models(summary("model"), overall),
        days=_days(summary(["day", "model"]), by_day_cache),
        savings=Savings(
            cache=Saving(cache_saved, hits),
            routing=routing,
            capping=_capping(ledger, prices, clause, params),
            prompt_caching=_prompt_caching(ledger, clause, params),
            cheaper_calls=cheaper,
            discarded_cascade_calls=discarded,
        ),
        cache_hits_by_kind=hits_by_kind,
    )


def _and(clause: str, condition: str) -> str:
    return f"{clause} AND {condition}" if clause else f" WHERE {condition}"


def _slices(rows: Sequence[SummaryRow], key: str) -> tuple[Slice, ...]:
    return tuple(Slice(r.key[key], r.calls, r.cost_usd, r.errors, r.unpriced) for r in rows)


def _models(rows: Sequence[SummaryRow], overall: SummaryRow) -> tuple[ModelShare, ...]:
    spend = overall.cost_usd
    return tuple(
        ModelShare(
            model=r.key["model"],
            calls=r.calls,
            cost_usd=r.cost_usd,
            unpriced=r.unpriced,
            call_share=r.calls / overall.calls,
            cost_share=float(r.cost_usd / spend) if spend else 0.0,
        )
        for r in rows
    )


def _days(by_model: Sequence[SummaryRow], by_cache: Sequence[SummaryRow]) -> tuple[DaySpend, ...]:
    spend: dict[str, dict[str | None, Decimal]] = {}
    for r in by_model:
        day = r.key["day"] or ""
        spend.setdefault(day, {})[r.key["model"]] = r.cost_usd
    calls: dict[str, list[int]] = {}
    for r in by_cache:
        counts = calls.setdefault(r.key["day"] or "", [0, 0])
        counts[0] += r.calls
        if r.key["cache"] in _HITS:
            counts[1] += r.calls
    return tuple(
        DaySpend(
            day=day,
            calls=calls.get(day, [0, 0])[0],
            cache_hits=calls.get(day, [0, 0])[1],
            cost_usd=sum(models.values(), _ZERO),
            by_model=dict(sorted(models.items(), key=lambda kv: (-kv[1], kv[0] or ""))),
        )
        for day, models in sorted(spend.items())
    )


def _micro(rates: Mapping[str, object], name: str) -> int | None:
    """A stored rate in integer micro-dollars per million tokens (None if absent or odd)."""
    try:
        value = Decimal(str(rates[name])).scaleb(6)
    except (KeyError, InvalidOperation):
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return int(value)


def _rates(text: str | None) -> Mapping[str, object]:
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _routing(
    ledger: Ledger, prices: PriceTable, clause: str, params: list[object]
) -> tuple[Saving, int, int]:
    """Net routing saving, calls it came from, calls made cheaper, discarded cascade tries."""
    from ..pricing import compute_cost

    sql = (
        "SELECT requested_model, served_model, route, service_tier, input_tokens,"
        " cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens,"
        f" cost_pusd FROM calls{_and(clause, 'route IS NOT NULL AND cost_pusd IS NOT NULL')}"
    )
    saved = calls = cheaper = discarded = 0
    for requested, served, route, tier, *tokens, cost in ledger._query(sql, params):
        steps = route.split("+")
        if any(s.startswith("fallback:") for s in steps):
            continue  # an outage picked this model, not a cost decision
        if any(s.startswith("cascade:cheap(") for s in steps):
            saved -= cost  # paid for an answer that was thrown away
            calls += 1
            discarded += 1
            continue
        asked = prices.get(requested) if requested else None
        got = prices.get(served) if served else None
        if asked is None or got is None or asked.model == got.model:
            continue
        usage = Usage(*tokens)
        would_have = compute_cost(asked, usage, service_tier=tier).picodollars
        saved += would_have - cost
        calls += 1
        if would_have > cost:
            cheaper += 1
    return Saving(from_pusd(saved), calls), cheaper, discarded


def _capping(ledger: Ledger, prices: PriceTable, clause: str, params: list[object]) -> Saving:
    """Upper bound of what output caps saved: the tokens a capped answer could have gone on."""
    condition = (
        "cost_pusd IS NOT NULL AND sent_max_tokens > 0 AND output_tokens >= sent_max_tokens"
        " AND (requested_max_tokens IS NULL OR requested_max_tokens > sent_max_tokens)"
    )
    sql = (
        "SELECT coalesce(served_model, requested_model), requested_max_tokens, sent_max_tokens,"
        f" rates, count(*) FROM calls{_and(clause, condition)} GROUP BY 1, 2, 3, 4"
    )
    saved = calls = 0
    for model, requested, sent, rates, count in ledger._query(sql, params):
        price = prices.get(model) if model else None
        ceiling = price.max_output_tokens if price is not None else None
        limits = [n for n in (requested, ceiling) if n is not None]
        rate = _micro(_rates(rates), "output")
        if not limits or rate is None or min(limits) <= sent:
            continue
        saved += count * (min(limits) - sent) * rate
        calls += count
    return Saving(from_pusd(saved), calls, upper_bound=True)


def _prompt_caching(ledger: Ledger, clause: str, params: list[object]) -> Saving:
    """Provider prompt-cache reads' discount, net of the cache writes' premium."""
    condition = (
        "rates IS NOT NULL AND cost_pusd IS NOT NULL"
        " AND (cache_read_tokens > 0 OR cache_write_5m_tokens > 0 OR cache_write_1h_tokens > 0)"
    )
    sql = (
        "SELECT rates, sum(cache_read_tokens), sum(cache_write_5m_tokens),"
        f" sum(cache_write_1h_tokens), count(*) FROM calls{_and(clause, condition)} GROUP BY rates"
    )
    saved = calls = 0
    for rates_text, read, write_5m, write_1h, count in ledger._query(sql, params):
        rates = _rates(rates_text)
        base, read_rate, w5_rate, w1_rate = (
            _micro(rates, name)
            for name in ("input", "cache_read", "cache_write_5m", "cache_write_1h")
        )
        if base is None or read_rate is None or w5_rate is None or w1_rate is None:
            continue
        saved += read * (base - read_rate)
        saved -= write_5m * (w5_rate - base) + write_1h * (w1_rate - base)
        calls += count
    return Saving(from_pusd(saved), calls)
