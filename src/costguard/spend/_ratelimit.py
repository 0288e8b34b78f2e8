"""Per-user rate limits that hold across threads and processes: a sliding window in SQLite.

:class:`RateLimits` is the policy: how many requests each tier may make per window, and
optionally how many tokens per minute. :class:`RateStore` keeps the events in the ledger
database's ``rate_events`` table, one row per admitted request (``requests = 1``) and one per
token charge (``tokens = n``), so every process on the machine that uses the same ledger file
shares the same limits.

Admission is decided inside one ``BEGIN IMMEDIATE`` transaction: prune this key's events that
have left the window, count what is left, and insert the new event only if it fits. SQLite's
write lock serialises that read-decide-write across threads and processes, so concurrent
callers can never be admitted past the limit. Pruning is lazy: a key's old rows go when that
key is next checked, and at most once per window a sweep drops every expired row of this
window length.

Each stored key carries the window length (``user:u42/3600s``), so two limits with different
windows on one ledger (say 10 a minute *and* 500 a day) keep separate counts; two limits with
the same key field and window on one ledger (the same limit in several processes) share them.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .._aio import sleep as sleep_async
from .._errors import ConfigurationError, LedgerError, RateLimitedError, require_callable
from .._scope import Scope
from ..ledger._migrations import immediate, migrate

__all__ = ["Bucket", "RateLimits", "RateStore", "Refusal"]

#: Named window lengths, in seconds.
PERIODS: Mapping[str, float] = MappingProxyType(
    {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
)
#: Scope fields a limit may be kept per.
KEYS = ("user", "tenant", "feature")
#: The key shared by every call whose scope lacks the limit's key field.
ANONYMOUS = "anonymous"
#: The token allowance is per minute.
TOKEN_WINDOW_S = 60.0
#: How long a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 10.0
# A refused call always waits a little: float rounding must never give retry_after == 0.
_MIN_RETRY_S = 1e-6


def _seconds(window: float) -> str:
    """A window length as stored keys spell it: ``3600s``, ``0.5s``."""
    return f"{int(window)}s" if window.is_integer() else f"{window!r}s"


@dataclass(frozen=True, slots=True)
class Bucket:
    """What one call is counted against, resolved from its scope.

    ``key`` is what :class:`~costguard.RateLimitedError` reports (``"user:u42"``, or
    ``"anonymous"``); ``stored_key`` is the ``rate_events`` key, which adds the window.
    """

    key: str
    stored_key: str
    tier: str
    requests: int
    window_s: float
    tokens_per_minute: int | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the store refused a call, and how long until it would fit."""

    retry_after: float
    reason: str  # "requests" or "tokens"


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _window(per: object) -> float:
    if isinstance(per, str):
        if per in PERIODS:
            return PERIODS[per]
    elif (
        isinstance(per, int | float)
        and not isinstance(per, bool)
        and math.isfinite(per)
        and per > 0
    ):
        return float(per)
    raise ConfigurationError(
        f"per={per!r} is not a window: use one of {', '.join(PERIODS)} "
        "or a positive number of seconds"
    )


class RateLimits:
    """Requests per sliding window for each tier, and optionally tokens per minute.

    >>> RateLimits(tiers={"free": 10, "pro": 100}, per="hour", tokens_per_minute=20_000)

    :param tiers: tier name -> requests allowed per window (positive ints). A call's tier is
        its scope's ``tier`` (``guard.scope(tier="pro")``).
    :param per: the window: ``"second"``, ``"minute"``, ``"hour"``, ``"day"`` or a positive
        number of seconds. The window slides: a request counts until ``per`` after it was made.
    :param tokens_per_minute: ``None`` (no token limit), one int for every tier, or a mapping
        tier -> int (tiers left out have no token limit). Tokens (prompt + output) are charged
        when a call ends (a stream: when it finishes); a call is refused while the last
        minute's tokens are at or over the allowance, so one call may go past it.
    :param key: the scope field each limit is per: ``"user"`` (default), ``"tenant"`` or
        ``"feature"``. Calls whose scope lacks it all share one key, ``"anonymous"``.
    :param default_tier: the tier of calls whose scope sets none; without it such calls raise
        :class:`~costguard.ConfigurationError`.
    :param tier_tag: read a call's tier from this scope tag instead of the scope's ``tier``
        (``RateLimits(..., tier_tag="plan")`` with ``guard.scope(tags={"plan": "pro"})``), so
        that ``tier`` stays free for a :class:`~costguard.Router`'s draft/final tiers.
    :param wait: instead of raising :class:`~costguard.RateLimitedError` at once, wait until
        the call fits, for at most ``max_wait_s`` seconds in all.
    :param clock: unix seconds (shared by every process using the ledger file).
    :param sleep: how sync callers wait in ``wait`` mode.
    :param asleep: how async callers wait in ``wait`` mode.
    """

    def __init__(
        self,
        tiers: Mapping[str, int],
        per: str | float = "hour",
        tokens_per_minute: int | Mapping[str, int] | None = None,
        *,
        key: str = "user",
        default_tier: str | None = None,
        tier_tag: str | None = None,
        wait: bool = False,
        max_wait_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        asleep: Callable[[float], Awaitable[object]] = sleep_async,
    ) -> None:
        if not isinstance(tiers, Mapping) or not tiers:
            raise ConfigurationError("tiers must be a non-empty mapping of tier name -> requests")
        for tier, limit in tiers.items():
            if not isinstance(tier, str) or not tier:
                raise ConfigurationError(f"tiers: tier names must be non-empty str, got {tier!r}")
            if not _positive_int(limit):
                raise ConfigurationError(
                    f"tiers[{tier!r}] must be a positive int (requests per window), got {limit!r}"
                )
        self.tiers: Mapping[str, int] = MappingProxyType(dict(tiers))
        self.per = per
        self.window_s = _window(per)
        self.tokens_per_minute: Mapping[str, int] = MappingProxyType(
            self._token_limits(tokens_per_minute)
        )
        if key not in KEYS:
            raise ConfigurationError(f"key={key!r} is not one of {', '.join(KEYS)}")
        self.key = key
        if default_tier is not None and default_tier not in self.tiers:
            raise ConfigurationError(
                f"default_tier={default_tier!r} is not a tier; known tiers: {self._known()}"
            )
        self.default_tier = default_tier
        if tier_tag is not None and (not isinstance(tier_tag, str) or not tier_tag):
            raise ConfigurationError(
                f"tier_tag must be a tag name (a non-empty str), got {tier_tag!r}"
            )
        self.tier_tag = tier_tag
        if not isinstance(wait, bool):
            raise ConfigurationError(f"wait must be True or False, got {wait!r}")
        self.wait = wait
        if (
            not isinstance(max_wait_s, int | float)
            or isinstance(max_wait_s, bool)
            or not math.isfinite(max_wait_s)
            or max_wait_s < 0
        ):
            raise ConfigurationError(
                f"max_wait_s must be a finite number of seconds >= 0, got {max_wait_s!r}"
            )
        self.max_wait_s = float(max_wait_s)
        self.clock = clock
        require_callable("RateLimits(sleep=...)", sleep)
        require_callable("RateLimits(asleep=...)", asleep)
        self.sleep = sleep
        self.asleep = asleep

    def _token_limits(self, value: int | Mapping[str, int] | None) -> dict[str, int]:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            for tier, limit in value.items():
                if tier not in self.tiers:
                    raise ConfigurationError(
                        f"tokens_per_minute names unknown tier {tier!r}; "
                        f"known tiers: {self._known()}"
                    )
                if not _positive_int(limit):
                    raise ConfigurationError(
                        f"tokens_per_minute[{tier!r}] must be a positive int, got {limit!r}"
                    )
            return dict(value)
        if _positive_int(value):
            return dict.fromkeys(self.tiers, value)
        raise ConfigurationError(
            "tokens_per_minute must be None, a positive int or a mapping tier -> positive int, "
            f"got {value!r}"
        )

    def _known(self) -> str:
        return ", ".join(repr(t) for t in self.tiers)

    def __repr__(self) -> str:
        tokens = dict(self.tokens_per_minute) or None
        return (
            f"RateLimits(tiers={dict(self.tiers)!r}, per={self.per!r}, "
            f"tokens_per_minute={tokens!r}, key={self.key!r})"
        )

    def bucket(self, scope: Scope) -> Bucket:
        """The bucket a call with ``scope`` is counted in; ``ConfigurationError`` for a tier
        this limit does not know, or no tier and no ``default_tier``."""
        given = scope.tier if self.tier_tag is None else scope.tags.get(self.tier_tag)
        tier = given if given is not None else self.default_tier
        if tier is None:
            where = "tier=..." if self.tier_tag is None else f"tags={{{self.tier_tag!r}: ...}}"
            raise ConfigurationError(
                f"rate limits need a tier: set one with guard.scope({where}) or give "
                f"RateLimits a default_tier; known tiers: {self._known()}"
            )
        if tier not in self.tiers:
            raise ConfigurationError(
                f"unknown rate-limit tier {tier!r}; known tiers: {self._known()}"
            )
        value = getattr(scope, self.key)
        key = ANONYMOUS if value is None else f"{self.key}:{value}"
        owner = key if value is not None else f"{ANONYMOUS}:{self.key}"  # never a "field:" key
        stored = f"{owner}/{_seconds(self.window_s)}"
        return Bucket(
            key=key,
            stored_key=stored,
            tier=tier,
            requests=self.tiers[tier],
            window_s=self.window_s,
            tokens_per_minute=self.tokens_per_minute.get(tier),
        )

    def decide(self, bucket: Bucket, refusal: Refusal | None, waited: float) -> float | None:
        """The pure decision after one admission attempt: ``None`` (go on), seconds to sleep
        before trying again, or raise :class:`~costguard.RateLimitedError`."""
        if refusal is None:
            return None
        delay = refusal.retry_after
        if self.wait and waited + delay <= self.max_wait_s:
            return delay
        if refusal.reason == "tokens":
            what = f"{bucket.tokens_per_minute} tokens per minute"
        else:
            what = f"{bucket.requests} requests per {_describe(self.per)}"
        gave_up = f" after waiting {waited:g} s" if self.wait else ""
        raise RateLimitedError(
            f"rate limit for {bucket.key} reached (tier {bucket.tier!r}: {what}){gave_up}; "
            f"retry after {delay:.3f} s",
            retry_after=delay,
            key=bucket.key,
        )


def _describe(per: str | float) -> str:
    return per if isinstance(per, str) else f"{per:g} s"


def _close_if_owner(conn: sqlite3.Connection, pid: int) -> None:
    if os.getpid() == pid:
        conn.close()


class RateStore:
    """The ``rate_events`` table of a ledger database, through this store's own connection.

    The connection is opened on first use (so a layer may be built before its guard creates
    the ledger), migrates the file if needed, and is reopened in a forked child. One
    connection per store, used by one thread at a time.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._swept: dict[float, float] = {}  # window -> when this store last swept it

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        in_memory = str(self.path) == ":memory:"
        if not in_memory:
            # Owner-only, as the Ledger creates it, should this store be first.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not in_memory:
                conn.execute("PRAGMA journal_mode = WAL")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        # Close it when the store is dropped (never from a forked child: that is the parent's).
        weakref.finalize(self, _close_if_owner, conn, self._pid)
        return conn

    def try_admit(self, bucket: Bucket, now: float) -> Refusal | None:
        """Count one request for ``bucket`` at ``now`` if it fits; else say why and for how long."""
        try:
            with self._lock:
                conn = self._connection()
                with immediate(conn):
                    refusal = self._check(conn, bucket, now)
                    if refusal is None:
                        conn.execute(
                            'INSERT INTO rate_events ("key", at, requests, tokens) '
                            "VALUES (?, ?, 1, 0)",
                            (bucket.stored_key, now),
                        )
                    return refusal
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot check rate limits in {self.path}: {exc}") from exc

    def _check(self, conn: sqlite3.Connection, bucket: Bucket, now: float) -> Refusal | None:
        key, window = bucket.stored_key, bucket.window_s
        # Keep a minute of token charges even for short windows (another limit may read them).
        horizon = max(window, TOKEN_WINDOW_S)
        conn.execute('DELETE FROM rate_events WHERE "key" = ? AND at <= ?', (key, now - horizon))
        self._sweep(conn, window, now)
        waits: list[Refusal] = []
        (count,) = conn.execute(
            'SELECT count(*) FROM rate_events WHERE "key" = ? AND requests > 0 AND at > ?',
            (key, now - window),
        ).fetchone()
        if count >= bucket.requests:
            # The call fits once all but requests - 1 of the counted events have left.
            (oldest,) = conn.execute(
                'SELECT at FROM rate_events WHERE "key" = ? AND requests > 0 AND at > ? '
                "ORDER BY at LIMIT 1 OFFSET ?",
                (key, now - window, count - bucket.requests),
            ).fetchone()
            waits.append(Refusal(max(oldest + window - now, _MIN_RETRY_S), "requests"))
        if bucket.tokens_per_minute is not None:
            rows = conn.execute(
                'SELECT at, tokens FROM rate_events WHERE "key" = ? AND tokens > 0 AND at > ? '
                "ORDER BY at",
                (key, now - TOKEN_WINDOW_S),
            ).fetchall()
            used = sum(tokens for _, tokens in rows)
            if used >= bucket.tokens_per_minute:
                # Charges leave the minute oldest first; the call fits once enough have gone.
                leaves = TOKEN_WINDOW_S
                for at, tokens in rows:
                    used -= tokens
                    if used < bucket.tokens_per_minute:
                        leaves = at + TOKEN_WINDOW_S - now
                        break
                waits.append(Refusal(max(leaves, _MIN_RETRY_S), "tokens"))
        return max(waits, key=lambda r: r.retry_after, default=None)

    def _sweep(self, conn: sqlite3.Connection, window: float, now: float) -> None:
        """Once per window, drop every expired row of keys with this window length (keys of
        users who never came back)."""
        if now - self._swept.get(window, -math.inf) < window:
            return
        self._swept[window] = now
        # Keys end in "/<window>s"; a scope value cannot change the suffix.
        conn.execute(
            'DELETE FROM rate_events WHERE "key" LIKE ? AND at <= ?',
            (f"%/{_seconds(window)}", now - max(window, TOKEN_WINDOW_S)),
        )

    def charge(self, bucket: Bucket, tokens: int, at: float) -> None:
        """Record ``tokens`` used by ``bucket`` at ``at`` (unix seconds)."""
        if tokens <= 0:
            return
        try:
            with self._lock:
                self._connection().execute(
                    'INSERT INTO rate_events ("key", at, requests, tokens) VALUES (?, ?, 0, ?)',
                    (bucket.stored_key, at, tokens),
                )
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot record tokens in {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (it reopens if the store is used again)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
