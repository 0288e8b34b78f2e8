"""``costguard batch flush|status``: the deferred queue, from the shell or cron.

``flush`` submits what ``guard.defer`` queued, for each provider that has queued or running
requests, and collects batches that have ended. It builds ``openai.OpenAI()`` /
``anthropic.Anthropic()`` from the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...);
``--fake`` uses costguard's FakeProvider instead (demos and tests). Budgets recorded in the
ledger by the application's guard apply to what it submits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import CLIError, emit_table, ledger_path

if TYPE_CHECKING:
    from .._client import CostGuardClient
    from ..batch import BatchProgress

__all__ = ["register"]

_PROVIDERS = ("openai", "anthropic")


def _guard(path: Path) -> CostGuardClient:
    """A guard on the ledger, with the budgets the application's guard recorded there.

    The budgets of scopes are left out: they apply only to requests deferred inside such a
    scope, and each of those carries its own."""
    from .. import CostGuardClient
    from ..spend._budget import BudgetBook

    books = BudgetBook.published(path, include_scoped=False)
    try:
        budgets = [budget for book in books for budget in book.budgets]
        zone = str(books[0].timezone) if books else "UTC"
    finally:
        for book in books:
            book.close()
    return CostGuardClient(ledger=path, budgets=budgets, budget_timezone=zone)


def _providers_with_work(guard: CostGuardClient) -> list[str]:
    from ..batch._store import BatchStore

    store = BatchStore.for_guard(guard)
    busy = {p for state, p, _ in store.counts() if state in ("queued", "submitting", "submitted")}
    return [p for p in _PROVIDERS if p in busy]


def _client(provider: str, fake: Any) -> Any:
    if fake is not None:
        return fake.openai() if provider == "openai" else fake.anthropic()
    try:
        if provider == "openai":
            import openai

            return openai.OpenAI()
        import anthropic

        return anthropic.Anthropic()
    except Exception as exc:  # the SDKs refuse to start without a key
        variable = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
        raise CLIError(f"cannot build a {provider} client ({exc}); set {variable}") from None


@contextmanager
def _progress_bar() -> Iterator[Callable[[BatchProgress], None] | None]:
    """A progress bar per batch on stderr while a terminal watches; nothing otherwise."""
    if not sys.stderr.isatty() or os.environ.get("COSTGUARD_PLAIN"):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def show(progress: BatchProgress) -> None:
            task = tasks.get(progress.batch_id)
            if task is None:
                task = tasks[progress.batch_id] = bar.add_task(progress.batch_id, total=None)
            bar.update(
                task,
                completed=progress.done,
                total=progress.total or None,
                description=f"{progress.batch_id} {progress.status}",
            )

        yield show


def _cmd_flush(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions

    path = ledger_path(args.ledger)
    fake = None
    if args.fake:
        from ..testing import FakeProvider

        fake = FakeProvider()
    guard = _guard(path)
    try:
        providers = [args.provider] if args.provider else _providers_with_work(guard)
        rows = []
        errors: list[str] = []
        with _progress_bar() as show:
            options = BatchOptions(on_progress=show)
            if args.timeout is not None:
                options = dataclasses.replace(options, timeout_s=args.timeout)
            if fake is not None:  # fake batches end after a poll or two: never wait for them
                options = dataclasses.replace(options, sleep=lambda seconds: None)
            for provider in providers:
                report = guard.flush_deferred(
                    _client(provider, fake), wait=args.wait, options=options
                )
                errors.extend(f"{provider}: {e}" for e in report.errors)
                rows.append(
                    [
                        provider,
                        str(report.submitted),
                        str(len(report.batch_ids)),
                        str(report.cache_hits),
                        str(report.held),
                        str(report.finished),
                        str(report.failed),
                        str(len(report.open)),
                    ]
                )
    finally:
        guard.close()
    if not rows:
        print("nothing queued")
        return 0
    headers = ["provider", "submitted", "batches", "cache hits", "held by budget"]
    emit_table([*headers, "finished", "failed", "batches open"], rows)
    for error in errors:
        print(f"costguard: {error}", file=sys.stderr)
    return 1 if errors else 0


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cmd_status(args: argparse.Namespace) -> int:
    from ..batch._store import BatchStore

    store = BatchStore(ledger_path(args.ledger))
    try:
        where, params = "1 = 1", []
        if args.state:
            where, params = "state = ?", [args.state]
        items = store.items(where, params, order="queued_at DESC, id DESC")
        counts = store.counts()
    finally:
        store.close()
    shown = items if args.limit is None else items[: args.limit]
    shown.reverse()
    priorities = {0: "high", 1: "normal", 2: "low"}
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "handle": i.id,
                        "state": i.state,
                        "provider": i.provider,
                        "operation": i.operation,
                        "model": i.model,
                        "priority": priorities.get(i.priority, str(i.priority)),
                        "batch_id": i.batch_id,
                        "cache": i.cache,
                        "queued_at": _when(i.queued_at),
                        "ended_at": _when(i.ended_at),
                        "error": json.loads(i.error)["message"] if i.error else None,
                    }
                    for i in shown
                ],
                indent=2,
            )
        )
        return 0
    if not counts:
        print("no batch requests in this ledger")
        return 0
    totals = sorted(counts, key=lambda c: (_STATES.index(c[0]) if c[0] in _STATES else 9, c[1]))
    emit_table(["state", "provider", "requests"], [[s, p, f"{n:,}"] for s, p, n in totals])
    print()
    emit_table(
        ["handle", "state", "provider", "model", "priority", "batch", "queued at", "ended at"],
        [
            [
                i.id,
                i.state + (" (cache)" if i.cache == "exact" else ""),
                i.provider,
                i.model or "",
                priorities.get(i.priority, str(i.priority)),
                i.batch_id or "",
                _when(i.queued_at),
                _when(i.ended_at),
            ]
            for i in shown
        ],
    )
    if len(shown) < len(items):
        print(f"({len(items) - len(shown)} older requests not shown; --limit to change)")
    return 0


_STATES = ("queued", "submitting", "submitted", "finished", "failed")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser to ``commands``."""
    batch = commands.add_parser("batch", help="the deferred batch queue")
    batch_commands = batch.add_subparsers(dest="batch_command", required=True)

    flush = batch_commands.add_parser(
        "flush", help="submit queued requests as batches; collect batches that ended"
    )
    flush.add_argument("--ledger", help="ledger file (default: $COSTGUARD_HOME or data dir)")
    flush.add_argument("--provider", choices=_PROVIDERS, help="only this provider's queue")
    flush.add_argument("--wait", action="store_true", help="poll until every batch has ended")
    flush.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    flush.add_argument(
        "--fake", action="store_true", help="use costguard's FakeProvider (demo, tests)"
    )
    flush.set_defaults(func=_cmd_flush)

    status = batch_commands.add_parser("status", help="queued, submitted, finished, failed")
    status.add_argument("--ledger", help="ledger file (default: $COSTGUARD_HOME or data dir)")
    status.add_argument("--state", choices=_STATES, help="only requests in this state")
    status.add_argument("--limit", type=int, default=50, help="newest requests shown (50)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_status)
