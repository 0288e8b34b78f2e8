"""``costguard budget status``: budgets recorded in the ledger."""

from __future__ import annotations

import argparse
import json

from ._common import CLIError, bar, emit_table, ledger_path, plain, usd

__all__ = ["register"]


def _cmd_status(args: argparse.Namespace) -> int:
    from ..spend._budget import BudgetBook

    path = ledger_path(args.ledger)
    books = BudgetBook.published(path)
    statuses = [status for book in books for status in book.status()]
    for book in books:
        book.close()
    if args.json:
        rows = [
            {
                "budget": s.budget,
                "key": s.key,
                "period": s.period,
                "limit_usd": plain(s.limit),
                "spent_usd": plain(s.spent),
                "reserved_usd": plain(s.reserved),
                "remaining_usd": plain(s.remaining),
            }
            for s in statuses
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not statuses:
        raise CLIError(f"no budgets are recorded in {path}")
    body = [
        [
            s.budget,
            s.key or "-",
            s.period,
            usd(s.spent),
            usd(s.reserved),
            usd(s.remaining),
            bar((s.spent + s.reserved) / s.limit),
        ]
        for s in statuses
    ]
    emit_table(["budget", "key", "period", "spent", "reserved", "remaining", "used"], body)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    budget = commands.add_parser("budget", help="budgets recorded in the ledger")
    budget_commands = budget.add_subparsers(dest="budget_command", required=True)
    status = budget_commands.add_parser("status", help="spent, reserved and remaining")
    status.add_argument("--ledger", help="ledger file (default: $COSTGUARD_HOME or the data dir)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_status)
