"""The ledger schema, grown by an append-only list of migrations.

``PRAGMA user_version`` holds how many entries of ``MIGRATIONS`` a database has had applied.
Each migration runs in its own ``BEGIN IMMEDIATE`` transaction, so a crash leaves a database at
a version boundary, and two processes opening a new ledger at once cannot both apply one.

NEVER edit or reorder a migration that has been released: databases in the field already ran
it. To change the schema, append a new function to ``MIGRATIONS``.

The tables are plain (no STRICT, no generated columns) so Datasette, sqlite-utils and the
``sqlite3`` shell read them directly. Money columns are integer picodollars (USD * 10**12):
``SELECT sum(cost_pusd) / 1e12 FROM calls`` gives dollars.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["MIGRATIONS", "immediate", "migrate"]

Migration = Callable[[sqlite3.Connection], None]


def _m001_calls_and_meta(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,            -- ULID: sorts by creation time
            ts TEXT NOT NULL,               -- UTC, ISO 8601 with microseconds, fixed width
            provider TEXT NOT NULL,         -- openai | anthropic
            operation TEXT NOT NULL,        -- e.g. chat.completions.create, messages.create
            requested_model TEXT,
            served_model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,  -- includes reasoning_tokens
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            raw_usage TEXT,                 -- the provider's usage object, JSON
            cost_pusd INTEGER,              -- picodollars; NULL = unpriced
            saved_pusd INTEGER NOT NULL DEFAULT 0,
            rates TEXT,                     -- JSON: rate name -> USD per million tokens
            price_version TEXT,
            service_tier TEXT,
            cache TEXT NOT NULL DEFAULT 'miss',  -- miss | exact | semantic | off
            latency_us INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL DEFAULT 'ok',   -- ok | error | incomplete
            error_type TEXT,
            stream INTEGER NOT NULL DEFAULT 0,
            feature TEXT,
            "user" TEXT,
            tenant TEXT,
            tags TEXT NOT NULL DEFAULT '{}',     -- JSON object of strings
            api_key_hash TEXT,              -- keyed hash, see Ledger.key_fingerprint
            api_key_last4 TEXT
        ) WITHOUT ROWID
        """
    )
    # Rows are stored in id order, which is time order: appends touch the b-tree's right edge.
    # One index only (time ranges); reports aggregate by scanning, and every index would be
    # paid for on every write.
    conn.execute("CREATE INDEX calls_ts ON calls (ts)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _m002_spend_control(conn: sqlite3.Connection) -> None:
    # Output limits as asked and as sent (the cap layer may lower or fill them in).
    conn.execute("ALTER TABLE calls ADD COLUMN requested_max_tokens INTEGER")
    conn.execute("ALTER TABLE calls ADD COLUMN sent_max_tokens INTEGER")
    # Budgets: settled spend per budget, key and calendar period, in picodollars ...
    conn.execute(
        """
        CREATE TABLE budget_spend (
            budget TEXT NOT NULL,           -- the budget's name
            "key" TEXT NOT NULL,            -- the scope value it applies to ('' if global)
            period TEXT NOT NULL,           -- start of the calendar period, ISO date ('' if total)
            spent_pusd INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (budget, "key", period)
        ) WITHOUT ROWID
        """
    )
    # ... worst-case amounts held by calls in flight (settled or released when they end) ...
    conn.execute(
        """
        CREATE TABLE budget_reservations (
            id TEXT NOT NULL,               -- one per call
            budget TEXT NOT NULL,
            "key" TEXT NOT NULL,
            period TEXT NOT NULL,
            amount_pusd INTEGER NOT NULL,
            expires_at REAL NOT NULL,       -- unix seconds: a killed process's hold lapses
            PRIMARY KEY (id, budget)
        ) WITHOUT ROWID
        """
    )
    conn.execute(
        'CREATE INDEX budget_reservations_by_budget ON budget_reservations (budget, "key", period)'
    )
    # ... and which alert thresholds already fired, once per budget, key and period.
    conn.execute(
        """
        CREATE TABLE budget_alerts (
            budget TEXT NOT NULL,
            "key" TEXT NOT NULL,
            period TEXT NOT NULL,
            fraction TEXT NOT NULL,         -- e.g. '0.8'
            fired_at REAL NOT NULL,
            PRIMARY KEY (budget, "key", period, fraction)
        ) WITHOUT ROWID
        """
    )
    # Rate limits: one row per admitted request (or token charge), pruned as windows pass.
    conn.execute(
        """
        CREATE TABLE rate_events (
            "key" TEXT NOT NULL,            -- e.g. 'user:u42'
            at REAL NOT NULL,               -- unix seconds
            requests INTEGER NOT NULL DEFAULT 1,
            tokens INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    conn.execute('CREATE INDEX rate_events_by_key ON rate_events ("key", at)')


def _m003_routing(conn: sqlite3.Connection) -> None:
    # Why the served model differs from the requested one: "rule:classify", "tier:draft",
    # "complexity:0.31", "cascade", "fallback:...".
    conn.execute("ALTER TABLE calls ADD COLUMN route TEXT")


def _m004_linked_calls(conn: sqlite3.Connection) -> None:
    # A call that made an earlier, separately billed attempt (a cascade's cheap try) points to
    # that attempt's row.
    conn.execute("ALTER TABLE calls ADD COLUMN linked_to TEXT")


def _m005_batches(conn: sqlite3.Connection) -> None:
    # The provider batch (OpenAI Batch API, Anthropic Message Batches) that carried a call.
    conn.execute("ALTER TABLE calls ADD COLUMN batch_id TEXT")
    # Requests sent through the batch APIs, from guard.batch() and the deferred queue. A row is
    # committed before each network step and moved on after it, so nothing is lost when a
    # process dies between queueing, submitting and collecting (see costguard/batch/).
    conn.execute(
        """
        CREATE TABLE batch_items (
            id TEXT PRIMARY KEY,            -- ULID: the handle guard.defer() returns
            run_id TEXT,                    -- the guard.batch() call it came from (NULL: deferred)
            position INTEGER NOT NULL DEFAULT 0,  -- its index in that call's requests
            state TEXT NOT NULL,            -- queued | submitting | submitted | finished | failed
            priority INTEGER NOT NULL DEFAULT 2,  -- 0 high, 1 normal, 2 low
            provider TEXT NOT NULL,         -- openai | anthropic
            operation TEXT NOT NULL,        -- chat.completions.create, messages.create, ...
            model TEXT,
            base_url TEXT NOT NULL,
            api_key_hash TEXT,              -- which key queued it (keyed hash, never the key)
            api_key_last4 TEXT,
            request TEXT,                   -- JSON create() kwargs; NULL once the item has ended
            meta TEXT NOT NULL DEFAULT '{}',  -- JSON: model and output limit (no prompt text)
            scope TEXT NOT NULL DEFAULT '{}', -- JSON: feature, user, tenant, tags
            cache_key TEXT,                 -- the exact-cache key a live call would use
            cache_tag TEXT,                 -- its partition
            cache_ttl REAL,
            cache_store INTEGER NOT NULL DEFAULT 0,  -- store the answer when it comes
            attempt TEXT,                   -- the submission attempt that claimed it (ULID)
            lease_until REAL,               -- unix seconds: 'submitting' past this is retried
            hold TEXT,                      -- JSON: the budget reservation it holds
            batch_id TEXT,                  -- the provider's batch id, once it accepted it
            row_id TEXT,                    -- the id of its row in calls (written once)
            cache TEXT NOT NULL DEFAULT 'miss',  -- exact: answered from the cache, not sent
            result TEXT,                    -- JSON of the SDK response, once finished
            error TEXT,                     -- JSON: why it failed (kind, message, status)
            queued_at REAL NOT NULL,        -- unix seconds
            submitted_at REAL,
            ended_at REAL
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX batch_items_by_state ON batch_items (state, priority, id)")
    conn.execute("CREATE INDEX batch_items_by_batch ON batch_items (batch_id)")
    conn.execute("CREATE INDEX batch_items_by_run ON batch_items (run_id, position)")
    # One row per provider batch submitted.
    conn.execute(
        """
        CREATE TABLE batch_jobs (
            id TEXT PRIMARY KEY,            -- the provider's batch id
            provider TEXT NOT NULL,
            endpoint TEXT NOT NULL,         -- /v1/chat/completions, ..., or /v1/messages/batches
            attempt TEXT NOT NULL,          -- the submission attempt (batch_items.attempt)
            base_url TEXT NOT NULL,
            api_key_hash TEXT,
            status TEXT NOT NULL,           -- as the provider last reported it
            items INTEGER NOT NULL,
            input_file_id TEXT,
            created_at REAL NOT NULL,       -- unix seconds
            collected_at REAL               -- when its results were read (NULL: still open)
        ) WITHOUT ROWID
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    _m001_calls_and_meta,
    _m002_spend_control,
    _m003_routing,
    _m004_linked_calls,
    _m005_batches,
    # Append new migrations here. Never edit one above.
)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in a write transaction (``conn`` must be in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration ``conn``'s database lacks; return the resulting version.

    A database newer than this code (a later costguard wrote it) is left as it is: migrations
    only add, so older code can still read and write the columns it knows.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    for target, step in enumerate(MIGRATIONS, start=1):
        if version >= target:
            continue
        with immediate(conn):
            # Re-read under the write lock: another process may have got here first.
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version < target:
                step(conn)
                conn.execute(f"PRAGMA user_version = {target}")
                version = target
    return int(version)
