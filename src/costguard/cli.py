"""The ``costguard`` command: demo, report, prices, cache."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import ExactCache
    from .ledger import SummaryRow

__all__ = ["main"]

_RELATIVE = re.compile(r"^(\d+)([dhw])$")


class CLIError(Exception):
    """A problem the user can fix; printed as one line on stderr."""


def _when(text: str) -> datetime:
    """``2026-11-01``, an ISO timestamp, or a relative ``7d`` / ``12h`` / ``2w``."""
    match = _RELATIVE.match(text)
    if match:
        count, unit = int(match.group(1)), match.group(2)
        delta = {
            "d": timedelta(days=count),
            "h": timedelta(hours=count),
            "w": timedelta(weeks=count),
        }
        return datetime.now(UTC) - delta[unit]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(
            f"bad date {text!r}: use YYYY-MM-DD, an ISO time, or 7d / 12h / 2w"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _usd(value: Decimal | None) -> str:
    if value is None:
        return "unpriced"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= Decimal("0.01"):
        return f"${value:.4f}"
    return f"${_plain(value)}"  # small amounts in full: down to the picodollar


def _plain(value: Decimal) -> str:
    """A Decimal in positional notation, without trailing zeros (never ``6E-8``)."""
    text = f"{value.normalize():f}"
    return text if text not in ("-0", "") else "0"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        cells = [
            c.rjust(w) if c[:1] in "$0123456789" else c.ljust(w)
            for c, w in zip(row, widths, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _summary_table(rows: Sequence[SummaryRow], group_by: Sequence[str]) -> str:
    body = [
        [
            *(str(r.key.get(g) or "-") for g in group_by),
            str(r.calls),
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            _usd(r.cost_usd),
            str(r.errors),
            str(r.unpriced),
        ]
        for r in rows
    ]
    headers = [*group_by, "calls", "input tok", "output tok", "cost", "errors", "unpriced"]
    return _table(headers, body)


def _cmd_report(args: argparse.Namespace) -> int:
    from .ledger import Ledger, default_ledger_path

    path = Path(args.ledger) if args.ledger else default_ledger_path()
    if not path.exists():
        raise CLIError(f"no ledger at {path}: run some guarded calls first, or pass --ledger PATH")
    group_by = [g.strip() for g in args.group_by.split(",") if g.strip()]
    with Ledger(path) as ledger:
        try:
            since = _when(args.since) if args.since else None
            until = _when(args.until) if args.until else None
            rows = ledger.summary(group_by, since=since, until=until)
            by_cache = ledger.summary("cache", since=since, until=until)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **dict(r.key),
                        "calls": r.calls,
                        "errors": r.errors,
                        "unpriced": r.unpriced,
                        "cost_usd": _plain(r.cost_usd),
                        "saved_usd": _plain(r.saved_usd),
                        "input_tokens": r.input_tokens,
                        "output_tokens": r.output_tokens,
                        "cache_read_tokens": r.cache_read_tokens,
                        "cache_write_tokens": r.cache_write_tokens,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        raise CLIError(f"the ledger at {path} has no calls in that range")
    print(_summary_table(rows, group_by))
    total = sum((r.cost_usd for r in rows), Decimal(0))
    calls = sum(r.calls for r in rows)
    print(f"\ntotal: {_usd(total)} over {calls} calls")
    hits = sum(r.calls for r in by_cache if r.key.get("cache") in ("exact", "semantic"))
    saved = sum((r.saved_usd for r in by_cache), Decimal(0))
    share = f"{hits / calls:.0%}"
    print(f"cache: {hits} of {calls} calls answered from the cache ({share}), saved {_usd(saved)}")
    return 0


def _cmd_prices(args: argparse.Namespace) -> int:
    from .pricing import PriceTable

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
    print(f"prices in USD per million tokens (table {table.version})")
    print(
        _table(
            ["model", "provider", "input", "output", "cached in", "batch in", "context", "max out"],
            rows,
        )
    )
    return 0


def _exact_cache(args: argparse.Namespace) -> ExactCache:
    from .cache import ExactCache

    return ExactCache(args.dir) if args.dir else ExactCache()


def _semantic_indexes(args: argparse.Namespace) -> list[Any]:
    """The semantic cache's per-embedder indexes (they need numpy, loaded only if present)."""
    from ._paths import default_cache_dir

    base = Path(args.semantic_dir) if args.semantic_dir else default_cache_dir() / "semantic"
    if not base.is_dir():
        return []
    from .cache._index import PartitionIndex

    return [PartitionIndex(d, max_entries=1) for d in sorted(base.iterdir()) if d.is_dir()]


def _cmd_cache_stats(args: argparse.Namespace) -> int:
    stats = _exact_cache(args).stats()
    semantic = [index.stats() for index in _semantic_indexes(args)]
    stats["semantic_entries"] = sum(s["entries"] for s in semantic)
    stats["semantic_bytes"] = sum(s["bytes"] for s in semantic)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    if not stats["usable"]:
        raise CLIError(f"the cache at {stats['directory']} cannot be opened")
    print(f"exact cache: {stats['directory']}")
    print(f"  entries: {stats['entries']:,}")
    print(f"  size:    {stats['bytes'] / 2**20:,.1f} MiB of {stats['size_limit'] / 2**20:,.0f} MiB")
    if semantic:
        print(f"semantic index: {stats['semantic_entries']:,} entries, ", end="")
        print(f"{stats['semantic_bytes'] / 2**20:,.1f} MiB")
    return 0


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    cache = _exact_cache(args)
    tag = f"t:{args.tenant}" if args.tenant else None
    removed = cache.clear(tag)
    for index in _semantic_indexes(args):
        index.clear(tag)
    whose = f" of tenant {args.tenant!r}" if args.tenant else ""
    print(f"removed {removed} cache entries{whose} from {cache.directory}")
    return 0


def _cmd_budget_status(args: argparse.Namespace) -> int:
    from .ledger import default_ledger_path
    from .spend._budget import BudgetBook

    path = Path(args.ledger) if args.ledger else default_ledger_path()
    if not path.exists():
        raise CLIError(f"no ledger at {path}: pass --ledger PATH")
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
                "limit_usd": _plain(s.limit),
                "spent_usd": _plain(s.spent),
                "reserved_usd": _plain(s.reserved),
                "remaining_usd": _plain(s.remaining),
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
            _usd(s.spent),
            _usd(s.reserved),
            _usd(s.remaining),
            _bar((s.spent + s.reserved) / s.limit),
        ]
        for s in statuses
    ]
    print(_table(["budget", "key", "period", "spent", "reserved", "remaining", "used"], body))
    return 0


def _bar(fraction: Decimal, width: int = 20) -> str:
    filled = min(width, int(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction:.0%}"


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args.ledger)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="costguard", description="LLM spend control.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a mixed workload through the fake provider")
    demo.add_argument("--ledger", help="ledger file to write (default: a temporary one)")
    demo.set_defaults(func=_cmd_demo)

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

    cache = commands.add_parser("cache", help="the exact response cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    stats = cache_commands.add_parser("stats", help="entries and size")
    stats.add_argument("--dir", help="exact cache directory (default: in costguard's cache dir)")
    stats.add_argument("--semantic-dir", help="semantic cache directory (default: likewise)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=_cmd_cache_stats)
    clear = cache_commands.add_parser("clear", help="remove entries")
    clear.add_argument("--dir", help="exact cache directory (default: in costguard's cache dir)")
    clear.add_argument("--semantic-dir", help="semantic cache directory (default: likewise)")
    clear.add_argument("--tenant", help="only this tenant's entries")
    clear.set_defaults(func=_cmd_cache_clear)

    budget = commands.add_parser("budget", help="budgets recorded in the ledger")
    budget_commands = budget.add_subparsers(dest="budget_command", required=True)
    status = budget_commands.add_parser("status", help="spent, reserved and remaining")
    status.add_argument("--ledger", help="ledger file (default: $COSTGUARD_HOME or the data dir)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_budget_status)

    prices = commands.add_parser("prices", help="the shipped price table")
    prices.add_argument(
        "model", nargs="?", help="one model (snapshot names resolve to their family)"
    )
    prices.add_argument("--search", help="models whose name contains TEXT")
    prices.set_defaults(func=_cmd_prices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `costguard report | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CLIError as exc:
        print(f"costguard: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a library error: one line, not a traceback
        from ._errors import CostGuardError

        if isinstance(exc, CostGuardError):
            print(f"costguard: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
