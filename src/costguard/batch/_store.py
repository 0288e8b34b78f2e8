"""The batch tables in the ledger database: ``batch_items`` and ``batch_jobs`` (migration m005).

Every state change is its own ``BEGIN IMMEDIATE`` transaction, committed before the network
step that follows it and after the one it records, so a process may die at any moment and the
next one (any process on the same ledger) carries on:

    queued ──claim──> submitting ──provider accepted──> submitted ──results──> finished | failed
       ^                  │ lease lapsed, batch unknown
       └──────────────────┘

One store per guard, on its own connection; an in-memory ledger keeps the tables in this
store's own private database.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import LedgerError
from ..ledger._migrations import immediate, migrate

if TYPE_CHECKING:
    from .._client import CostGuardClient

__all__ = ["BatchStore", "Item", "Job", "dumps"]

_STORES: weakref.WeakKeyDictionary[CostGuardClient, BatchStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: object) -> str:
    return _encode(value)


@dataclass(frozen=True, slots=True)
class Item:
    """A row of ``batch_items``."""

    id: str
    run_id: str | None
    position: int
    state: str
    priority: int
    provider: str
    operation: str
    model: str | None
    base_url: str
    api_key_hash: str | None
    api_key_last4: str | None
    request: str | None
    meta: str
    scope: str
    cache_key: str | None
    cache_tag: str | None
    cache_ttl: float | None
    cache_store: int
    attempt: str | None
    lease_until: float | None
    hold: str | None
    batch_id: str | None
    row_id: str | None
    cache: str
    result: str | None
    error: str | None
    queued_at: float
    submitted_at: float | None
    ended_at: float | None

    @property
    def ended(self) -> bool:
        return self.state in ("finished", "failed")


@dataclass(frozen=True, slots=True)
class Job:
    """A row of ``batch_jobs``: one provider batch."""

    id: str
    provider: str
    endpoint: str
    attempt: str
    base_url: str
    api_key_hash: str | None
    status: str
    items: int
    input_file_id: str | None
    created_at: float
    collected_at: float | None


_CHUNK = 500  # ids per statement
_ITEM_COLUMNS = ", ".join(f'"{name}"' for name in Item.__slots__)
_JOB_COLUMNS = ", ".join(f'"{name}"' for name in Job.__slots__)


class BatchStore:
    """The batch tables of one ledger database (thread-safe: one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA synchronous = NORMAL")
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the batch tables of ledger {path}: {exc}") from exc

    @classmethod
    def for_guard(cls, guard: CostGuardClient) -> BatchStore:
        with _STORES_LOCK:
            store = _STORES.get(guard)
            if store is None:
                store = _STORES[guard] = cls(guard.ledger.path)
                weakref.finalize(guard, store.close)
            return store

    @classmethod
    def close_for(cls, guard: CostGuardClient) -> None:
        """Close ``guard``'s store, if it has one (``guard.close()`` calls this)."""
        with _STORES_LOCK:
            store = _STORES.pop(guard, None)
        if store is not None:
            store.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            try:
                with immediate(self._conn):
                    yield self._conn
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write the batch tables of {self.path}: {exc}") from exc

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the batch tables of {self.path}: {exc}") from exc

    def items(self, where: str, args: Sequence[object] = (), *, order: str = "id") -> list[Item]:
        sql = f"SELECT {_ITEM_COLUMNS} FROM batch_items WHERE {where} ORDER BY {order}"
        return [Item(*row) for row in self._rows(sql, args)]

    def by_ids(self, ids: Sequence[str]) -> list[Item]:
        """The items with these ids, in the order given (read in chunks: SQLite caps the
        number of parameters of one statement)."""
        found: dict[str, Item] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update((i.id, i) for i in self.items(f"id IN ({marks})", chunk))
        return [found[i] for i in ids if i in found]

    def jobs(self, where: str, args: Sequence[object] = ()) -> list[Job]:
        sql = f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE {where} ORDER BY created_at, id"
        return [Job(*row) for row in self._rows(sql, args)]

    def counts(self) -> list[tuple[str, str, int]]:
        """(state, provider, count) over every item."""
        sql = "SELECT state, provider, count(*) FROM batch_items GROUP BY state, provider"
        return [(str(s), str(p), int(n)) for s, p, n in self._rows(sql)]

    # -- writes --------------------------------------------------------------------------

    @staticmethod
    def insert(conn: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            names = ", ".join(f'"{name}"' for name in row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO batch_items ({names}) VALUES ({marks})", list(row.values()))

    @staticmethod
    def update(
        conn: sqlite3.Connection,
        item_id: str,
        changes: Mapping[str, Any],
        *,
        state: str,
        attempt: str | None = None,
    ) -> bool:
        """Change an item still in ``state`` (and, given ``attempt``, still claimed by that
        attempt); False if another process moved it on, or claimed it again, first."""
        sets = ", ".join(f'"{name}" = ?' for name in changes)
        where = "id = ? AND state = ?" + ("" if attempt is None else " AND attempt = ?")
        cursor = conn.execute(
            f"UPDATE batch_items SET {sets} WHERE {where}",
            [*changes.values(), item_id, state, *(() if attempt is None else (attempt,))],
        )
        return cursor.rowcount == 1
