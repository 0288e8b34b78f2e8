"""``costguard budget status``: budgets recorded in the ledger."""

from __future__ import annotations

import argparse
import sqlite3

from ._common import (
    CLIError,
    add_json_option,
    add_ledger_option,
    bar,
    emit_json,
    emit_table,
    ledger_path,
    plain,
    usd,
)

__all__ = ["register"]


def _cmd_status(args: argparse.Namespace) -> int:
    from .._errors import LedgerError
    from ..spend._budget import BudgetBook

    path = ledger_path(args.ledger)
    try:
        books = BudgetBook.published(path)
        try:
            statuses = [status for book in books for status in book.status()]
        finally:
            for book in books:
                book.close()
    except sqlite3.Error as exc:  # not a ledger, or a damaged one: a costguard error
        raise LedgerError(f"cannot read the budgets in ledger {path}: {exc}") from exc
    if args.json:
        emit_json(
            [
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
        )
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
    """Add this command's parser to ``commands``."""
    budget = commands.add_parser("budget", help="budgets recorded in the ledger")
    budget_commands = budget.add_subparsers(dest="budget_command", required=True)
    status = budget_commands.add_parser("status", help="spent, reserved and remaining")
    add_ledger_option(status)
    add_json_option(status)
    status.set_defaults(func=_cmd_status)
