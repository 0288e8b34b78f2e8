"""Budgets that hold under concurrency: reserve the worst case, then settle to the real cost.

Before a call is sent, its worst-case cost is reserved against every budget that applies, in
one ``BEGIN IMMEDIATE`` transaction on the ledger database: if any budget's
``spent + reserved + worst_case`` would pass its limit, nothing is reserved and the call is
refused with :class:`~costguard.BudgetExceededError`. When the call ends, its reservation is
replaced by what it really cost (or simply removed if it failed). A reservation left by a
process that died lapses after ``reservation_ttl`` seconds. Amounts are integer picodollars.

Spend is kept per budget, key (the scope value the budget is ``per``, e.g. a user id) and
calendar period (day, ISO week from Monday, month, or total) in a configurable timezone. A
call's spend lands in the period its reservation was made in, so a reset at midnight never
loses spend settled across it.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._errors import BudgetExceededError, ConfigurationError, LedgerError
from .._scope import Scope
from ..ledger._migrations import immediate
from ..ledger._record import from_pusd, to_pusd

__all__ = ["Budget", "BudgetAlert", "BudgetBook", "BudgetStatus", "Hold", "book_options"]

logger = logging.getLogger("costguard")

PERIODS = ("day", "week", "month", "total")
PER_KEYS = ("user", "feature", "tenant", "tier")
_MISSING = ("refuse", "anonymous")


@dataclass(frozen=True)
class Budget:
    """A spending limit in USD for a calendar ``period``, overall or ``per`` scope key.

    ``Budget(50, period="day")`` caps the whole app at $50 a day;
    ``Budget(1, period="day", per="user")`` gives each user $1 a day. A call whose scope lacks
    the ``per`` key is refused (``missing="refuse"``, the default) or counted under the key
    ``"anonymous"`` (``missing="anonymous"``).
    """

    limit_usd: Decimal | int | str | float
    period: str = "day"
    per: str | None = None
    name: str | None = None
    missing: str = "refuse"
    _named: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        limit = _decimal(self.limit_usd)
        if limit is None or not limit.is_finite() or limit <= 0:
            raise ConfigurationError(
                f"a budget's limit must be a positive amount of USD, got {self.limit_usd!r}"
            )
        object.__setattr__(self, "limit_usd", limit)
        if self.period not in PERIODS:
            raise ConfigurationError(f"unknown budget period {self.period!r}; use one of {PERIODS}")
        if self.per is not None and self.per not in PER_KEYS:
            raise ConfigurationError(f"a budget can be per one of {PER_KEYS}, not {self.per!r}")
        if self.missing not in _MISSING:
            raise ConfigurationError(f"missing= must be one of {_MISSING}, got {self.missing!r}")
        object.__setattr__(self, "_named", self.name is not None)
        if self.name is None:
            object.__setattr__(self, "name", f"{self.per or 'all'}/{self.period}/${limit}")
        try:
            to_pusd(limit)
        except ValueError as exc:
            raise ConfigurationError(f"budget {self.name}: {exc}") from None

    @property
    def limit(self) -> Decimal:
        assert isinstance(self.limit_usd, Decimal)
        return self.limit_usd

    def scoped(self, feature: str | None) -> Budget:
        """This budget as a scope's own: unnamed ones get a ``scope:`` name (after the
        feature, when there is one), so they never share spend with a guard's budget."""
        if self._named:
            return self
        where = f"scope:{feature}" if feature else "scope"
        return replace(self, name=f"{where}:{self.name}")

    def key_for(self, scope: Scope) -> str | None:
        """This call's key under the budget ('' when global), or None to refuse it."""
        if self.per is None:
            return ""
        value = getattr(scope, self.per)
        if value is None:
            return "anonymous" if self.missing == "anonymous" else None
        return str(value)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = str(value)
    try:
        return Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class BudgetAlert:
    """Sent to ``on_alert`` the first time a budget's spend reaches ``fraction`` of its limit
    within a key and period."""

    budget: str
    key: str | None
    period: str
    fraction: Decimal
    spent: Decimal
    limit: Decimal


@dataclass(frozen=True)
class BudgetStatus:
    budget: str
    key: str | None
    period: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spent - self.reserved, Decimal(0))


@dataclass(eq=False)
class Hold:
    """One call's reservation across the budgets that apply to it; settles at most once."""

    id: str
    rows: tuple[tuple[Budget, str, str], ...]  # (budget, key, period)
    amount: int  # picodollars reserved against each
    done: bool = field(default=False)


def book_options(
    timezone: str, reservation_ttl: float, alert_at: Iterable[float | Decimal | str]
) -> tuple[ZoneInfo, float, tuple[Decimal, ...]]:
    """A :class:`BudgetBook`'s options, checked: the timezone, the reservation TTL in
    seconds and the sorted alert fractions; ConfigurationError naming a bad one."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigurationError(f"unknown timezone {timezone!r}") from None
    if not (isinstance(reservation_ttl, int | float) and math.isfinite(reservation_ttl)) or (
        reservation_ttl <= 0
    ):
        raise ConfigurationError(
            f"reservation_ttl must be positive seconds, got {reservation_ttl!r}"
        )
    given = list(alert_at)
    fractions = {_decimal(f) for f in given}
    if any(f is None or not f.is_finite() or f <= 0 for f in fractions):
        raise ConfigurationError(f"alert fractions must be positive numbers, got {given}")
    return zone, float(reservation_ttl), tuple(sorted(f for f in fractions if f is not None))


class BudgetBook:
    """Budgets, their reservations and alerts, kept in the ledger database."""

    def __init__(
        self,
        budgets: Sequence[Budget],
        path: Path,
        *,
        timezone: str = "UTC",
        reservation_ttl: float = 900.0,
        alert_at: Iterable[float | Decimal | str] = ("0.5", "0.8", "1"),
        on_alert: Callable[[BudgetAlert], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [b.name for b in budgets]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"budget names must be unique, got {names}")
        self.timezone, self.reservation_ttl, self.alert_at = book_options(
            timezone, reservation_ttl, alert_at
        )
        self.budgets = tuple(budgets)
        self.on_alert = on_alert
        self._clock = clock
        self._path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        # As the ledger: WAL, and no fsync per commit (a commit survives the process dying;
        # only a power loss can undo the last few).
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._timezone_name = timezone
        #: Scope budgets met so far, by name: published to the ledger on first use.
        self._scoped: dict[str, Budget] = {}
        if self.budgets:
            self._publish(self.budgets)

    def _publish(self, budgets: Sequence[Budget]) -> None:
        """Record the budgets' definitions in the ledger, for `costguard budget status`."""
        with self._lock:
            self._record_definitions(budgets)

    def _record_definitions(self, budgets: Sequence[Budget], *, scoped: bool = False) -> None:
        """:meth:`_publish`, with ``self._lock`` held. ``scoped`` marks a scope's own budgets,
        which tools reading the ledger must not apply to every call."""
        timezone = self._timezone_name
        definitions = [
            (
                f"budget:{b.name}",
                json.dumps(
                    {
                        "limit": str(b.limit),
                        "period": b.period,
                        "per": b.per,
                        "timezone": timezone,
                        **({"scope": True} if scoped else {}),
                    }
                ),
            )
            for b in budgets
        ]
        try:
            with immediate(self._conn):
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", definitions
                )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot record budgets in ledger {self._path}: {exc}") from exc

    @classmethod
    def published(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        include_scoped: bool = True,
    ) -> list[BudgetBook]:
        """Books for the budgets recorded in the ledger at ``path`` (one per timezone);
        ``include_scoped=False`` leaves out the budgets scopes brought (they apply only to the
        calls made inside those scopes)."""
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT key, value FROM meta WHERE key LIKE 'budget:%'").fetchall()
        finally:
            conn.close()
        by_zone: dict[str, list[Budget]] = {}
        for key, value in rows:
            spec = json.loads(value)
            if spec.get("scope") and not include_scoped:
                continue
            budget = Budget(spec["limit"], spec["period"], spec["per"], name=key[len("budget:") :])
            by_zone.setdefault(spec["timezone"], []).append(budget)
        books = []
        for zone, budgets in sorted(by_zone.items()):
            book = cls((), path, timezone=zone, clock=clock)
            book.budgets = tuple(budgets)
            books.append(book)
        return books

    # -- the calendar ----------------------------------------------------------------------

    def period_of(self, budget: Budget, now: float) -> str:
        if budget.period == "total":
            return ""
        day = datetime.fromtimestamp(now, UTC).astimezone(self.timezone).date()
        if budget.period == "week":
            day -= timedelta(days=day.weekday())
        elif budget.period == "month":
            day = day.replace(day=1)
        return day.isoformat()

    # -- reserve, settle, release ------------------------------------------------------------

    def _with_scoped(self, scope: Scope) -> tuple[Budget, ...]:
        """The guard's budgets and the scope's own (published the first time they are seen)."""
        budgets = scope.budgets
        if not budgets:
            return self.budgets
        scoped = self._scoped
        if any(scoped.get(str(b.name)) != b for b in budgets):
            # A budget not met before: checked, published and remembered under the lock, so
            # that two threads bringing different budgets of one name cannot both pass.
            with self._lock:
                for budget in budgets:
                    if self._known(budget) is None:
                        self._record_definitions([budget], scoped=True)
                        scoped[str(budget.name)] = budget
        return self.budgets + budgets

    def _known(self, budget: Budget) -> Budget | None:
        """The scope budget already published under ``budget``'s name (``None`` if none),
        after checking that ``budget`` may take that name. Called with ``self._lock`` held."""
        known = self._scoped.get(str(budget.name))
        if known is None and any(b.name == budget.name for b in self.budgets):
            raise ConfigurationError(
                f"scope budget {budget.name} has the name of one of the guard's budgets; "
                "give it another name"
            )
        if known is not None and known != budget:
            raise ConfigurationError(
                f"two different scope budgets are named {budget.name}: {known} and {budget}"
            )
        return known

    def applicable(self, scope: Scope, now: float) -> tuple[tuple[Budget, str, str], ...]:
        rows = []
        for budget in self._with_scoped(scope):
            key = budget.key_for(scope)
            if key is None:
                raise ConfigurationError(
                    f"budget {budget.name} is per {budget.per}, and this call's scope has no "
                    f"{budget.per}: set one with guard.scope({budget.per}=...), or construct "
                    'the budget with missing="anonymous"'
                )
            rows.append((budget, key, self.period_of(budget, now)))
        return tuple(rows)

    def reserve(
        self, hold_id: str, scope: Scope, worst_case: Decimal, *, ttl: float | None = None
    ) -> Hold:
        """Reserve ``worst_case`` against every applicable budget, or refuse the call. The
        reservation lapses after ``ttl`` seconds (default: the book's ``reservation_ttl``;
        a batch, which may take a day, holds longer)."""
        now = self._clock()
        expires_at = now + (self.reservation_ttl if ttl is None else ttl)
        rows = self.applicable(scope, now)
        amount = to_pusd(worst_case)
        try:
            with self._lock, immediate(self._conn):
                self._conn.execute("DELETE FROM budget_reservations WHERE expires_at <= ?", (now,))
                for budget, key, period in rows:
                    spent, reserved = self._totals(budget, key, period)
                    if spent + reserved + amount > to_pusd(budget.limit):
                        raise _refusal(budget, key, period, spent, reserved, worst_case)
                self._conn.executemany(
                    'INSERT INTO budget_reservations (id, budget, "key", period, amount_pusd,'
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(hold_id, b.name, k, p, amount, expires_at) for b, k, p in rows],
                )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"budgets cannot be checked, so the call is refused: ledger {self._path}: {exc}"
            ) from exc
        return Hold(hold_id, rows, amount)

    def settle(self, hold: Hold, cost: Decimal | None) -> None:
        """Replace the reservation by ``cost`` (None: unknown, so the worst case is kept)."""
        if hold.done:
            return
        hold.done = True
        spend = hold.amount if cost is None else to_pusd(cost)
        alerts: list[BudgetAlert] = []
        with self._lock, immediate(self._conn):
            self._conn.execute("DELETE FROM budget_reservations WHERE id = ?", (hold.id,))
            for budget, key, period in hold.rows:
                self._conn.execute(
                    'INSERT INTO budget_spend (budget, "key", period, spent_pusd)'
                    " VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET spent_pusd = spent_pusd + excluded.spent_pusd",
                    (budget.name, key, period, spend),
                )
                alerts.extend(self._new_alerts(budget, key, period))
        for alert in alerts:
            self._announce(alert)

    def release(self, hold: Hold) -> None:
        """Drop the reservation of a call that failed: nothing was spent."""
        if hold.done:
            return
        hold.done = True
        with self._lock, immediate(self._conn):
            self._conn.execute("DELETE FROM budget_reservations WHERE id = ?", (hold.id,))

    # -- reading -------------------------------------------------------------------------

    def status(self) -> list[BudgetStatus]:
        """Every budget's current period: one row per key that has spend or reservations
        (and one for a global budget in any case)."""
        now = self._clock()
        result = []
        with self._lock:
            for budget in (*self.budgets, *self._scoped.values()):
                period = self.period_of(budget, now)
                keys = {
                    k
                    for (k,) in self._conn.execute(
                        'SELECT "key" FROM budget_spend WHERE budget = ? AND period = ? UNION '
                        'SELECT "key" FROM budget_reservations WHERE budget = ? AND period = ?'
                        " AND expires_at > ?",
                        (budget.name, period, budget.name, period, now),
                    )
                }
                if budget.per is None:
                    keys.add("")
                for key in sorted(keys):
                    spent, reserved = self._totals(budget, key, period, now)
                    result.append(
                        BudgetStatus(
                            str(budget.name),
                            key or None,
                            period or "total",
                            budget.limit,
                            from_pusd(spent),
                            from_pusd(reserved),
                        )
                    )
        return result

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- inside a transaction ----------------------------------------------------------------

    def _totals(
        self, budget: Budget, key: str, period: str, now: float | None = None
    ) -> tuple[int, int]:
        row = self._conn.execute(
            'SELECT spent_pusd FROM budget_spend WHERE budget = ? AND "key" = ? AND period = ?',
            (budget.name, key, period),
        ).fetchone()
        live = "" if now is None else " AND expires_at > ?"
        args: tuple[Any, ...] = (budget.name, key, period) + (() if now is None else (now,))
        (reserved,) = self._conn.execute(
            "SELECT COALESCE(SUM(amount_pusd), 0) FROM budget_reservations"
            f' WHERE budget = ? AND "key" = ? AND period = ?{live}',
            args,
        ).fetchone()
        return (row[0] if row else 0), reserved

    def _new_alerts(self, budget: Budget, key: str, period: str) -> list[BudgetAlert]:
        spent, _ = self._totals(budget, key, period)
        limit = to_pusd(budget.limit)
        fired = []
        for fraction in self.alert_at:
            if spent < fraction * limit:
                break
            inserted = self._conn.execute(
                'INSERT OR IGNORE INTO budget_alerts (budget, "key", period, fraction, fired_at)'
                " VALUES (?, ?, ?, ?, ?)",
                (budget.name, key, period, str(fraction), self._clock()),
            ).rowcount
            if inserted:
                fired.append(
                    BudgetAlert(
                        str(budget.name),
                        key or None,
                        period or "total",
                        fraction,
                        from_pusd(spent),
                        budget.limit,
                    )
                )
        return fired

    def _announce(self, alert: BudgetAlert) -> None:
        who = f" for {alert.key}" if alert.key else ""
        logger.warning(
            "budget %s%s reached %s of $%s (spent $%s, period %s)",
            alert.budget,
            who,
            f"{alert.fraction:.0%}",
            alert.limit,
            alert.spent,
            alert.period,
        )
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception:  # an alert callback never fails the call
                logger.exception("costguard's on_alert callback failed")


def _refusal(
    budget: Budget, key: str, period: str, spent: int, reserved: int, worst_case: Decimal
) -> BudgetExceededError:
    who = f" for {budget.per} {key!r}" if budget.per else ""
    return BudgetExceededError(
        f"budget {budget.name}{who} would be exceeded: limit ${budget.limit}, spent "
        f"${from_pusd(spent)}, reserved by calls in flight ${from_pusd(reserved)}, this call's "
        f"worst case ${worst_case} (period {period or 'total'}); nothing was sent",
        budget=str(budget.name),
        key=key or None,
        limit=budget.limit,
        spent=from_pusd(spent),
        reserved=from_pusd(reserved),
        worst_case=worst_case,
    )
