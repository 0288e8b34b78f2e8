"""What every command shares: the one-line error, options, dates, money, tables and output.

Output is rich (colour, boxed tables, progress bars) when stdout is a terminal and plain text
when it is piped or redirected, so ``costguard report | grep`` and scripts see stable columns.
``NO_COLOR`` and ``COSTGUARD_PLAIN=1`` force plain output. Ledger strings (feature, user and
model names) reach a table as text only: never as rich markup, and with control characters
escaped, so a name cannot restyle the terminal or break a line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

if TYPE_CHECKING:
    from ..pricing import PriceTable

__all__ = [
    "DATE_HELP",
    "CLIError",
    "add_json_option",
    "add_ledger_option",
    "add_range_options",
    "bar",
    "cost_text",
    "emit_json",
    "emit_table",
    "ledger_path",
    "output_file",
    "percent",
    "plain",
    "price_table",
    "progress",
    "rich_output",
    "table",
    "time_range",
    "usd",
    "when",
]

T = TypeVar("T")

_RELATIVE = re.compile(r"^(\d+)([dhw])$")
_UNITS = {"d": "days", "h": "hours", "w": "weeks"}
_BAD_DATE = "bad date {!r}: use YYYY-MM-DD, an ISO time, or 7d / 12h / 2w"
_LEDGER_HELP = "ledger file (default: $COSTGUARD_HOME or the user data dir)"
DATE_HELP = "YYYY-MM-DD (midnight UTC), an ISO time, or 7d / 12h / 2w ago"


class CLIError(Exception):
    """A problem the user can fix; printed as one line on stderr, exit code 2."""


# -- options ----------------------------------------------------------------------------------


def add_ledger_option(parser: argparse.ArgumentParser, help_text: str = _LEDGER_HELP) -> None:
    """The ``--ledger PATH`` option of every command that reads the ledger."""
    parser.add_argument("--ledger", metavar="PATH", help=help_text)


def add_json_option(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
    help_text: str = "machine-readable output",
) -> None:
    """The ``--json`` flag."""
    parser.add_argument("--json", action="store_true", help=help_text)


def add_range_options(parser: argparse.ArgumentParser) -> None:
    """``--since WHEN`` and ``--until WHEN``: the calls with ``since <= ts < until``."""
    parser.add_argument("--since", metavar="WHEN", help=f"calls at or after: {DATE_HELP}")
    parser.add_argument("--until", metavar="WHEN", help=f"calls before: {DATE_HELP}")


# -- dates ------------------------------------------------------------------------------------


def when(text: str, *, now: datetime | None = None) -> datetime:
    """``2026-11-01`` (midnight UTC), an ISO time (UTC unless it says otherwise), or a relative
    ``7d`` / ``12h`` / ``2w`` ago; always returned in UTC. CLIError if it is none of those or
    falls outside the years 1 to 9999."""
    cleaned = text.strip()
    try:
        match = _RELATIVE.match(cleaned)
        if match:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return (now or datetime.now(UTC)).astimezone(UTC) - delta
        parsed = datetime.fromisoformat(cleaned)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise CLIError(_BAD_DATE.format(text)) from None
    except OverflowError:
        raise CLIError(f"date {text!r} is out of range") from None


def time_range(
    since: str | None, until: str | None, *, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` as UTC times (``since <= ts < until``); CLIError unless
    ``since`` comes first. Relative forms count back from one ``now`` (default: the clock)."""
    now = now or datetime.now(UTC)
    start = when(since, now=now) if since else None
    end = when(until, now=now) if until else None
    if start is not None and end is not None and start >= end:
        raise CLIError(f"--since ({since}) must be before --until ({until})")
    return start, end


# -- money and numbers ------------------------------------------------------------------------


def usd(value: Decimal | None) -> str:
    """Money for people: cents above a dollar, four places above a cent, in full below; the
    sign in front of the dollar (``-$0.0500``)."""
    if value is None:
        return "unpriced"
    if value < 0:
        return f"-{usd(-value)}"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= Decimal("0.01"):
        return f"${value:.4f}"
    return f"${plain(value)}"  # small amounts in full: down to the picodollar


def cost_text(value: Decimal, unpriced: int) -> str:
    """:func:`usd`, marked ``+ unpriced`` when some of its calls had no price (so the real
    amount is higher)."""
    return f"{usd(value)} + unpriced" if unpriced else usd(value)


def plain(value: Decimal) -> str:
    """A Decimal in positional notation, without trailing zeros (never ``6E-8``)."""
    text = f"{value.normalize():f}"
    return text if text not in ("-0", "") else "0"


def percent(fraction: float) -> str:
    """``75%``, ``33.3%``: one decimal, none when it is zero."""
    return f"{fraction * 100:.1f}".removesuffix(".0") + "%"


def bar(fraction: Decimal | float, width: int = 20) -> str:
    """``[#####...............] 25%``"""
    filled = max(0, min(width, int(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction:.0%}"


# -- files ------------------------------------------------------------------------------------


def ledger_path(given: str | None, *, must_exist: bool = True) -> Path:
    """The ledger a command reads: ``--ledger``, else ``$COSTGUARD_HOME`` or the data dir."""
    from ..ledger import default_ledger_path

    path = Path(given) if given else default_ledger_path()
    if must_exist and not path.exists():
        raise CLIError(f"no ledger at {path}: run some guarded calls first, or pass --ledger PATH")
    if must_exist and not path.is_file():
        raise CLIError(f"{path} is not a ledger file")
    return path


def price_table(prices_file: str | None) -> PriceTable:
    """The shipped price table, with ``--prices FILE`` added when given."""
    from ..pricing import PriceTable

    table = PriceTable.default()
    return table.merged(prices_file) if prices_file else table


@contextmanager
def output_file(path: Path) -> Iterator[TextIO]:
    """``path`` for writing, through an owner-only temporary file beside it that is renamed
    into place only when the block completes, so a failure never leaves half a file behind.
    An existing path that is not a regular file (``/dev/stdout``, a named pipe) is written
    straight into. An ``OSError`` is a CLIError naming ``path``."""
    if path.exists() and not path.is_file():
        try:
            with open(path, "w", encoding="utf-8", newline="") as special:
                yield special
        except OSError as exc:
            raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            yield file
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- output -----------------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (money must already be exact decimal strings)."""
    print(json.dumps(data, indent=2))


def rich_output() -> bool:
    """Whether stdout is a terminal that should get colour, boxes and progress bars."""
    if os.environ.get("NO_COLOR") or os.environ.get("COSTGUARD_PLAIN"):
        return False
    return sys.stdout.isatty()


def _printable(cell: str) -> str:
    """``cell`` with control characters (newlines, tabs, escapes) written as ``\\n``-style
    escapes, so a name from the ledger cannot break a line or drive the terminal."""
    if all(c.isprintable() for c in cell):
        return cell
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cell)


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (CJK) characters two, combining marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _pad(text: str, width: int, *, right: bool) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _numeric(cell: str) -> bool:
    """Whether a cell reads as a number (right-aligned): ``$1.20``, ``1,024``, ``-3``, ``40%``."""
    return cell not in ("", "-") and (cell[0] in "$0123456789-" or cell.endswith("%"))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: left-aligned text, right-aligned numbers and money."""
    body = [[_printable(c) for c in row] for row in rows]
    widths = [max([_width(h), *(_width(r[i]) for r in body)]) for i, h in enumerate(headers)]
    line = "  ".join(_pad(h, w, right=False) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    for row in body:
        cells = [_pad(c, w, right=_numeric(c)) for c, w in zip(row, widths, strict=True)]
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
    from rich.text import Text

    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(headers))]
    grid = Table(title=Text(title) if title else None, title_justify="left", header_style="bold")
    for header, right in zip(headers, numeric, strict=True):
        grid.add_column(Text(header), justify="right" if right else "left")
    for row in rows:
        grid.add_row(*(Text(_printable(cell)) for cell in row))  # Text: never read as markup
    Console().print(grid)


def progress(items: Iterable[T], *, total: int | None, label: str) -> Iterator[T]:
    """``items``, with a progress bar on stderr while a terminal watches (else silent)."""
    if not (sys.stderr.isatty() and not os.environ.get("COSTGUARD_PLAIN")):
        yield from items
        return
    from rich.console import Console
    from rich.progress import Progress

    # On stderr's own console, and leaving sys.stdout alone: the output may be on stdout.
    console = Console(stderr=True)
    with Progress(
        console=console, transient=True, redirect_stdout=False, redirect_stderr=False
    ) as bar_:
        task = bar_.add_task(label, total=total)
        for item in items:
            yield item
            bar_.advance(task)
