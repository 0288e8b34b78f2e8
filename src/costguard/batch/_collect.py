"""Recovering lost submissions and collecting ended batches.

A request claimed by a process that died (its lease lapsed) is either adopted, when the provider
shows the batch that process created for it (OpenAI, by the attempt id in the batch's
metadata), or queued again; a request another process has claimed anew meanwhile is left to it
(every move of a claimed request checks the claim's attempt id). An ended batch's results are
read into its requests: each gets its ledger row first (a fixed row id, so a collection redone
after a crash writes nothing twice), then its final state in one transaction; only the process
whose transaction moved a request on settles its budget hold and fills the cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._errors import InvalidRequestError
from ._account import operation
from ._drivers import Result
from ._engine import Context
from ._requests import URLS
from ._run import Steps, notify
from ._store import BatchStore, Item, dumps
from ._types import BatchItemError

__all__ = ["collect", "decode_item", "poll", "recover"]


# -- recovering ----------------------------------------------------------------------------------


def recover(ctx: Context, items: Iterable[Item] | None = None) -> Steps[int]:
    """Items a dead process claimed: adopt the batch it created, or queue them again."""
    now = ctx.now()
    if items is None:
        where, args = ctx.mine()
        items = ctx.store.items(
            f"state = 'submitting' AND lease_until <= ? AND {where}", [now, *args]
        )
    stale = [i for i in items if i.state == "submitting" and (i.lease_until or 0) <= now]
    attempts: dict[str, list[Item]] = {}
    for item in stale:
        attempts.setdefault(item.attempt or "", []).append(item)
    for attempt, members in attempts.items():
        found = (yield from ctx.driver.find(ctx.client, attempt)) if attempt else None
        if found is not None:
            ctx.record_submitted(attempt, found, _endpoint(members[0]), len(members), None)
        else:  # unless another process has claimed them again meanwhile
            ctx.requeue({item.id: item.hold for item in members}, attempt or None)
    return len(stale)


# -- collecting ----------------------------------------------------------------------------------


def poll(ctx: Context, batch_id: str) -> Steps[tuple[int, int] | None]:
    """One look at a batch; collect it if it has ended. None while it runs; once it has
    ended, (finished, failed): how many of its requests this process moved on."""
    progress = yield from ctx.driver.poll(ctx.client, batch_id)
    yield from notify(ctx.options.on_progress, progress)
    if not progress.ended:
        with ctx.store.transaction() as conn:
            conn.execute(
                "UPDATE batch_jobs SET status = ? WHERE id = ?", (progress.status, batch_id)
            )
        return None
    return (yield from collect(ctx, batch_id, progress.status))


def collect(ctx: Context, batch_id: str, status: str) -> Steps[tuple[int, int]]:
    """Read an ended batch's results into its items: (finished, failed) by this process."""
    results, missing = yield from ctx.driver.results(ctx.client, batch_id)
    items = ctx.store.items("batch_id = ? AND state = 'submitted'", [batch_id])
    now = ctx.now()
    concluded = [
        _conclude(ctx, item, results.get(item.id, missing), batch_id, now) for item in items
    ]
    won: list[_Concluded] = []
    with ctx.store.transaction() as conn:
        for done in concluded:
            if BatchStore.update(conn, done.item.id, done.change, state="submitted"):
                won.append(done)
        conn.execute(
            "UPDATE batch_jobs SET status = ?, collected_at = ? WHERE id = ?",
            (status, now, batch_id),
        )
    for done in won:  # only the process that moved an item on settles it
        ctx.accounts.settle(done.item.hold, done.cost, ok=done.answer is not None)
        if done.answer is not None:
            ctx.accounts.store_answer(done.item, done.answer)
    yield from notify(ctx.options.on_step, "collected", batch_id)
    finished = sum(1 for done in won if done.answer is not None)
    return finished, len(won) - finished


def _conclude(ctx: Context, item: Item, result: Result, batch_id: str, now: float) -> _Concluded:
    """The item's final state for ``result``; writes its ledger row (idempotent)."""
    latency_ms = (now - (item.submitted_at or now)) * 1000.0
    op = operation(item.provider, item.operation)
    call = ctx.accounts.recorded_call(item)
    answer = None
    if result.body is not None:
        try:
            answer = op.rebuild(result.body)
        except Exception as exc:
            result = Result(error={"kind": "error", "message": f"unreadable answer: {exc}"})
    if answer is not None:
        cost = ctx.accounts.write_row(
            item, ctx.accounts.answered(op, answer, call), latency_ms=latency_ms, call=call
        )
        change = {
            "state": "finished",
            "result": dumps(result.body),
            "request": None,
            "ended_at": now,
        }
        return _Concluded(item, change, answer, cost)
    error = BatchItemError.from_json({**(result.error or {}), "batch_id": batch_id})
    ctx.accounts.write_row(item, ctx.accounts.failed(error), latency_ms=latency_ms, call=call)
    change = {
        "state": "failed",
        "error": dumps(error.to_json()),
        "request": None,
        "ended_at": now,
    }
    return _Concluded(item, change, None, None)


@dataclass(frozen=True, slots=True)
class _Concluded:
    """An item's final state, worked out before the transaction that records it."""

    item: Item
    change: dict[str, Any]
    answer: Any  # the SDK object, or None when the item failed
    cost: Decimal | None


def _endpoint(item: Item) -> str:
    return URLS.get(item.operation, "/v1/messages/batches")


def decode_item(item: Item, index: int | None = None) -> Any:
    """An ended item's answer (the SDK object) or its :class:`BatchItemError`."""
    if item.state == "finished" and item.result is not None:
        return operation(item.provider, item.operation).rebuild(json.loads(item.result))
    if item.state == "failed":
        data = json.loads(item.error or "{}")
        return BatchItemError.from_json(data, handle=item.id, index=index)
    raise InvalidRequestError(f"batch request {item.id} has not ended ({item.state})")
