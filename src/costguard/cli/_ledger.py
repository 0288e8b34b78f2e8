"""``costguard ledger path|status|tail|export|backup|prune``: look after the ledger file.

The work is done by :mod:`costguard.ledger._maintenance`; each command first commits the
rows that dead writers left in their journals, so it sees every finished call.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._common import (
    DATE_HELP,
    CLIError,
    add_json_option,
    add_ledger_option,
    add_range_options,
    emit_json,
    emit_table,
    ledger_path,
    output_file,
    plain,
    progress,
    time_range,
    usd,
    when,
)

if TYPE_CHECKING:
    from ..ledger._maintenance import Format

__all__ = ["register"]

_SUFFIXES: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


# -- path and status ------------------------------------------------------------------------


def _cmd_path(args: argparse.Namespace) -> int:
    print(ledger_path(None, must_exist=False))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..ledger._maintenance import status

    s = status(ledger_path(args.ledger))
    if args.json:
        out = {
            "path": str(s.path),
            "calls": s.calls,
            "errors": s.errors,
            "unpriced": s.unpriced,
            "first_call": s.first_call and s.first_call.isoformat(),
            "last_call": s.last_call and s.last_call.isoformat(),
            "cost_usd": plain(s.cost_usd),
            "saved_usd": plain(s.saved_usd),
            "size_bytes": s.size_bytes,
            "schema_version": s.schema_version,
            "schema_latest": s.schema_latest,
            "pending_rows": s.pending_rows,
            "created_at": s.created_at and s.created_at.isoformat(),
        }
        emit_json(out)
        return 0
    if s.schema_version == s.schema_latest:
        schema = f"{s.schema_version} (current)"
    else:
        schema = f"{s.schema_version} (this costguard writes {s.schema_latest})"
    lines = [
        ("ledger", str(s.path)),
        ("calls", f"{s.calls:,} ({_plural(s.errors, 'error')}, {s.unpriced:,} unpriced)"),
        ("first call", _moment(s.first_call)),
        ("last call", _moment(s.last_call)),
        ("spend", f"{usd(s.cost_usd)} (the cache saved {usd(s.saved_usd)})"),
        ("size on disk", _size(s.size_bytes)),
        ("schema version", schema),
        ("pending rows", f"{s.pending_rows:,} journalled, not yet committed"),
        ("created", _moment(s.created_at)),
    ]
    for label, value in lines:
        print(f"{label + ':':<16}{value}")
    return 0


# -- tail -----------------------------------------------------------------------------------


def _count_option(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CLIError(f"{option} must be a whole number, got {text!r}") from None
    if value < 1:
        raise CLIError(f"{option} must be at least 1, got {value}")
    return value


def _cmd_tail(args: argparse.Namespace) -> int:
    from ..ledger._maintenance import recent_rows

    count = _count_option(args.lines, "-n/--lines")
    path = ledger_path(args.ledger)
    rows = recent_rows(path, count)
    if args.json:
        emit_json([_json_ready(r) for r in rows])
        return 0
    if not rows:
        raise CLIError(f"the ledger at {path} has no calls yet")
    body = []
    for r in rows:
        model = r.get("requested_model") or r.get("served_model") or "-"
        served = r.get("served_model")
        if served and served != model:
            model = f"{model} -> {served}"
        body.append(
            [
                r["ts"][:19].replace("T", " "),
                model,
                r.get("feature") or "-",
                r.get("user") or "-",
                f"{r.get('input_tokens') or 0:,}",
                f"{r.get('output_tokens') or 0:,}",
                usd(r.get("cost_usd")),
                r.get("cache") or "-",
                r.get("status") or "-",
            ]
        )
    headers = ["time (UTC)", "model", "feature", "user", "in tok", "out tok", "cost", "cache"]
    emit_table([*headers, "status"], body)
    return 0


# -- export ---------------------------------------------------------------------------------


def _format(args: argparse.Namespace) -> Format:
    from ..ledger._maintenance import FORMATS

    if args.format is None:
        suffix = Path(args.output).suffix.lower() if args.output else ""
        return _SUFFIXES.get(suffix, "csv")
    for known in FORMATS:
        if args.format.lower() == known:
            return known
    raise CLIError(f"unknown format {args.format!r}: use csv or jsonl")


@contextmanager
def _output(target: str | None, *, force: bool) -> Iterator[TextIO]:
    """stdout, or ``target`` written whole or not at all, owner-only (see ``output_file``)."""
    if target is None or target == "-":
        yield sys.stdout
        return
    path = Path(target)
    if path.is_dir() or target.endswith(("/", os.sep)):
        raise CLIError(f"cannot write {target}: it is a directory, give a file name")
    if path.is_file() and not force:
        raise CLIError(f"{path} already exists: pass --force to replace it")
    with output_file(path) as file:
        yield file


def _cmd_export(args: argparse.Namespace) -> int:
    from ..ledger._maintenance import columns, count_calls, iter_rows, settle, write_rows

    fmt = _format(args)
    since, until = time_range(args.since, args.until)
    path = ledger_path(args.ledger)
    settle(path)
    total = count_calls(path, since=since, until=until)
    names = columns(path)
    with _output(args.output, force=args.force) as out:
        rows = iter_rows(path, since=since, until=until, decode_json=fmt == "jsonl")
        # No bar when the rows themselves go to the terminal: it would be drawn over them.
        bar = not (out is sys.stdout and sys.stdout.isatty())
        watched = progress(rows, total=total, label="exporting") if bar else rows
        written = write_rows(watched, out, fmt, names)
    where = "stdout" if args.output in (None, "-") else args.output
    print(f"exported {written:,} calls to {where} ({fmt})", file=sys.stderr)
    return 0


# -- backup and prune -----------------------------------------------------------------------


def _cmd_backup(args: argparse.Namespace) -> int:
    from ..ledger._maintenance import backup

    path = ledger_path(args.ledger)
    dest = Path(args.dest)
    if args.dest.endswith(("/", os.sep)) and not dest.is_dir():  # meant a directory, as cp does
        raise CLIError(f"cannot write a backup to {args.dest}: no such directory")
    try:
        written, calls = backup(path, dest, force=args.force)
    except FileExistsError:
        raise CLIError(f"{args.dest} already exists: pass --force to replace it") from None
    except ValueError as exc:
        raise CLIError(f"cannot back up to {args.dest}: {exc}") from None
    except OSError as exc:
        raise CLIError(f"cannot write a backup to {args.dest}: {exc.strerror or exc}") from None
    print(f"backed up {calls:,} calls from {path} to {written}")
    return 0


def _confirmed(question: str) -> bool:
    """Ask on the terminal; only ``y`` or ``yes`` agrees."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _cmd_prune(args: argparse.Namespace) -> int:
    from ..ledger._maintenance import count_calls, prune, settle, vacuum

    before = when(args.before)
    path = ledger_path(args.ledger)
    settle(path)
    stamp = before.isoformat(timespec="seconds")
    doomed = count_calls(path, until=before)
    if doomed == 0:
        print(f"nothing to prune: no calls before {stamp} in {path}")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIError(
                f"refusing to delete {doomed:,} calls without --yes (no terminal to ask)"
            )
        if not _confirmed(f"delete {doomed:,} calls recorded before {stamp} from {path}?"):
            print("costguard: nothing removed", file=sys.stderr)
            return 1
    removed = prune(path, before)
    print(f"removed {removed:,} calls recorded before {stamp} from {path}")
    if args.vacuum:
        vacuum(path)
        print(f"vacuumed: the file is now {_size(path.stat().st_size)}")
    return 0


# -- the parser -----------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser to ``commands``."""
    ledger = commands.add_parser(
        "ledger",
        help="look after the ledger file: status, tail, export, backup, prune",
        description=(
            "Look after the spend ledger. Each command first commits rows that crashed "
            "writers left in their journals, so it sees every finished call."
        ),
    )
    sub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")

    path = sub.add_parser("path", help="print where the default ledger is")
    path.set_defaults(func=_cmd_path)

    status = sub.add_parser(
        "status", help="calls, time span, spend, size, schema version, pending rows"
    )
    add_ledger_option(status)
    add_json_option(status)
    status.set_defaults(func=_cmd_status)

    tail = sub.add_parser("tail", help="the most recent calls")
    tail.add_argument(
        "-n", "--lines", default="20", metavar="N", help="how many calls (default: 20)"
    )
    add_ledger_option(tail)
    add_json_option(tail, "every column, machine-readable")
    tail.set_defaults(func=_cmd_tail)

    export = sub.add_parser(
        "export",
        help="stream calls out as CSV or JSON lines",
        description=(
            "Write every column of the calls, oldest first, streamed (the ledger is never "
            "loaded into memory). Money is an exact decimal string in USD (cost_usd, "
            "saved_usd). A file is written complete or not at all, readable by you only."
        ),
    )
    export.add_argument(
        "--format",
        metavar="FORMAT",
        help="csv or jsonl (default: from the --output suffix, else csv)",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    export.add_argument("--force", action="store_true", help="replace an existing --output file")
    add_range_options(export)
    add_ledger_option(export)
    export.set_defaults(func=_cmd_export)

    backup = sub.add_parser(
        "backup",
        help="a consistent copy, made with SQLite's backup API",
        description=(
            "Copy the ledger with SQLite's online backup, consistent even while guards are "
            "writing. The copy is one self-contained file, readable by you only."
        ),
    )
    backup.add_argument("dest", metavar="DEST", help="file to write, or a directory to write into")
    backup.add_argument("--force", action="store_true", help="replace DEST if it exists")
    add_ledger_option(backup)
    backup.set_defaults(func=_cmd_backup)

    prune = sub.add_parser(
        "prune",
        help="delete calls older than a date (budgets are kept)",
        description=(
            "Delete the calls recorded before DATE. Only call rows go: budget totals, "
            "reservations and rate-limit state are untouched. Asks for confirmation on a "
            "terminal; elsewhere it needs --yes."
        ),
    )
    prune.add_argument("--before", required=True, metavar="DATE", help=DATE_HELP)
    prune.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    prune.add_argument(
        "--vacuum", action="store_true", help="then rewrite the file so it shrinks (slower)"
    )
    add_ledger_option(prune)
    prune.set_defaults(func=_cmd_prune)
