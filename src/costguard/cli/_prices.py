"""``costguard prices [MODEL | --search TEXT]`` and ``costguard prices check``.

``check`` is read as a word in the MODEL position rather than as an argparse subcommand, so
that ``costguard prices gpt-4o`` keeps working beside it (argparse cannot mix an optional
positional with sub-parsers). No priced model is called ``check``; options that belong to
only one form are refused in the other, with a line saying so.
"""

from __future__ import annotations

import argparse

from ._common import (
    CLIError,
    add_json_option,
    add_ledger_option,
    emit_json,
    emit_table,
    ledger_path,
    plain,
    price_table,
)

__all__ = ["register"]

_CHECK = "check"


def _cmd_prices(args: argparse.Namespace) -> int:
    if args.model == _CHECK:
        if args.search is not None:
            raise CLIError("--search does not go with `costguard prices check`")
        return _cmd_check(args)
    if args.ledger is not None:
        raise CLIError("--ledger goes with `costguard prices check`")
    if args.model and args.search is not None:
        raise CLIError("give a MODEL or --search TEXT, not both")
    table = price_table(args.prices)
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
    if args.json:
        models = table.as_dict()["models"]
        out = {name: models[table.require(name).model] for name in names}
        emit_json({"version": table.version, "models": out})
        return 0
    rows = []
    for name in names:
        p = table.require(name)
        rows.append(
            [
                name,
                p.provider,
                f"${plain(p.base.input)}",
                f"${plain(p.base.output)}",
                f"${plain(p.base.cache_read)}",
                f"${plain(p.batch.input)}" if p.batch else "-",
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


def _cmd_check(args: argparse.Namespace) -> int:
    """Models in the ledger without a price: exit 0 when there are none, else 1."""
    from ..ledger._maintenance import model_calls, status

    path = ledger_path(args.ledger)
    table = price_table(args.prices)
    seen = model_calls(path)
    unpriced = [m for m in seen if table.get(m.model) is None]
    recorded_unpriced = status(path).unpriced
    if args.json:
        out = {
            "ledger": str(path),
            "price_version": table.version,
            "models_seen": len(seen),
            "calls_recorded_unpriced": recorded_unpriced,
            "unpriced": [
                {"model": m.model, "calls": m.calls, "requested": m.requested, "served": m.served}
                for m in unpriced
            ],
        }
        emit_json(out)
        return 1 if unpriced else 0
    if not seen:
        print(f"no models in the ledger at {path} yet: nothing to check")
        return 0
    if not unpriced:
        print(f"all {len(seen)} models in the ledger have a price in table {table.version}")
        if recorded_unpriced:
            print(
                f"({recorded_unpriced:,} calls were recorded unpriced before their price "
                "was known; their cost stays unknown)"
            )
        return 0
    body = [[m.model, f"{m.calls:,}", f"{m.requested:,}", f"{m.served:,}"] for m in unpriced]
    emit_table(
        ["model", "calls", "as requested", "as served"],
        body,
        title=f"models in the ledger with no price in table {table.version}",
    )
    print(f"\n{recorded_unpriced:,} calls in the ledger are recorded unpriced (never as $0).")
    print("Add prices with PriceTable.override() or a price file: see docs/pricing.md.")
    return 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser to ``commands``."""
    prices = commands.add_parser(
        "prices",
        help="the shipped price table; `prices check` finds unpriced models in the ledger",
        usage=(
            "costguard prices [-h] [MODEL | --search TEXT] [--prices FILE] [--json]\n"
            "       costguard prices check [--ledger PATH] [--prices FILE] [--json]"
        ),
        description=(
            "Show the price table: one model, the models whose name contains TEXT, or all. "
            "`costguard prices check` lists the models in the ledger (requested or served) "
            "that have no price, with their call counts; it exits 1 if there are any, so "
            "it can guard a CI job."
        ),
    )
    prices.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="one model (snapshot names resolve to their family), or `check`",
    )
    prices.add_argument("--search", metavar="TEXT", help="models whose name contains TEXT")
    add_ledger_option(
        prices, "with check: the ledger (default: $COSTGUARD_HOME or the user data dir)"
    )
    prices.add_argument("--prices", metavar="FILE", help="a price file to add to the shipped table")
    add_json_option(prices)
    prices.set_defaults(func=_cmd_prices)
