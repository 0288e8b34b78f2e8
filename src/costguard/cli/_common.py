"""What every command shares: the one-line error, dates, money, tables and progress.

Output is rich (colour, boxed tables, progress bars) when stdout is a terminal and plain text
when it is piped or redirected, so ``costguard report | grep`` and scripts see stable columns.
``NO_COLOR`` and ``COSTGUARD_PLAIN=1`` force plain output.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

__all__ = [
    "CLIError",
    "bar",
    "emit_table",
    "ledger_path",
    "plain",
    "progress",
    "rich_output",
    "table",
    "usd",
    "when",
]

T = TypeVar("T")

_RELATIVE = re.compile(r"^(\d+)([dhw])$")


class CLIError(Exception):
    """A problem the user can fix; printed as one line on stderr, exit code 2."""


def when(text: str, *, now: datetime | None = None) -> datetime:
    """``2026-11-01``, an ISO timestamp, or a relative ``7d`` / ``12h`` / ``2w`` (ago)."""
    match = _RELATIVE.match(text.strip())
    if match:
        count, unit = int(match.group(1)), match.group(2)
        delta = {
            "d": timedelta(days=count),
            "h": timedelta(hours=count),
            "w": timedelta(weeks=count),
        }
        return (now or datetime.now(UTC)) - delta[unit]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(
            f"bad date {text!r}: use YYYY-MM-DD, an ISO time, or 7d / 12h / 2w"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def usd(value: Decimal | None) -> str:
    """Money for people: cents above a dollar, four places above a cent, in full below."""
    if value is None:
        return "unpriced"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= Decimal("0.01"):
        return f"${value:.4f}"
    return f"${plain(value)}"  # small amounts in full: down to the picodollar


def plain(value: Decimal) -> str:
    """A Decimal in positional notation, without trailing zeros (never ``6E-8``)."""
    text = f"{value.normalize():f}"
    return text if text not in ("-0", "") else "0"


def bar(fraction: Decimal | float, width: int = 20) -> str:
    """``[#####...............] 25%``"""
    filled = max(0, min(width, int(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction:.0%}"


def ledger_path(given: str | None, *, must_exist: bool = True) -> Path:
    """The ledger a command reads: ``--ledger``, else ``$COSTGUARD_HOME`` or the data dir."""
    from ..ledger import default_ledger_path

    path = Path(given) if given else default_ledger_path()
    if must_exist and not path.exists():
        raise CLIError(f"no ledger at {path}: run some guarded calls first, or pass --ledger PATH")
    if must_exist and not path.is_file():
        raise CLIError(f"{path} is not a ledger file")
    return path


def rich_output() -> bool:
    """Whether stdout is a terminal that should get colour, boxes and progress bars."""
    if os.environ.get("NO_COLOR") or os.environ.get("COSTGUARD_PLAIN"):
        return False
    return sys.stdout.isatty()


def _numeric(cell: str) -> bool:
    """Whether a cell reads as a number (right-aligned): ``$1.20``, ``1,024``, ``-3``, ``40%``."""
    return cell not in ("", "-") and (cell[0] in "$0123456789-" or cell.endswith("%"))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: left-aligned text, right-aligned numbers and money."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    for row in rows:
        cells = [
            c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def emit_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """Print a table: a rich one in a terminal, :func:`table` text otherwise."""
    if not rich_output():
        if title:
            print(title)
        print(table(headers, rows))
        return
    from rich.console import Console
    from rich.table import Table

    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(headers))]
    grid = Table(title=title, title_justify="left", header_style="bold")
    for header, right in zip(headers, numeric, strict=True):
        grid.add_column(header, justify="right" if right else "left")
    for row in rows:
        grid.add_row(*row)
    Console().print(grid)


def progress(items: Iterable[T], *, total: int | None, label: str) -> Iterator[T]:
    """``items``, with a progress bar on stderr while a terminal watches (else silent)."""
    if not (sys.stderr.isatty() and not os.environ.get("COSTGUARD_PLAIN")):
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar_:
        task = bar_.add_task(label, total=total)
        for item in items:
            yield item
            bar_.advance(task)
