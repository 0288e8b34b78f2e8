"""``costguard report``: spend from the ledger, grouped."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._common import CLIError, emit_table, ledger_path, plain, table, usd, when

if TYPE_CHECKING:
    from ..ledger import SummaryRow

__all__ = ["register", "summary_table"]


def _summary_rows(rows: Sequence[SummaryRow], group_by: Sequence[str]) -> list[list[str]]:
    return [
        [
            *(str(r.key.get(g) or "-") for g in group_by),
            str(r.calls),
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            usd(r.cost_usd),
            str(r.errors),
            str(r.unpriced),
        ]
        for r in rows
    ]


def _summary_headers(group_by: Sequence[str]) -> list[str]:
    return [*group_by, "calls", "input tok", "output tok", "cost", "errors", "unpriced"]


def summary_table(rows: Sequence[SummaryRow], group_by: Sequence[str]) -> str:
    """Summary rows as a plain-text table."""
    return table(_summary_headers(group_by), _summary_rows(rows, group_by))


def _cmd_report(args: argparse.Namespace) -> int:
    from ..ledger import Ledger

    path = ledger_path(args.ledger)
    group_by = [g.strip() for g in args.group_by.split(",") if g.strip()]
    since = when(args.since) if args.since else None
    until = when(args.until) if args.until else None
    with Ledger(path) as ledger:
        try:
            rows = ledger.summary(group_by, since=since, until=until)
            by_cache = ledger.summary("cache", since=since, until=until)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.json:
        out: list[dict[str, Any]] = [
            {
                **dict(r.key),
                "calls": r.calls,
                "errors": r.errors,
                "unpriced": r.unpriced,
                "cost_usd": plain(r.cost_usd),
                "saved_usd": plain(r.saved_usd),
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cache_read_tokens": r.cache_read_tokens,
                "cache_write_tokens": r.cache_write_tokens,
            }
            for r in rows
        ]
        print(json.dumps(out, indent=2))
        return 0
    if not rows:
        raise CLIError(f"the ledger at {path} has no calls in that range")
    emit_table(_summary_headers(group_by), _summary_rows(rows, group_by))
    total = sum((r.cost_usd for r in rows), Decimal(0))
    calls = sum(r.calls for r in rows)
    print(f"\ntotal: {usd(total)} over {calls} calls")
    hits = sum(r.calls for r in by_cache if r.key.get("cache") in ("exact", "semantic"))
    saved = sum((r.saved_usd for r in by_cache), Decimal(0))
    share = f"{hits / calls:.0%}"
    print(f"cache: {hits} of {calls} calls answered from the cache ({share}), saved {usd(saved)}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="spend from the ledger, grouped")
    report.add_argument(
        "--ledger", help="ledger file (default: $COSTGUARD_HOME or the user data dir)"
    )
    report.add_argument(
        "--group-by",
        default="model",
        help="comma-separated: model, feature, user, tenant, provider, operation, day, ...",
    )
    report.add_argument("--since", help="YYYY-MM-DD, ISO time, or 7d / 12h / 2w")
    report.add_argument("--until", help="YYYY-MM-DD, ISO time, or 7d / 12h / 2w")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(func=_cmd_report)
