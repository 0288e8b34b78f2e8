"""What the guard's batch methods do: ``batch``, ``defer``, ``flush_deferred`` and ``resolve``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import BudgetExceededError, ConfigurationError, InvalidRequestError
from .._scope import current_scope
from ..ledger import new_id
from ._account import scope_from
from ._collect import decode_item, poll, recover
from ._engine import Context, Pending, insert_row, open_context
from ._requests import Prepared
from ._store import BatchStore, Item, dumps
from ._types import BatchHandle, BatchItemError, BatchNotReadyError, BatchOptions, FlushReport

if TYPE_CHECKING:
    from .._client import CostGuardClient

__all__ = ["defer", "flush", "resolve", "run_batch"]

PRIORITIES = {"high": 0, "normal": 1, "low": 2}


def run_batch(
    guard: CostGuardClient,
    client: Any,
    requests: Sequence[Any],
    *,
    wait: bool,
    options: BatchOptions | None,
) -> list[Any] | BatchHandle:
    if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
        raise InvalidRequestError("requests must be a list of request dicts", field="requests")
    if not requests:
        return [] if wait else BatchHandle(new_id(), (), ())
    ctx = open_context(guard, client, options)
    try:
        handle = _start(ctx, requests)
        if not wait:
            return handle
        items = _settle(ctx, list(handle.items), wait=True, handle=handle.id)
        return [decode_item(item, index) for index, item in enumerate(items)]
    finally:
        ctx.close()


def _start(ctx: Context, requests: Sequence[Any]) -> BatchHandle:
    """Check, look up, reserve, record and submit the requests of one ``guard.batch`` call."""
    prepared = [ctx.prepare(raw, index) for index, raw in enumerate(requests)]
    _check_sizes(ctx, prepared)
    scope = current_scope()
    pending = []
    for p in prepared:
        call = ctx.accounts.call(p.operation, p.params, scope)
        ctx.accounts.check_price(call)
        pending.append(Pending(new_id(), p, call, ctx.accounts.cache_plan(call)))
    misses, hits = ctx.plan(pending)
    _reserve_all(ctx, misses)
    groups = ctx.groups(misses)
    run_id = new_id()
    claims = {row["id"]: row for row in ctx.claim_rows(groups)}
    rows = []
    for position, entry in enumerate(pending):
        row = insert_row(ctx, entry, state="queued", run_id=run_id, position=position, priority=1)
        rows.append({**row, **claims.get(entry.item_id, {})})
    stored = {entry.item_id: answer for entry, _, answer in hits}
    for row in rows:
        if row["id"] in stored:
            row.update(ctx.hit_changes(stored[row["id"]]))
    with ctx.store.transaction() as conn:
        BatchStore.insert(conn, rows)
    ctx.finish_hits(hits, state=None)
    submitted = ctx.submit(groups, requeue_on_error=False)
    created = tuple(s.batch_id for s in submitted if s.batch_id is not None)
    errors = [s.error for s in submitted if s.error is not None]
    if errors and not created:
        raise errors[0]  # nothing could be submitted: the provider's own exception
    return BatchHandle(run_id, tuple(e.item_id for e in pending), created)


def _check_sizes(ctx: Context, prepared: Sequence[Prepared]) -> None:
    limits = ctx.limits
    for p in prepared:
        if p.size > limits.max_bytes:
            raise InvalidRequestError(
                f"{p.where}: {p.size:,} bytes, over the batch limit of {limits.max_bytes:,}",
                field=p.where,
            )
        cap = limits.max_embedding_inputs
        if cap is not None and p.embedding_inputs > cap:
            raise InvalidRequestError(
                f"{p.where}: {p.embedding_inputs:,} embedding inputs, over the batch limit "
                f"of {cap:,}",
                field=f"{p.where}.input",
            )


def _reserve_all(ctx: Context, misses: Sequence[Pending]) -> None:
    """Every request's worst case at batch rates, or none (BudgetExceededError)."""
    held: list[Pending] = []
    try:
        for entry in misses:
            hold = ctx.accounts.reserve(entry.call, new_id())
            entry.hold = ctx.accounts.hold_json(hold)
            held.append(entry)
    except BaseException:
        for entry in held:
            ctx.accounts.settle(entry.hold, None, ok=False)
        raise


# -- the deferred queue ---------------------------------------------------------------------


def defer(
    guard: CostGuardClient,
    client: Any,
    request: Any,
    *,
    priority: str,
    options: BatchOptions | None,
) -> str:
    if priority not in PRIORITIES:
        raise InvalidRequestError(
            f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}", field="priority"
        )
    ctx = open_context(guard, client, options)
    try:
        prepared = ctx.prepare(request, None)
        _check_sizes(ctx, [prepared])
        call = ctx.accounts.call(prepared.operation, prepared.params, current_scope())
        ctx.accounts.check_price(call)
        entry = Pending(new_id(), prepared, call, None)
        row = insert_row(
            ctx, entry, state="queued", run_id=None, position=0, priority=PRIORITIES[priority]
        )
        with ctx.store.transaction() as conn:
            BatchStore.insert(conn, [row])
        return entry.item_id
    finally:
        ctx.close()


def flush(
    guard: CostGuardClient, client: Any, *, wait: bool, options: BatchOptions | None
) -> FlushReport:
    ctx = open_context(guard, client, options)
    report = FlushReport()
    try:
        report.recovered = recover(
            ctx,
        )
        where, args = ctx.mine()
        for job in ctx.store.jobs(f"collected_at IS NULL AND {where}", args):
            try:
                _poll_job(ctx, job.id, report)
            except Exception as exc:  # one unreadable batch does not stop the flush
                report.errors.append(f"{job.id}: {type(exc).__name__}: {exc}")
        _submit_queued(ctx, report, only=None)
        if wait:
            _wait_jobs(ctx, report)
        report.open = [j.id for j in ctx.store.jobs(f"collected_at IS NULL AND {where}", args)]
        return report
    finally:
        ctx.close()


def _poll_job(ctx: Context, batch_id: str, report: FlushReport) -> bool:
    before = _ended_counts(ctx, batch_id)
    ended = poll(ctx, batch_id)
    after = _ended_counts(ctx, batch_id)
    report.finished += after[0] - before[0]
    report.failed += after[1] - before[1]
    return ended


def _ended_counts(ctx: Context, batch_id: str) -> tuple[int, int]:
    items = ctx.store.items("batch_id = ?", [batch_id])
    return (
        sum(1 for i in items if i.state == "finished"),
        sum(1 for i in items if i.state == "failed"),
    )


def _wait_jobs(ctx: Context, report: FlushReport) -> None:
    where, args = ctx.mine()
    still_open = [j.id for j in ctx.store.jobs(f"collected_at IS NULL AND {where}", args)]

    def step() -> list[str]:
        still_open[:] = [j for j in still_open if not _poll_job(ctx, j, report)]
        return still_open

    _wait(ctx, step, "flush")


def _wait(ctx: Context, step: Callable[[], list[str]], handle: str) -> None:
    """Call ``step`` (one round of polls; returns what is still open) until nothing is open."""
    options = ctx.options
    deadline = ctx.now() + options.timeout_s
    interval = options.poll_interval_s
    while True:
        still_open = step()
        if not still_open:
            return
        if ctx.now() + interval > deadline:
            raise BatchNotReadyError(
                f"batches still running after {options.timeout_s:g}s: {', '.join(still_open)}; "
                f"collect them later with guard.resolve({handle!r}, client)",
                handle=handle,
            )
        options.sleep(interval)
        interval = min(interval * options.backoff, options.max_poll_interval_s)


def _submit_queued(ctx: Context, report: FlushReport, *, only: Sequence[str] | None) -> None:
    """Claim queued requests, answer what the cache holds, reserve budgets, submit the rest."""
    where, args = ctx.mine()
    claim = new_id()
    limit = ctx.options.max_items
    with ctx.store.transaction() as conn:
        if only is None:
            picked = conn.execute(
                f"SELECT id FROM batch_items WHERE state = 'queued' AND {where}"
                f" ORDER BY priority, id{' LIMIT ?' if limit is not None else ''}",
                [*args, *([limit] if limit is not None else [])],
            ).fetchall()
            candidates = [row[0] for row in picked]
        else:  # named items: this client sends them, whichever key queued them
            candidates = list(only)
        lease = ctx.now() + ctx.options.lease_s
        claimed = {"state": "submitting", "attempt": claim, "lease_until": lease}
        ids = [i for i in candidates if BatchStore.update(conn, i, claimed, state="queued")]
    if not ids:
        return
    items = ctx.store.by_ids(ids)
    pending = [p for p in (_pending(ctx, item) for item in items) if p is not None]
    misses, hits = ctx.plan(pending)
    ctx.finish_hits(hits, state="submitting")
    report.cache_hits += len(hits)
    ready = []
    for entry in misses:
        try:
            entry.hold = ctx.accounts.hold_json(ctx.accounts.reserve(entry.call, new_id()))
        except BudgetExceededError:
            report.held += 1
            with ctx.store.transaction() as conn:
                BatchStore.update(
                    conn,
                    entry.item_id,
                    {"state": "queued", "attempt": None, "lease_until": None},
                    state="submitting",
                )
            continue
        ready.append(entry)
    groups = ctx.groups(ready)
    with ctx.store.transaction() as conn:
        for row in ctx.claim_rows(groups):
            item_id = row.pop("id")
            BatchStore.update(conn, item_id, row, state="submitting")
    for done in ctx.submit(groups, requeue_on_error=True):
        if done.batch_id is not None:
            report.batch_ids.append(done.batch_id)
            report.submitted += done.requests
        elif done.error is not None:
            report.errors.append(f"{type(done.error).__name__}: {done.error}")


def _pending(ctx: Context, item: Item) -> Pending | None:
    """A queued item, checked again (the price table or the request may no longer do)."""
    try:
        prepared = ctx.prepare(json.loads(item.request or "{}"), None, item.operation)
        scope = scope_from(item.scope)
        call = ctx.accounts.call(prepared.operation, prepared.params, scope)
        ctx.accounts.check_price(call)
    except Exception as exc:
        error = BatchItemError(f"the request can no longer be sent: {exc}", kind="rejected")
        with ctx.store.transaction() as conn:
            BatchStore.update(
                conn,
                item.id,
                {"state": "failed", "error": dumps(error.to_json()), "request": None},
                state="submitting",
            )
        ctx.accounts.write_row(item, ctx.accounts.failed(error), latency_ms=0.0)
        return None
    plan = ctx.accounts.cache_plan(call)
    return Pending(item.id, prepared, call, plan, row_id=item.row_id or new_id())


# -- resolving handles ------------------------------------------------------------------------


def resolve(
    guard: CostGuardClient,
    handle: str | BatchHandle,
    client: Any,
    *,
    wait: bool,
    options: BatchOptions | None,
) -> Any:
    if isinstance(handle, BatchHandle) and not handle.items:
        return []  # guard.batch of no requests
    ctx = open_context(guard, client, options)
    try:
        ident = str(handle)
        single = ctx.store.items("id = ?", [ident])
        items = single or ctx.store.items("run_id = ?", [ident], order="position")
        if not items:
            raise InvalidRequestError(
                f"no batch request or batch call {ident!r} in ledger {guard.ledger.path}",
                field="handle",
            )
        providers = {item.provider for item in items}
        if providers != {ctx.provider}:
            raise ConfigurationError(
                f"handle {ident!r} was sent through {', '.join(sorted(providers))}; "
                f"resolve it with a client of that provider, not {ctx.provider}"
            )
        items = _settle(ctx, [item.id for item in items], wait=wait, handle=ident)
        if any(not item.ended for item in items):
            return None
        if single:
            answer = decode_item(items[0])
            if isinstance(answer, BatchItemError):
                raise answer
            return answer
        return [decode_item(item, index) for index, item in enumerate(items)]
    finally:
        ctx.close()


def _settle(ctx: Context, ids: list[str], *, wait: bool, handle: str) -> list[Item]:
    """Move the given items on until every one has ended (or, without ``wait``, one round)."""

    def load() -> list[Item]:
        return ctx.store.by_ids(ids)

    def step() -> list[str]:
        pending = [item for item in load() if not item.ended]
        if not pending:
            return []
        recover(ctx, [i for i in pending if i.state == "submitting"])
        queued = [i.id for i in load() if i.state == "queued"]
        if queued:
            _submit_queued(ctx, FlushReport(), only=queued)
        jobs = sorted({i.batch_id for i in load() if i.state == "submitted" and i.batch_id})
        for job in jobs:
            poll(ctx, job)
        return sorted({i.batch_id or i.state for i in load() if not i.ended})

    if wait:
        _wait(ctx, step, handle)
    else:
        step()
    return load()
