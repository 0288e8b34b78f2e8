"""The spend ledger: an append-only SQLite file of ``CallRecord`` rows.

Concurrency. One ``Ledger`` is shared by every thread of a process: it holds one connection
behind a lock (measured no slower for a single write than a connection per thread, and writers
would serialise on SQLite's write lock anyway). Several processes may write the same file: it
runs in WAL mode with a busy timeout, so readers never block writers and writers queue.

Durability. ``write`` appends the row to this process's journal file (one ``os.write``) and
returns; a background thread commits journalled rows to SQLite in batches (see ``_journal``).
A written row survives the process being killed at any moment: the next ``Ledger`` opened on
the file commits what a dead writer left. Reads (``records``, ``summary``) first wait for this
ledger's own pending rows; another process sees a row once it is committed, normally within
milliseconds. With ``synchronous=NORMAL`` only a power loss or OS crash can lose the last
few commits. A ``":memory:"`` ledger writes synchronously.

Money. Costs are integer picodollars; ``summary`` sums them in SQL, which is exact, and if
SQLite reports a 64-bit overflow (totals beyond about 9.2 million USD) it redoes the
aggregation in Python on unbounded integers.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .._errors import LedgerError
from .._usage import Usage
from ._journal import JOURNALS_SUPPORTED, Journal, recover_journals
from ._migrations import immediate, migrate
from ._record import CallRecord, from_pusd, to_pusd

__all__ = ["Ledger", "SummaryRow", "default_ledger_path"]

_BUSY_TIMEOUT_S = 10.0

_COLUMNS = (
    "id",
    "ts",
    "provider",
    "operation",
    "requested_model",
    "served_model",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "raw_usage",
    "cost_pusd",
    "saved_pusd",
    "rates",
    "price_version",
    "service_tier",
    "cache",
    "latency_us",
    "attempts",
    "status",
    "error_type",
    "stream",
    "feature",
    "user",
    "tenant",
    "tags",
    "api_key_hash",
    "api_key_last4",
    "requested_max_tokens",
    "sent_max_tokens",
    "route",
    "linked_to",
    "batch_id",
)
_SELECT_COLUMNS = ", ".join(f'"{c}"' for c in _COLUMNS)
# Rows reach SQLite as one JSON array of row arrays (the journal's own lines): SQLite unpacks
# it in C with the GIL released, so the writer thread barely competes with guarded calls.
_INSERT_JSON = (
    f"INSERT OR IGNORE INTO calls ({_SELECT_COLUMNS}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_COLUMNS)))
    + " FROM json_each(?)"
)
# SQLite's JSON functions cut text at a NUL character: such rows are bound one by one.
_INSERT_VALUES = (
    f"INSERT OR IGNORE INTO calls ({_SELECT_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_INT64 = 2**63

_FILTERS = frozenset(
    {
        "cache",
        "feature",
        "operation",
        "provider",
        "requested_model",
        "served_model",
        "status",
        "tenant",
        "user",
    }
)
_GROUP_KEYS = {
    "cache": "cache",
    "day": "substr(ts, 1, 10)",
    "feature": "feature",
    "model": "coalesce(served_model, requested_model)",
    "operation": "operation",
    "provider": "provider",
    "requested_model": "requested_model",
    "status": "status",
    "tenant": "tenant",
    "user": '"user"',
}
# The per-group measures, in the order SummaryRow takes them after the key.
_MEASURES = (
    "count(*)",
    "sum(status = 'error')",
    "sum(cost_pusd IS NULL)",
    "sum(cost_pusd)",
    "sum(saved_pusd)",
    "sum(input_tokens)",
    "sum(output_tokens)",
    "sum(cache_read_tokens)",
    "sum(cache_write_5m_tokens + cache_write_1h_tokens)",
)
# The same measures for a single row, to aggregate in Python when SQLite overflows.
_ROW_MEASURES = (
    "1",
    "status = 'error'",
    "cost_pusd IS NULL",
    "cost_pusd",
    "saved_pusd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens + cache_write_1h_tokens",
)

TimeBound = datetime | date | None


def default_ledger_path() -> Path:
    """``$COSTGUARD_HOME/ledger.db`` if set, else ``ledger.db`` in the user data directory."""
    home = os.environ.get("COSTGUARD_HOME")
    if home:
        return Path(home).expanduser() / "ledger.db"
    import platformdirs  # deferred: only needed when no path was given

    return platformdirs.user_data_path("costguard") / "ledger.db"


@dataclass(frozen=True)
class SummaryRow:
    """Totals for one group of ledger rows. Money is exact; ``cost_usd`` excludes unpriced calls."""

    key: Mapping[str, str | None]
    calls: int
    errors: int
    unpriced: int
    cost_usd: Decimal
    saved_usd: Decimal
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


class Ledger:
    """A SQLite spend ledger at ``path`` (default: ``default_ledger_path()``).

    Construction creates missing parent directories (owner-only), opens the file, applies
    migrations and performs a write, so a ledger that cannot be written fails here with
    ``LedgerError`` rather than on the first call. ``":memory:"`` gives a private in-memory
    ledger. ``clock`` (default: ``datetime.now(UTC)``) stamps the ledger's metadata.
    """

    path: Path

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = default_ledger_path() if path is None else Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self._closed = False
        self._conn = self._connect()
        try:
            migrate(self._conn)
            self._secret = self._open_meta()
            if not self._in_memory:
                recover_journals(self.path, self._commit)
            _open_ledgers.add(self)
        except sqlite3.Error as exc:
            self._conn.close()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    @property
    def _in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    def _connect(self) -> sqlite3.Connection:
        if not self._in_memory:
            try:
                _make_private_dirs(self.path.parent)
                # Create the file ourselves: owner-only, and an OSError names the real reason,
                # where SQLite would only say "unable to open database file".
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError as exc:
                raise LedgerError(f"cannot open ledger {self.path}: {exc.strerror or exc}") from exc
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,  # the busy timeout: wait for other writers
                isolation_level=None,  # autocommit: each write is its own transaction
                check_same_thread=False,  # shared by threads, serialised by self._lock
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        return conn

    def _open_meta(self) -> bytes:
        """Create the fingerprint secret on first open, stamp the open, return the secret."""
        now = _iso(self._clock())
        with immediate(self._conn):
            self._conn.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [("key_fingerprint_secret", secrets.token_hex(32)), ("created_at", now)],
            )
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_opened_at', ?)", (now,)
            )
            (secret,) = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'key_fingerprint_secret'"
            ).fetchone()
        return bytes.fromhex(secret)

    def write(self, record: CallRecord) -> None:
        """Append ``record``: durable when this returns (see the module docstring).

        ``LedgerError`` if the record cannot be stored (money not a whole number of
        picodollars, a value beyond 64 bits, a closed ledger, an unwritable journal).
        """
        try:
            line = _encode(_row(record)).encode()
            if self._in_memory or not JOURNALS_SUPPORTED:
                self._commit([line])
            else:
                self._writer().append(line)
        except (ValueError, OSError, sqlite3.Error, OverflowError) as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from exc

    def flush(self) -> None:
        """Wait until every row this ledger wrote is committed to SQLite."""
        if self._journal is not None and not self._journal.flush():
            raise LedgerError(f"ledger {self.path}: rows are still waiting to be committed")

    def _writer(self) -> Journal:
        if self._journal is None:
            with self._lock:
                if self._closed:
                    raise ValueError("the ledger is closed")
                if self._journal is None:
                    self._journal = Journal(self.path, self._commit)
                    atexit.register(_close_at_exit, weakref.ref(self))
        return self._journal

    def _commit(self, lines: Sequence[bytes]) -> None:
        """Insert rows given as JSON arrays (ASCII), in one transaction."""
        payload = (b"[" + b",".join(lines) + b"]").decode("ascii")
        with self._lock:
            if self._closed:
                raise ValueError("the ledger is closed")
            with immediate(self._conn):
                if "\\u0000" in payload:
                    self._conn.executemany(_INSERT_VALUES, (_padded(x) for x in lines))
                else:
                    self._conn.execute(_INSERT_JSON, (payload,))

    def records(
        self,
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        limit: int | None = None,
        **where: str | None,
    ) -> list[CallRecord]:
        """Records with ``since <= ts < until``, oldest first.

        A ``date`` bound means midnight UTC of that day. ``where`` filters by exact value on
        provider, operation, feature, user, tenant, served_model, requested_model, status or
        cache (``None`` matches NULL). ``limit`` keeps the newest ``limit`` matches.
        """
        clause, params = _where(since, until, where)
        sql = f"SELECT {_SELECT_COLUMNS} FROM calls{clause} ORDER BY ts, id"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must not be negative, got {limit}")
            sql = (
                f"SELECT * FROM (SELECT {_SELECT_COLUMNS} FROM calls{clause}"
                " ORDER BY ts DESC, id DESC LIMIT ?) ORDER BY ts, id"
            )
            params.append(limit)
        return [_record(row) for row in self._query(sql, params)]

    def summary(
        self,
        group_by: str | Sequence[str] = "model",
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        **where: str | None,
    ) -> list[SummaryRow]:
        """Totals per group, most expensive first; filters as in ``records``.

        Group keys: model (the served model, else the requested one), requested_model,
        provider, operation, feature, user, tenant, status, cache, day (UTC ``YYYY-MM-DD``).
        An empty ``group_by`` gives one overall row (none if there are no matching records).
        """
        keys = [group_by] if isinstance(group_by, str) else list(dict.fromkeys(group_by))
        unknown = [k for k in keys if k not in _GROUP_KEYS]
        if unknown:
            raise ValueError(
                f"unknown summary key {unknown[0]!r}; allowed: {', '.join(sorted(_GROUP_KEYS))}"
            )
        clause, params = _where(since, until, where)
        exprs = [_GROUP_KEYS[k] for k in keys]
        grouping = f" GROUP BY {', '.join(exprs)}" if exprs else ""
        sql = f"SELECT {', '.join([*exprs, *_MEASURES])} FROM calls{clause}{grouping}"
        try:
            rows = self._query(sql, params)
        except LedgerError as exc:
            if not _is_overflow(exc.__cause__):
                raise
            sql = f"SELECT {', '.join([*exprs, *_ROW_MEASURES])} FROM calls{clause}"
            rows = self._query(sql, params)
        totals: dict[tuple[str | None, ...], list[int]] = {}
        for row in rows:
            if row[len(keys)] == 0:  # no records at all, ungrouped
                continue
            acc = totals.setdefault(tuple(row[: len(keys)]), [0] * len(_MEASURES))
            for i, value in enumerate(row[len(keys) :]):
                acc[i] += value or 0
        result = [
            SummaryRow(
                dict(zip(keys, key, strict=True)),
                calls,
                errors,
                unpriced,
                from_pusd(cost),
                from_pusd(saved),
                input_tokens,
                output_tokens,
                cache_read,
                cache_write,
            )
            for key, (
                calls,
                errors,
                unpriced,
                cost,
                saved,
                input_tokens,
                output_tokens,
                cache_read,
                cache_write,
            ) in totals.items()
        ]
        result.sort(key=lambda r: tuple((v is not None, v or "") for v in r.key.values()))
        result.sort(key=lambda r: r.cost_usd, reverse=True)
        return result

    def key_fingerprint(self, api_key: str) -> tuple[str, str]:
        """``(hash, last4)`` identifying ``api_key`` without storing it.

        The hash is the first 16 hex digits of HMAC-SHA256 keyed with this ledger's random
        secret, so it cannot be checked against keys without the ledger file. ``last4`` is the
        key's last four characters, or ``""`` for keys shorter than 12, which it would expose.
        """
        digest = hmac.new(self._secret, api_key.encode(), hashlib.sha256).hexdigest()[:16]
        return digest, api_key[-4:] if len(api_key) >= 12 else ""

    def close(self) -> None:
        """Commit what is pending and close; safe to call twice."""
        if self._journal is not None:
            self._journal.close()
        with self._lock:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def _query(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        self.flush()
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read ledger {self.path}: {exc}") from exc


def _row(record: CallRecord) -> tuple[Any, ...]:
    usage = record.usage
    for count in (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens):
        if count >= _INT64:
            raise OverflowError(f"token count {count} is too large for the ledger (64-bit)")
    return (
        record.id,
        _iso(record.ts),
        record.provider,
        record.operation,
        record.requested_model,
        record.served_model,
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        _json(record.raw_usage),
        None if record.cost_usd is None else to_pusd(record.cost_usd),
        to_pusd(record.saved_usd),
        _json(record.rates),
        record.price_version,
        record.service_tier,
        record.cache,
        round(record.latency_ms * 1000),
        record.attempts,
        record.status,
        record.error_type,
        int(record.stream),
        record.feature,
        record.user,
        record.tenant,
        _json(record.tags),
        record.api_key_hash,
        record.api_key_last4,
        record.requested_max_tokens,
        record.sent_max_tokens,
        record.route,
        record.linked_to,
        record.batch_id,
    )


_open_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()
_inherited: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads, and SQLite connections must not cross a
    # fork. Each ledger gets a fresh lock and connection; its next write starts a journal and
    # writer of its own. Inherited connections are kept, never closed: closing one could
    # checkpoint or remove the WAL under the parent.
    for ledger in list(_open_ledgers):
        ledger._lock = threading.Lock()
        ledger._journal = None
        if not ledger._closed and not ledger._in_memory:
            _inherited.append(ledger._conn)
            ledger._conn = ledger._connect()


if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit(ref: weakref.ref[Ledger]) -> None:
    ledger = ref()
    if ledger is not None:
        ledger.close()


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each readable by the owner only."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            if not d.is_dir():
                raise


def _padded(line: bytes) -> list[Any]:
    """A journalled row as values for every column: rows journalled by an older costguard
    lack the columns added since (they read as NULL, as in the JSON insert)."""
    values: list[Any] = json.loads(line)
    return values + [None] * (len(_COLUMNS) - len(values))


def _iso(ts: datetime) -> str:
    """Fixed-width UTC ISO 8601, so text order is time order."""
    if ts.tzinfo is not UTC:
        if ts.utcoffset() is None:
            raise ValueError(f"datetime must be timezone-aware, got {ts!r}")
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="microseconds")


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call


def _json(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    if not value:
        return "{}"
    return _encode(value if isinstance(value, dict) else dict(value))


def _is_overflow(exc: BaseException | None) -> bool:
    """Whether SQLite's ``sum()`` gave up on a total beyond 64 bits."""
    return isinstance(exc, sqlite3.OperationalError) and "integer overflow" in str(exc)


def _where(
    since: TimeBound, until: TimeBound, where: Mapping[str, str | None]
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            if not isinstance(bound, datetime):
                bound = datetime.combine(bound, time(), UTC)
            clauses.append(f"ts {op} ?")
            params.append(_iso(bound))
    for column, value in where.items():
        if column not in _FILTERS:
            raise ValueError(
                f"cannot filter records by {column!r}; allowed: {', '.join(sorted(_FILTERS))}"
            )
        clauses.append(f'"{column}" IS NULL' if value is None else f'"{column}" = ?')
        if value is not None:
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _record(row: Iterable[Any]) -> CallRecord:
    (
        id_,
        ts,
        provider,
        operation,
        requested_model,
        served_model,
        input_tokens,
        cache_read_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        output_tokens,
        reasoning_tokens,
        raw_usage,
        cost_pusd,
        saved_pusd,
        rates,
        price_version,
        service_tier,
        cache,
        latency_us,
        attempts,
        status,
        error_type,
        stream,
        feature,
        user,
        tenant,
        tags,
        api_key_hash,
        api_key_last4,
        requested_max_tokens,
        sent_max_tokens,
        route,
        linked_to,
        batch_id,
    ) = row
    return CallRecord(
        id=id_,
        ts=datetime.fromisoformat(ts),
        provider=provider,
        operation=operation,
        requested_model=requested_model,
        served_model=served_model,
        usage=Usage(
            input_tokens,
            cache_read_tokens,
            cache_write_5m_tokens,
            cache_write_1h_tokens,
            output_tokens,
            reasoning_tokens,
        ),
        raw_usage=None if raw_usage is None else json.loads(raw_usage),
        cost_usd=None if cost_pusd is None else from_pusd(cost_pusd),
        saved_usd=from_pusd(saved_pusd),
        rates=None if rates is None else json.loads(rates),
        price_version=price_version,
        service_tier=service_tier,
        cache=cache,
        latency_ms=latency_us / 1000,
        attempts=attempts,
        status=status,
        error_type=error_type,
        stream=bool(stream),
        feature=feature,
        user=user,
        tenant=tenant,
        tags=json.loads(tags),
        api_key_hash=api_key_hash,
        api_key_last4=api_key_last4,
        requested_max_tokens=requested_max_tokens,
        sent_max_tokens=sent_max_tokens,
        route=route,
        linked_to=linked_to,
        batch_id=batch_id,
    )
