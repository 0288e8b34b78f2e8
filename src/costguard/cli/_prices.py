"""``costguard prices``: the shipped price table."""

from __future__ import annotations

import argparse

from ._common import CLIError, emit_table

__all__ = ["register"]


def _cmd_prices(args: argparse.Namespace) -> int:
    from ..pricing import PriceTable

    table = PriceTable.default()
    if args.model:
        price = table.get(args.model)
        if price is None:
            raise CLIError(
                f"no price for model {args.model!r} (try: costguard prices --search TEXT)"
            )
        names = [args.model]
    else:
        needle = (args.search or "").lower()
        names = sorted(n for n in table if needle in n.lower())
        if not names:
            raise CLIError(f"no model matches {args.search!r}")
    rows = []
    for name in names:
        p = table.require(name)
        rows.append(
            [
                name,
                p.provider,
                f"${p.base.input}",
                f"${p.base.output}",
                f"${p.base.cache_read}",
                f"${p.batch.input}" if p.batch else "-",
                f"{p.context_window:,}" if p.context_window else "-",
                f"{p.max_output_tokens:,}" if p.max_output_tokens else "-",
            ]
        )
    emit_table(
        ["model", "provider", "input", "output", "cached in", "batch in", "context", "max out"],
        rows,
        title=f"prices in USD per million tokens (table {table.version})",
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prices = commands.add_parser("prices", help="the shipped price table")
    prices.add_argument(
        "model", nargs="?", help="one model (snapshot names resolve to their family)"
    )
    prices.add_argument("--search", help="models whose name contains TEXT")
    prices.set_defaults(func=_cmd_prices)
