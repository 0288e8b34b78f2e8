"""What the guard's batch methods do: ``batch``, ``defer``, ``flush_deferred`` and ``resolve``,
and their async twins ``abatch``, ``adefer``, ``aflush_deferred`` and ``aresolve``.

Each method is one core (a generator, see ``_run``) under two thin drivers: the sync name checks
that it was given a sync client and runs the core with :func:`~._run.run`; the async name checks
for an async client and awaits :func:`~._run.arun`. Only the kind of client they accept differs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import BudgetExceededError, ConfigurationError, InvalidRequestError
from .._scope import current_scope
from .._wrap import _kind
from ..ledger import new_id
from ._account import scope_from
from ._collect import decode_item, poll, recover
from ._engine import Context, Pending, Submitted, insert_row, open_context
from ._requests import Prepared
from ._run import Sleep, Steps, arun, run
from ._store import BatchStore, Item
from ._types import BatchHandle, BatchItemError, BatchNotReadyError, BatchOptions, FlushReport

if TYPE_CHECKING:
    from .._client import CostGuardClient

__all__ = [
    "adefer",
    "aflush",
    "aresolve",
    "arun_batch",
    "defer",
    "flush",
    "resolve",
    "run_batch",
]

PRIORITIES = {"high": 0, "normal": 1, "low": 2}

_SYNC = "a sync client (openai.OpenAI or anthropic.Anthropic)"
_ASYNC = "an async client (openai.AsyncOpenAI or anthropic.AsyncAnthropic)"

#: (provider, is_async) of a client a batch method was given
Kind = tuple[str, bool]


def _checked(client: Any, name: str, *, is_async: bool) -> Kind:
    """The client's kind, if it is the kind ``guard.<name>`` takes; else a ConfigurationError
    pointing at the twin that takes it."""
    provider, client_is_async = _kind(client)
    if client_is_async != is_async:
        given = f"{provider}.{type(client).__name__}"
        if is_async:
            raise ConfigurationError(
                f"guard.{name} takes {_ASYNC}, not a sync {given}; "
                f"for a sync client use guard.{name.removeprefix('a')}(...)"
            )
        raise ConfigurationError(
            f"guard.{name} takes {_SYNC}, not an async {given}; "
            f"for an async client use `await guard.a{name}(...)`"
        )
    return provider, is_async


# -- guard.batch / guard.abatch ---------------------------------------------------------------


def run_batch(
    guard: CostGuardClient,
    client: Any,
    requests: Sequence[Any],
    *,
    wait: bool,
    options: BatchOptions | None,
) -> list[Any] | BatchHandle:
    options = options or BatchOptions()
    kind = _checked(client, "batch", is_async=False)
    return run(_batch(guard, client, kind, requests, wait=wait, options=options), options)


async def arun_batch(
    guard: CostGuardClient,
    client: Any,
    requests: Sequence[Any],
    *,
    wait: bool,
    options: BatchOptions | None,
) -> list[Any] | BatchHandle:
    options = options or BatchOptions()
    kind = _checked(client, "abatch", is_async=True)
    return await arun(_batch(guard, client, kind, requests, wait=wait, options=options), options)


def _batch(
    guard: CostGuardClient,
    client: Any,
    kind: Kind,
    requests: Sequence[Any],
    *,
    wait: bool,
    options: BatchOptions,
) -> Steps[list[Any] | BatchHandle]:
    if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
        raise InvalidRequestError("requests must be a list of request dicts", field="requests")
    if not requests:
        return [] if wait else BatchHandle(new_id(), (), ())
    ctx = open_context(guard, client, *kind, options)
    handle = yield from _start(ctx, requests)
    if not wait:
        return handle
    items = yield from _settle(ctx, list(handle.items), wait=True, handle=handle.id)
    return [decode_item(item, index) for index, item in enumerate(items)]


def _start(ctx: Context, requests: Sequence[Any]) -> Steps[BatchHandle]:
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
    run_id = new_id()
    try:
        groups = ctx.groups(misses)
        claims = {row["id"]: row for row in ctx.claim_rows(groups)}
        rows = []
        for position, entry in enumerate(pending):
            row = insert_row(
                ctx, entry, state="queued", run_id=run_id, position=position, priority=1
            )
            rows.append({**row, **claims.get(entry.item_id, {})})
        stored = {entry.item_id: answer for entry, _, answer in hits}
        for row in rows:
            if row["id"] in stored:
                row.update(ctx.hit_changes(stored[row["id"]]))
        with ctx.store.transaction() as conn:
            BatchStore.insert(conn, rows)
    except BaseException:  # nothing recorded: nothing else would ever release the holds
        _release(ctx, misses)
        raise
    ctx.finish_hits(hits, attempt=None)
    submitted = yield from ctx.submit(groups, requeue_on_error=False)
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
            entry.hold = ctx.accounts.reserve(entry.call)
            held.append(entry)
    except BaseException:
        _release(ctx, held)
        raise


def _release(ctx: Context, entries: Sequence[Pending]) -> None:
    """Release the budget holds of requests that will not be sent after all."""
    for entry in entries:
        ctx.accounts.settle(entry.hold, None, ok=False)
        entry.hold = None


# -- the deferred queue ---------------------------------------------------------------------


def defer(
    guard: CostGuardClient,
    client: Any,
    request: Any,
    *,
    priority: str,
    options: BatchOptions | None,
) -> str:
    kind = _checked(client, "defer", is_async=False)
    return _defer(guard, client, kind, request, priority=priority, options=options)


async def adefer(
    guard: CostGuardClient,
    client: Any,
    request: Any,
    *,
    priority: str,
    options: BatchOptions | None,
) -> str:
    kind = _checked(client, "adefer", is_async=True)
    # Nothing is sent: the whole of defer is database work, done in a worker thread.
    return await asyncio.to_thread(
        _defer, guard, client, kind, request, priority=priority, options=options
    )


def _defer(
    guard: CostGuardClient,
    client: Any,
    kind: Kind,
    request: Any,
    *,
    priority: str,
    options: BatchOptions | None,
) -> str:
    if priority not in PRIORITIES:
        raise InvalidRequestError(
            f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}", field="priority"
        )
    ctx = open_context(guard, client, *kind, options)
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


def flush(
    guard: CostGuardClient, client: Any, *, wait: bool, options: BatchOptions | None
) -> FlushReport:
    options = options or BatchOptions()
    kind = _checked(client, "flush_deferred", is_async=False)
    return run(_flush(guard, client, kind, wait=wait, options=options), options)


async def aflush(
    guard: CostGuardClient, client: Any, *, wait: bool, options: BatchOptions | None
) -> FlushReport:
    options = options or BatchOptions()
    kind = _checked(client, "aflush_deferred", is_async=True)
    return await arun(_flush(guard, client, kind, wait=wait, options=options), options)


def _flush(
    guard: CostGuardClient, client: Any, kind: Kind, *, wait: bool, options: BatchOptions
) -> Steps[FlushReport]:
    ctx = open_context(guard, client, *kind, options)
    report = FlushReport()
    report.recovered = yield from recover(ctx)
    where, args = ctx.mine()
    for job in ctx.store.jobs(f"collected_at IS NULL AND {where}", args):
        try:
            yield from _poll_job(ctx, job.id, report)
        except Exception as exc:  # one unreadable batch does not stop the flush
            report.errors.append(f"{job.id}: {type(exc).__name__}: {exc}")
    yield from _submit_queued(ctx, report, only=None)
    if wait:
        yield from _wait_jobs(ctx, report)
    report.open = [j.id for j in ctx.store.jobs(f"collected_at IS NULL AND {where}", args)]
    return report


def _poll_job(ctx: Context, batch_id: str, report: FlushReport) -> Steps[bool]:
    """Poll one batch for a flush, counting what its collection ended. True once ended."""
    collected = yield from poll(ctx, batch_id)
    if collected is None:
        return False
    report.finished += collected[0]
    report.failed += collected[1]
    return True


def _wait_jobs(ctx: Context, report: FlushReport) -> Steps[None]:
    where, args = ctx.mine()
    still_open = [j.id for j in ctx.store.jobs(f"collected_at IS NULL AND {where}", args)]

    def step() -> Steps[list[str]]:
        remaining = []
        for job in still_open:
            if not (yield from _poll_job(ctx, job, report)):
                remaining.append(job)
        still_open[:] = remaining
        return still_open

    yield from _wait(ctx, step, handle="", later="guard.flush_deferred(client)")


def _wait(
    ctx: Context, step: Callable[[], Steps[list[str]]], *, handle: str, later: str
) -> Steps[None]:
    """Run ``step`` (one round of polls; returns what is still open) until nothing is open;
    past ``timeout_s``, BatchNotReadyError saying to run ``later``."""
    options = ctx.options
    deadline = ctx.now() + options.timeout_s
    interval = options.poll_interval_s
    while True:
        still_open = yield from step()
        if not still_open:
            return
        if ctx.now() + interval > deadline:
            raise BatchNotReadyError(
                f"batches still running after {options.timeout_s:g}s: {', '.join(still_open)}; "
                f"collect them later with {later}",
                handle=handle,
            )
        yield Sleep(interval)
        interval = min(interval * options.backoff, options.max_poll_interval_s)


def _submit_queued(
    ctx: Context, report: FlushReport, *, only: Sequence[str] | None
) -> Steps[list[Submitted]]:
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
        return []
    pending = []
    for item in ctx.store.by_ids(ids):
        entry = _pending(ctx, item, claim)
        if entry is None:
            report.failed += 1
        else:
            pending.append(entry)
    misses, hits = ctx.plan(pending)
    report.cache_hits += ctx.finish_hits(hits, attempt=claim)
    ready: list[Pending] = []
    try:
        for entry in misses:
            try:
                entry.hold = ctx.accounts.reserve(entry.call)
            except BudgetExceededError:
                report.held += 1
                ctx.requeue({entry.item_id: None}, claim)
                continue
            ready.append(entry)
        groups = ctx.groups(ready)
        moved = set()
        with ctx.store.transaction() as conn:
            for row in ctx.claim_rows(groups):
                item_id = row.pop("id")
                if BatchStore.update(conn, item_id, row, state="submitting", attempt=claim):
                    moved.add(item_id)
    except BaseException:  # e.g. a budget that needs a scope key this request lacks
        ctx.requeue({entry.item_id: entry.hold for entry in misses}, claim)
        raise
    # A request whose claim lapsed meanwhile belongs to the process that claimed it again.
    _release(ctx, [entry for entry in ready if entry.item_id not in moved])
    groups = [
        (attempt, endpoint, [m for m in members if m.item_id in moved])
        for attempt, endpoint, members in groups
    ]
    submitted = yield from ctx.submit([g for g in groups if g[2]], requeue_on_error=True)
    for done in submitted:
        if done.batch_id is not None:
            report.batch_ids.append(done.batch_id)
            report.submitted += done.requests
        elif done.error is not None:
            report.errors.append(f"{type(done.error).__name__}: {done.error}")
            if not done.requeued:
                report.failed += done.requests
    return submitted


def _pending(ctx: Context, item: Item, claim: str) -> Pending | None:
    """A claimed item, checked again (the price table or the request may no longer do);
    None if it can no longer be sent, and has failed."""
    try:
        prepared = ctx.prepare(json.loads(item.request or "{}"), None, item.operation)
        scope = scope_from(item.scope)
        call = ctx.accounts.call(prepared.operation, prepared.params, scope)
        ctx.accounts.check_price(call)
    except Exception as exc:
        error = BatchItemError(f"the request can no longer be sent: {exc}", kind="rejected")
        ctx.fail([(item.id, item.hold)], error, attempt=claim)
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
    options = options or BatchOptions()
    kind = _checked(client, "resolve", is_async=False)
    return run(_resolve(guard, handle, client, kind, wait=wait, options=options), options)


async def aresolve(
    guard: CostGuardClient,
    handle: str | BatchHandle,
    client: Any,
    *,
    wait: bool,
    options: BatchOptions | None,
) -> Any:
    options = options or BatchOptions()
    kind = _checked(client, "aresolve", is_async=True)
    return await arun(_resolve(guard, handle, client, kind, wait=wait, options=options), options)


def _resolve(
    guard: CostGuardClient,
    handle: str | BatchHandle,
    client: Any,
    kind: Kind,
    *,
    wait: bool,
    options: BatchOptions,
) -> Steps[Any]:
    if isinstance(handle, BatchHandle) and not handle.items:
        return []  # guard.batch of no requests
    ctx = open_context(guard, client, *kind, options)
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
    items = yield from _settle(ctx, [item.id for item in items], wait=wait, handle=ident)
    if any(not item.ended for item in items):
        return None
    if single:
        answer = decode_item(items[0])
        if isinstance(answer, BatchItemError):
            raise answer
        return answer
    return [decode_item(item, index) for index, item in enumerate(items)]


def _settle(ctx: Context, ids: list[str], *, wait: bool, handle: str) -> Steps[list[Item]]:
    """Move the given items on until every one has ended (or, without ``wait``, one round).

    A request that could not be submitted and went back to the queue (the provider could not
    be reached, or refused the key) raises the provider's exception, as ``guard.batch`` does:
    waiting would only send it again, and again, until ``timeout_s``."""

    def load() -> list[Item]:
        return ctx.store.by_ids(ids)

    def step() -> Steps[list[str]]:
        pending = [item for item in load() if not item.ended]
        if not pending:
            return []
        yield from recover(ctx, [i for i in pending if i.state == "submitting"])
        queued = [i.id for i in load() if i.state == "queued"]
        if queued:
            submitted = yield from _submit_queued(ctx, FlushReport(), only=queued)
            for done in submitted:
                if done.error is not None and done.requeued:
                    raise done.error
        jobs = sorted({i.batch_id for i in load() if i.state == "submitted" and i.batch_id})
        for job in jobs:
            yield from poll(ctx, job)
        return sorted({i.batch_id or i.state for i in load() if not i.ended})

    if wait:
        later = f"guard.resolve({handle!r}, client)"
        yield from _wait(ctx, step, handle=handle, later=later)
    else:
        yield from step()
    return load()
