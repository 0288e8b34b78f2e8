"""Housekeeping on a ledger file: status, streamed reads, export, backup and prune.

Every function takes the ledger's path and starts with :func:`settle`, which opens a
:class:`~costguard.ledger.Ledger` on it and closes it again: that applies missing migrations
and commits the rows that writers which died left in their journals. Rows that live writers
have journalled but not yet committed (normally for a few milliseconds) are theirs to commit;
:func:`status` counts them as ``pending_rows``.

The work itself goes through a connection of its own, so reads stream (a cursor, never the
whole ledger in memory) and deletes run in short transactions that let guarded processes keep
writing. Only the ``calls`` table is ever changed here: budget, reservation, alert and
rate-limit tables keep their own totals and are left exactly as they are.

SQLite and file-system problems raise :class:`~costguard.LedgerError` (naming the ledger),
except where a caller-chosen destination is the problem: then the ``OSError`` is raised as is.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

from .._errors import LedgerError
from ._journal import journal_dir
from ._migrations import MIGRATIONS, immediate
from ._record import from_pusd

__all__ = [
    "FORMATS",
    "LedgerStatus",
    "ModelCalls",
    "backup",
    "columns",
    "count_calls",
    "iter_rows",
    "model_calls",
    "pending_rows",
    "prune",
    "recent_rows",
    "settle",
    "status",
    "vacuum",
    "write_rows",
]

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")

_BUSY_TIMEOUT_S = 10.0
_SQLITE_MAX_INT = 2**63 - 1
_PRUNE_BATCH = 10_000  # rows per delete transaction: short write locks for live writers
_JSON_COLUMNS = frozenset({"raw_usage", "rates", "tags"})
_MONEY_COLUMNS = {"cost_pusd": "cost_usd", "saved_pusd": "saved_usd"}  # stored -> exported
_MONEY_USD = frozenset(_MONEY_COLUMNS.values())


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    """What :func:`status` reports about a ledger file. Money is exact USD."""

    path: Path
    calls: int
    errors: int
    unpriced: int
    first_call: datetime | None
    last_call: datetime | None
    cost_usd: Decimal
    saved_usd: Decimal
    size_bytes: int  # the database file plus its write-ahead log
    schema_version: int
    schema_latest: int  # the version this costguard writes
    pending_rows: int
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ModelCalls:
    """How many calls name ``model``: in all, as the requested and as the served model."""

    model: str
    calls: int
    requested: int
    served: int


def settle(path: Path) -> None:
    """Migrate ``path`` and commit what dead writers left in their journals."""
    from ._store import Ledger

    with Ledger(path):
        pass


@contextmanager
def _connect(path: Path, doing: str = "read") -> Iterator[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot {doing} ledger {path}: {exc}") from exc
    finally:
        conn.close()


def _iso(moment: datetime) -> str:
    """The ledger's own timestamp text for ``moment`` (naive means UTC), so text order works."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _where(since: datetime | None, until: datetime | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(_iso(since))
    if until is not None:
        clauses.append("ts < ?")
        params.append(_iso(until))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# -- status ---------------------------------------------------------------------------------


def pending_rows(path: Path) -> int:
    """Rows in live writers' journals that are not yet committed to SQLite."""
    directory = journal_dir(path)
    if not directory.is_dir():
        return 0
    ids: set[str] = set()
    for journal in directory.glob("*.jsonl"):
        try:
            data = journal.read_bytes()
        except FileNotFoundError:  # its writer closed meanwhile
            continue
        except OSError as exc:
            raise LedgerError(f"cannot read ledger journal {journal}: {exc.strerror}") from exc
        for line in data.split(b"\n")[:-1]:  # the last piece is empty, or a torn write
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, list) and row and isinstance(row[0], str):
                ids.add(row[0])
    if not ids:
        return 0
    committed = 0
    with _connect(path) as conn:
        listed = sorted(ids)
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            (found,) = conn.execute(
                f"SELECT count(*) FROM calls WHERE id IN ({marks})", chunk
            ).fetchone()
            committed += found
    return len(ids) - committed


def _money_totals(conn: sqlite3.Connection) -> tuple[int, int]:
    try:
        cost, saved = conn.execute("SELECT sum(cost_pusd), sum(saved_pusd) FROM calls").fetchone()
    except sqlite3.OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        cost = saved = 0  # beyond 64 bits (millions of dollars): add up in Python instead
        for row_cost, row_saved in conn.execute("SELECT cost_pusd, saved_pusd FROM calls"):
            cost += row_cost or 0
            saved += row_saved or 0
    return cost or 0, saved or 0


def status(path: Path) -> LedgerStatus:
    """Rows, time span, spend, size, schema version and pending rows of the ledger at ``path``."""
    settle(path)
    with _connect(path) as conn:
        calls, errors, unpriced, first, last = conn.execute(
            "SELECT count(*), sum(status = 'error'), sum(cost_pusd IS NULL), min(ts), max(ts)"
            " FROM calls"
        ).fetchone()
        cost, saved = _money_totals(conn)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        created = conn.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
    size = 0
    for file in (path, path.with_name(path.name + "-wal")):
        with suppress(FileNotFoundError):
            size += file.stat().st_size
    return LedgerStatus(
        path=path,
        calls=calls,
        errors=errors or 0,
        unpriced=unpriced or 0,
        first_call=_parse_ts(first),
        last_call=_parse_ts(last),
        cost_usd=from_pusd(cost),
        saved_usd=from_pusd(saved),
        size_bytes=size,
        schema_version=version,
        schema_latest=len(MIGRATIONS),
        pending_rows=pending_rows(path),
        created_at=_parse_ts(created[0]) if created else None,
    )


def model_calls(path: Path) -> list[ModelCalls]:
    """Every model name in the ledger, requested or served, with its call counts (by name).

    A call that requested and was served by the same name counts once in ``calls``.
    """
    settle(path)
    with _connect(path) as conn:
        rows = conn.execute(
            """
            SELECT model, count(DISTINCT id), sum(requested), sum(served) FROM (
                SELECT requested_model AS model, id, 1 AS requested, 0 AS served
                FROM calls WHERE requested_model IS NOT NULL
                UNION ALL
                SELECT served_model, id, 0, 1 FROM calls WHERE served_model IS NOT NULL
            ) GROUP BY model ORDER BY model
            """
        ).fetchall()
    return [ModelCalls(model, calls, requested, served) for model, calls, requested, served in rows]


# -- reading rows ---------------------------------------------------------------------------


def count_calls(path: Path, *, since: datetime | None = None, until: datetime | None = None) -> int:
    """How many calls have ``since <= ts < until``."""
    clause, params = _where(since, until)
    with _connect(path) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM calls{clause}", params).fetchone()
    return int(count)


def _names(cursor: sqlite3.Cursor) -> list[str]:
    return [_MONEY_COLUMNS.get(d[0], d[0]) for d in cursor.description]


def columns(path: Path) -> list[str]:
    """The keys of :func:`iter_rows`'s dicts, in order: the ``calls`` table's columns."""
    with _connect(path) as conn:
        return _names(conn.execute("SELECT * FROM calls LIMIT 0"))


def _convert(names: list[str], values: Iterable[Any], *, decode_json: bool) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if name in _MONEY_USD:
            row[name] = None if value is None else from_pusd(value)
        elif name in _JSON_COLUMNS and decode_json and isinstance(value, str):
            row[name] = json.loads(value)
        elif name == "stream":
            row[name] = bool(value)
        else:
            row[name] = value
    return row


def iter_rows(
    path: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    decode_json: bool = True,
) -> Iterator[dict[str, Any]]:
    """The calls with ``since <= ts < until``, oldest first, one dict at a time (streamed).

    Every column of the ``calls`` table is included, in the table's order (columns a later
    costguard added too), except that money is exact USD: ``cost_usd`` (``None`` when
    unpriced) and ``saved_usd`` as ``Decimal`` instead of the stored picodollars. ``stream``
    is a bool; ``raw_usage``, ``rates`` and ``tags`` are decoded unless ``decode_json=False``.
    Call :func:`settle` first to include rows that dead writers left in their journals.
    """
    clause, params = _where(since, until)
    with _connect(path) as conn:
        cursor = conn.execute(f"SELECT * FROM calls{clause} ORDER BY ts, id", params)
        names = _names(cursor)
        for values in cursor:
            yield _convert(names, values, decode_json=decode_json)


def recent_rows(path: Path, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` calls, oldest first (as :func:`iter_rows` gives them)."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    settle(path)
    limit = min(limit, _SQLITE_MAX_INT)  # more than any ledger holds; SQLite takes no more
    with _connect(path) as conn:
        cursor = conn.execute("SELECT * FROM calls ORDER BY ts DESC, id DESC LIMIT ?", (limit,))
        names = _names(cursor)
        rows = [_convert(names, values, decode_json=True) for values in cursor]
    rows.reverse()
    return rows


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"  # exact, positional: never 6E-8
    return value


def write_rows(
    rows: Iterable[dict[str, Any]],
    out: TextIO,
    fmt: Format,
    fieldnames: Sequence[str] | None = None,
) -> int:
    """Write ``rows`` (from :func:`iter_rows`) to ``out`` as CSV or JSON lines; return the count.

    CSV's header is ``fieldnames`` (see :func:`columns`), so even no rows give a header; by
    default it is the first row's keys.

    Money is an exact decimal string in both formats. CSV has a header row, empty cells for
    ``None``, ``1``/``0`` for ``stream`` and JSON text for the JSON columns; JSON lines keep
    numbers, booleans, nulls and objects as they are. Nothing is held back: each row is
    written as it arrives.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use {' or '.join(FORMATS)}")
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps({k: _text(v) for k, v in row.items()}, ensure_ascii=False))
            out.write("\n")
            count += 1
        return count
    writer: Any = None
    if fieldnames is not None:
        writer = csv.DictWriter(out, fieldnames=list(fieldnames), lineterminator="\n")
        writer.writeheader()
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        count += 1
    return count


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _text(value)


# -- backup and prune -----------------------------------------------------------------------


def backup(path: Path, dest: Path, *, force: bool = False) -> tuple[Path, int]:
    """Copy the ledger at ``path`` to ``dest`` with SQLite's online backup; ``(file, calls)``.

    The copy is consistent even while guards write, is a single self-contained file
    (rollback-journal mode; opening it as a ``Ledger`` turns WAL back on) and is readable by
    its owner only: it holds the ledger's key-fingerprint secret. A ``dest`` that is a
    directory gets a file of the ledger's name. An existing file is replaced only with
    ``force=True`` (``FileExistsError`` otherwise), atomically, so a failed backup never
    leaves half a file. ``ValueError`` if ``dest`` is the ledger itself; ``OSError`` if
    ``dest`` cannot be written.
    """
    if dest.is_dir():
        dest = dest / path.name
    if dest.exists():
        if os.path.samefile(dest, path):
            raise ValueError(f"{dest} is the ledger itself")
        if not force:
            raise FileExistsError(f"{dest} already exists")
    settle(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _connect(path, "back up") as source, _connect(tmp, "write the backup of") as copy:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
            (check,) = copy.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise LedgerError(f"the backup of {path} failed its integrity check: {check}")
            (calls,) = copy.execute("SELECT count(*) FROM calls").fetchone()
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest, int(calls)


def prune(path: Path, before: datetime) -> int:
    """Delete the calls recorded before ``before``; return how many were removed.

    Only ``calls`` rows go: budget totals, reservations, alerts and rate-limit events are
    kept as they are, so budgets stand exactly where they stood. Rows are deleted in
    batches of short transactions, so guards writing to the ledger meanwhile only wait
    briefly. The file does not shrink (SQLite reuses the pages) unless :func:`vacuum` runs.
    """
    settle(path)
    cutoff = _iso(before)
    removed = 0
    with _connect(path, "prune") as conn:
        while True:
            with immediate(conn):
                cursor = conn.execute(
                    "DELETE FROM calls WHERE id IN"
                    " (SELECT id FROM calls WHERE ts < ? ORDER BY ts LIMIT ?)",
                    (cutoff, _PRUNE_BATCH),
                )
            removed += cursor.rowcount
            if cursor.rowcount < _PRUNE_BATCH:
                return removed


def vacuum(path: Path) -> None:
    """Rewrite the ledger file without its free pages, so it shrinks after a prune."""
    with _connect(path, "vacuum") as conn:
        conn.execute("VACUUM")
