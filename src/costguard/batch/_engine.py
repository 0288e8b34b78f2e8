"""Submitting: one batch API call's context, and claiming and sending requests.

Each step commits its state change before the network call it leads to, and records that call's
result in a transaction after it (see ``_store``). The network calls go through ``_drivers``;
pricing, the cache and budgets through ``_account``; recovery and collection live in
``_collect``. Whatever reaches the network or the user's callbacks is yielded (see ``_run``), so
one engine serves sync and async clients.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._call import ClientInfo
from .._errors import CostGuardWarning
from ..ledger import new_id
from ._account import Accounts, CachePlan, meta_of, scope_json
from ._drivers import Driver, driver_for
from ._requests import Prepared, prepare
from ._run import Steps, notify
from ._split import split
from ._store import BatchStore, dumps
from ._types import ANTHROPIC_LIMITS, OPENAI_LIMITS, BatchItemError, BatchLimits, BatchOptions

if TYPE_CHECKING:
    from .._call import Call
    from .._client import CostGuardClient

__all__ = ["Context", "Pending", "Submitted", "insert_row", "open_context"]


@dataclass
class Pending:
    """A request about to be submitted: its row, its checked form, the call it stands for."""

    item_id: str
    prepared: Prepared
    call: Call
    plan: CachePlan | None
    hold: str | None = None
    row_id: str = field(default_factory=new_id)


@dataclass
class Context:
    """One batch API call's view of the guard, the client and the store."""

    guard: CostGuardClient
    client: Any
    provider: str
    info: ClientInfo
    options: BatchOptions
    store: BatchStore
    driver: Driver
    accounts: Accounts

    @property
    def limits(self) -> BatchLimits:
        if self.options.limits is not None:
            return self.options.limits
        return OPENAI_LIMITS if self.provider == "openai" else ANTHROPIC_LIMITS

    def now(self) -> float:
        return float(self.options.clock())

    def mine(self) -> tuple[str, list[object]]:
        """SQL matching the items this client may submit and collect."""
        return (
            "provider = ? AND base_url = ? AND api_key_hash IS ?",
            [self.provider, self.info.base_url, self.info.api_key_hash],
        )

    # -- preparing ----------------------------------------------------------------------------

    def prepare(
        self, raw: object, index: int | None, operation_name: str | None = None
    ) -> Prepared:
        """Check one request for this client (see ``_requests.prepare``)."""
        return prepare(self.client, raw, index, self.provider, self.guard.prices, operation_name)

    # -- submitting ---------------------------------------------------------------------------

    def plan(
        self, pending: Sequence[Pending]
    ) -> tuple[list[Pending], list[tuple[Pending, Any, Any]]]:
        """Split requests into misses and cache hits (with their outcome and stored JSON)."""
        misses: list[Pending] = []
        hits: list[tuple[Pending, Any, Any]] = []
        for entry in pending:
            hit = self.accounts.cache_hit(entry.call, entry.plan)
            if hit is None:
                misses.append(entry)
            else:
                hits.append((entry, *hit))
        return misses, hits

    def hit_changes(self, stored: Any) -> dict[str, Any]:
        """The columns of a request answered from the cache: finished, never sent."""
        return {
            "state": "finished",
            "cache": "exact",
            "result": dumps(stored),
            "request": None,
            "ended_at": self.now(),
        }

    def finish_hits(self, hits: Sequence[tuple[Pending, Any, Any]], *, attempt: str | None) -> int:
        """Record cache hits: move the items ``attempt`` claimed to finished (``attempt``
        None: the caller inserted them finished), and write their ledger rows. Returns how
        many this process finished."""
        if attempt is not None:
            with self.store.transaction() as conn:
                hits = [
                    hit
                    for hit in hits
                    if BatchStore.update(
                        conn,
                        hit[0].item_id,
                        self.hit_changes(hit[2]),
                        state="submitting",
                        attempt=attempt,
                    )
                ]
        items = {item.id: item for item in self.store.by_ids([e.item_id for e, _, _ in hits])}
        for entry, outcome, _ in hits:
            self.accounts.write_row(items[entry.item_id], outcome, latency_ms=0.0, call=entry.call)
        return len(hits)

    def groups(self, misses: Sequence[Pending]) -> list[tuple[str, str, list[Pending]]]:
        """(attempt id, endpoint, requests) per provider batch to create."""
        chunks = split([m.prepared for m in misses], self.provider, self.limits)
        by_prepared = {id(m.prepared): m for m in misses}
        return [
            (new_id(), endpoint, [by_prepared[id(p)] for p in chunk]) for endpoint, chunk in chunks
        ]

    def claim_rows(self, groups: Sequence[tuple[str, str, list[Pending]]]) -> list[dict[str, Any]]:
        """The column values that mark each request as claimed by its attempt."""
        lease = self.now() + self.options.lease_s
        rows = []
        for attempt, _, members in groups:
            for entry in members:
                plan = entry.plan
                rows.append(
                    {
                        "id": entry.item_id,
                        "state": "submitting",
                        "attempt": attempt,
                        "lease_until": lease,
                        "hold": entry.hold,
                        "row_id": entry.row_id,
                        "cache_key": plan.key if plan else None,
                        "cache_tag": plan.tag if plan else None,
                        "cache_ttl": plan.ttl if plan else None,
                        "cache_store": int(bool(plan and plan.store)),
                    }
                )
        return rows

    def requeue(self, holds: Mapping[str, str | None], attempt: str | None) -> list[str]:
        """Put items that ``attempt`` claimed (ids -> their stored holds) back in the queue;
        their budget holds are released. Returns the ids this process moved: an item another
        process has claimed again since is left to it."""
        for hold in holds.values():
            self.accounts.settle(hold, None, ok=False)
        with self.store.transaction() as conn:
            return [
                item_id
                for item_id in holds
                if BatchStore.update(conn, item_id, _QUEUED, state="submitting", attempt=attempt)
            ]

    def submit(
        self, groups: Sequence[tuple[str, str, list[Pending]]], *, requeue_on_error: bool
    ) -> Steps[list[Submitted]]:
        """Send each claimed group as one provider batch."""
        on_step = self.options.on_step
        done: list[Submitted] = []
        for attempt, endpoint, members in groups:
            yield from notify(on_step, "claimed", attempt)
            entries = [(m.item_id, m.prepared.body) for m in members]
            try:
                sent = yield from self.driver.submit(self.client, attempt, endpoint, entries)
            except Exception as exc:  # the provider refused or could not be reached
                found = yield from self._created_anyway(attempt, exc)
                if found is None:
                    retry = requeue_on_error and _retry_later(exc)
                    self._unclaim(attempt, members, exc, requeue=retry)
                    done.append(Submitted(len(members), None, exc, requeued=retry))
                    continue
                sent = (found, None)
            batch_id, file_id = sent
            yield from notify(on_step, "created", batch_id)
            self.record_submitted(attempt, batch_id, endpoint, len(members), file_id)
            done.append(Submitted(len(members), batch_id, None))
            yield from notify(on_step, "submitted", batch_id)
        return done

    def _created_anyway(self, attempt: str, exc: BaseException) -> Steps[str | None]:
        """The batch a submission that failed may have created all the same: a timeout or a
        lost connection can come after the provider accepted it. Looked up by the attempt id
        (OpenAI), so that it is adopted rather than sent again; None if there is none, or if
        the provider cannot be asked either."""
        if not _retry_later(exc):
            return None  # the provider refused the batch: it does not exist
        try:
            return (yield from self.driver.find(self.client, attempt))
        except Exception:
            return None

    def record_submitted(
        self, attempt: str, batch_id: str, endpoint: str, count: int, file_id: str | None
    ) -> None:
        now = self.now()
        with self.store.transaction() as conn:
            moved = conn.execute(
                "UPDATE batch_items SET state = 'submitted', batch_id = ?, submitted_at = ?,"
                " lease_until = NULL WHERE attempt = ? AND state = 'submitting'",
                (batch_id, now, attempt),
            ).rowcount
            conn.execute(
                "INSERT OR IGNORE INTO batch_jobs (id, provider, endpoint, attempt, base_url,"
                " api_key_hash, status, items, input_file_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?, ?, ?)",
                (
                    batch_id,
                    self.provider,
                    endpoint,
                    attempt,
                    self.info.base_url,
                    self.info.api_key_hash,
                    count,
                    file_id,
                    now,
                ),
            )
        if moved == 0:
            warnings.warn(
                f"costguard: batch {batch_id} was accepted after its claim lapsed; its requests "
                "were already queued again",
                CostGuardWarning,
                stacklevel=3,
            )

    def fail(
        self, items: Sequence[tuple[str, str | None]], error: BatchItemError, *, attempt: str
    ) -> int:
        """End claimed items (``(id, stored hold)``) without an answer: their holds are
        released, and each that ``attempt`` still held gets its error row. Returns how many."""
        for _, hold in items:
            self.accounts.settle(hold, None, ok=False)
        changes = {
            "state": "failed",
            "error": dumps(error.to_json()),
            "request": None,
            "ended_at": self.now(),
        }
        with self.store.transaction() as conn:
            moved = [
                item_id
                for item_id, _ in items
                if BatchStore.update(conn, item_id, changes, state="submitting", attempt=attempt)
            ]
        for item in self.store.by_ids(moved):
            self.accounts.write_row(item, self.accounts.failed(error), latency_ms=0.0)
        return len(moved)

    def _unclaim(
        self, attempt: str, members: Sequence[Pending], exc: BaseException, *, requeue: bool
    ) -> None:
        holds = {m.item_id: m.hold for m in members}
        if requeue:
            self.requeue(holds, attempt)
            return
        error = BatchItemError(
            f"the batch could not be submitted: {type(exc).__name__}: {exc}", kind="rejected"
        )
        self.fail(list(holds.items()), error, attempt=attempt)


#: An item back in the queue: unclaimed, holding no budget.
_QUEUED = {"state": "queued", "attempt": None, "lease_until": None, "hold": None}


@dataclass(frozen=True, slots=True)
class Submitted:
    """One group's submission: the batch that carries it, or why there is none (and whether
    its requests went back to the queue rather than failing)."""

    requests: int
    batch_id: str | None
    error: BaseException | None
    requeued: bool = False


#: Refusals of the batch itself (its content): submitting it again cannot help.
_REFUSED_STATUS = frozenset({400, 404, 413, 422})


def _retry_later(exc: BaseException) -> bool:
    """Whether a failed submission stays queued (timeouts, lost connections, rate limits,
    server errors, a key the provider refused) rather than failing its requests (the provider
    refused the batch's content)."""
    status = getattr(exc, "status_code", None)
    return not (isinstance(status, int) and status in _REFUSED_STATUS)


def open_context(
    guard: CostGuardClient,
    client: Any,
    provider: str,
    is_async: bool,
    options: BatchOptions | None,
) -> Context:
    """The context for one batch API call with ``client``, an OpenAI / Anthropic client whose
    kind (``provider``, ``is_async``) the caller has checked."""
    from .._wrap import client_info

    options = options or BatchOptions()
    info = client_info(guard, client, provider, is_async)
    return Context(
        guard,
        client,
        provider,
        info,
        options,
        BatchStore.for_guard(guard),
        driver_for(provider),
        Accounts(guard, info, options.reservation_ttl_s),
    )


def insert_row(
    ctx: Context, entry: Pending, *, state: str, run_id: str | None, position: int, priority: int
) -> dict[str, Any]:
    """The batch_items row of a new request."""
    prepared = entry.prepared
    return {
        "id": entry.item_id,
        "run_id": run_id,
        "position": position,
        "state": state,
        "priority": priority,
        "provider": ctx.provider,
        "operation": prepared.operation.name,
        "model": prepared.model,
        "base_url": ctx.info.base_url,
        "api_key_hash": ctx.info.api_key_hash,
        "api_key_last4": ctx.info.api_key_last4,
        "request": dumps(prepared.params),
        "meta": meta_of(prepared.operation, prepared.params),
        "scope": scope_json(entry.call.scope),
        "row_id": entry.row_id,
        "queued_at": ctx.now(),
    }
