"""``costguard report``: spend from the ledger, grouped, with the dashboard figures.

Output: a table (rich in a terminal, plain text when piped) followed by the dashboard (total,
cache hit rate, savings by kind, spend per feature and per user, model distribution, unpriced
calls, error rate); or ``--json`` (``{"rows": [...], "dashboard": {...}}``), ``--csv`` (the
grouped rows) or ``--html FILE`` (a self-contained page of charts). Money in JSON and CSV is
an exact decimal string. The figures are defined in :mod:`costguard.ledger._dashboard`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import (
    CLIError,
    add_json_option,
    add_ledger_option,
    add_range_options,
    cost_text,
    emit_json,
    emit_table,
    ledger_path,
    output_file,
    percent,
    plain,
    table,
    time_range,
    usd,
)

if TYPE_CHECKING:
    from ..ledger import SummaryRow
    from ..ledger._dashboard import Dashboard, Saving, Slice

__all__ = ["register", "summary_table"]

_DASHBOARD_TOP = 10  # entries per dashboard list in text and HTML, unless --top says otherwise


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


# -- arguments --------------------------------------------------------------------------------


def _group_keys(text: str) -> list[str]:
    """``--group-by``'s keys, in order, without repeats; CLIError naming the valid ones."""
    from ..ledger._dashboard import GROUP_KEYS

    keys = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in keys if k not in GROUP_KEYS]
    if unknown:
        raise CLIError(
            f"unknown --group-by key {unknown[0]!r}; valid keys: {', '.join(GROUP_KEYS)}"
        )
    return keys


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _html_target(given: str) -> Path:
    """Where ``--html`` writes; CLIError unless it can be a file in an existing directory."""
    path = Path(given)
    if path.is_dir():
        raise CLIError(f"cannot write the HTML report to {path}: it is a directory")
    if not path.parent.is_dir():
        raise CLIError(f"cannot write the HTML report to {path}: no directory {path.parent}")
    return path


def _range(since: datetime | None, until: datetime | None) -> str:
    parts = []
    if since is not None:
        parts.append(f"since {since.isoformat(timespec='seconds')}")
    if until is not None:
        parts.append(f"until {until.isoformat(timespec='seconds')}")
    return " and ".join(parts)


# -- formatting -------------------------------------------------------------------------------


def _name(value: str | None) -> str:
    return "-" if value is None else value


def _row_json(r: SummaryRow) -> dict[str, Any]:
    return {
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


def _saving_json(saving: Saving, **extra: Any) -> dict[str, Any]:
    return {"usd": plain(saving.usd), "calls": saving.calls, **extra}


def _slices_json(slices: Sequence[Slice], key: str, total: Decimal) -> list[dict[str, Any]]:
    return [
        {
            key: s.key,
            "calls": s.calls,
            "cost_usd": plain(s.cost_usd),
            "cost_share": round(float(s.cost_usd / total), 4) if total else 0.0,
        }
        for s in slices
    ]


def dashboard_json(board: Dashboard) -> dict[str, Any]:
    """The dashboard as JSON-ready data: money as exact decimal strings, shares as 0..1."""
    s = board.savings
    return {
        "calls": board.calls,
        "total_usd": plain(board.cost_usd),
        "first_call": board.first_ts.isoformat() if board.first_ts else None,
        "last_call": board.last_ts.isoformat() if board.last_ts else None,
        "errors": board.errors,
        "error_rate": round(board.error_rate, 4),
        "unpriced": board.unpriced,
        "unpriced_models": list(board.unpriced_models),
        "cache": {
            "hits": board.cache_hits,
            "hit_rate": round(board.cache_hit_rate, 4),
            **{kind: board.cache_hits_by_kind.get(kind, 0) for kind in ("exact", "semantic")},
        },
        "savings": {
            "cache": _saving_json(s.cache),
            "routing": _saving_json(
                s.routing,
                cheaper_calls=s.cheaper_calls,
                discarded_cascade_calls=s.discarded_cascade_calls,
            ),
            "capping": _saving_json(s.capping, upper_bound=True),
            "prompt_caching": _saving_json(s.prompt_caching),
        },
        "cheaper_model_share": round(board.cheaper_share, 4),
        "by_feature": _slices_json(board.features, "feature", board.cost_usd),
        "by_user": _slices_json(board.users, "user", board.cost_usd),
        "models": [
            {
                "model": m.model,
                "calls": m.calls,
                "call_share": round(m.call_share, 4),
                "cost_usd": plain(m.cost_usd),
                "cost_share": round(m.cost_share, 4),
                "unpriced": m.unpriced,
            }
            for m in board.models
        ],
        "days": [
            {
                "day": d.day,
                "calls": d.calls,
                "cache_hits": d.cache_hits,
                "cache_hit_rate": round(d.cache_hit_rate, 4),
                "cost_usd": plain(d.cost_usd),
                "by_model": [{"model": m, "cost_usd": plain(c)} for m, c in d.by_model.items()],
            }
            for d in board.days
        ],
    }


def _print_slices(
    title: str, column: str, slices: Sequence[Slice], total: Decimal, top: int
) -> None:
    rows = [
        [
            _name(s.key),
            f"{s.calls:,}",
            cost_text(s.cost_usd, s.unpriced),
            percent(float(s.cost_usd / total)) if total else "-",
        ]
        for s in slices[:top]
    ]
    rest = slices[top:]
    if rest:
        cost = sum((s.cost_usd for s in rest), Decimal(0))
        rows.append(
            [
                f"({len(rest)} more)",
                f"{sum(s.calls for s in rest):,}",
                cost_text(cost, sum(s.unpriced for s in rest)),
                percent(float(cost / total)) if total else "-",
            ]
        )
    print()
    emit_table([column, "calls", "cost", "share"], rows, title=title)


def _print_dashboard(board: Dashboard, top: int) -> None:
    s = board.savings
    calls = board.calls
    print(f"\ntotal: {usd(board.cost_usd)} over {calls} calls")
    print(
        f"cache: {board.cache_hits} of {calls} calls answered from the cache "
        f"({percent(board.cache_hit_rate)}), saved {usd(s.cache.usd)}"
    )
    print(f"errors: {board.errors} of {calls} calls ({percent(board.error_rate)})")
    unpriced = f"unpriced: {board.unpriced} calls"
    if board.unpriced:
        unpriced += " (" + ", ".join(_name(m) for m in board.unpriced_models) + ")"
    print(unpriced)

    hits = board.cache_hits_by_kind
    routing_note = f"calls made cheaper: {s.cheaper_calls}"
    if s.discarded_cascade_calls:
        routing_note += f"; discarded cascade tries: {s.discarded_cascade_calls}"
    print()
    emit_table(
        ["saving", "amount", "calls", "note"],
        [
            [
                "costguard cache",
                usd(s.cache.usd),
                str(s.cache.calls),
                f"exact {hits.get('exact', 0)}, semantic {hits.get('semantic', 0)}",
            ],
            ["routing", usd(s.routing.usd), str(s.routing.calls), routing_note],
            [
                "output caps (up to)",
                usd(s.capping.usd),
                str(s.capping.calls),
                "upper bound: the model might have stopped sooner",
            ],
            [
                "provider prompt caching",
                usd(s.prompt_caching.usd),
                str(s.prompt_caching.calls),
                "net of cache-write premiums",
            ],
        ],
        title="Saved",
    )
    _print_slices("Spend by feature", "feature", board.features, board.cost_usd, top)
    _print_slices("Top spenders (users)", "user", board.users, board.cost_usd, top)
    models = [
        [
            _name(m.model),
            f"{m.calls:,}",
            percent(m.call_share),
            cost_text(m.cost_usd, m.unpriced),
            percent(m.cost_share),
        ]
        for m in board.models[:top]
    ]
    rest = board.models[top:]
    if rest:
        models.append(
            [
                f"({len(rest)} more)",
                f"{sum(m.calls for m in rest):,}",
                percent(sum(m.call_share for m in rest)),
                cost_text(
                    sum((m.cost_usd for m in rest), Decimal(0)), sum(m.unpriced for m in rest)
                ),
                percent(sum(m.cost_share for m in rest)),
            ]
        )
    print()
    emit_table(["model", "calls", "% calls", "cost", "% spend"], models, title="Models")
    print(
        f"sent to a cheaper model than requested: {s.cheaper_calls} of {calls} calls "
        f"({percent(board.cheaper_share)})"
    )


def _write_csv(rows: Sequence[SummaryRow], group_by: Sequence[str]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    measures = [
        "calls",
        "errors",
        "unpriced",
        "cost_usd",
        "saved_usd",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    ]
    writer.writerow([*group_by, *measures])
    for r in rows:
        values = _row_json(r)
        writer.writerow(
            [*("" if r.key.get(g) is None else r.key.get(g) for g in group_by)]
            + [values[m] for m in measures]
        )


# -- the command ------------------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    from ..ledger import Ledger
    from ..ledger._dashboard import dashboard

    group_by = _group_keys(args.group_by)
    since, until = time_range(args.since, args.until)
    html_path = _html_target(args.html) if args.html else None
    path = ledger_path(args.ledger)
    with Ledger(path) as ledger:
        rows = ledger.summary(group_by, since=since, until=until)
        board = dashboard(ledger, since=since, until=until)
    if board.calls == 0:
        if since is None and until is None:
            raise CLIError(f"the ledger at {path} has no calls yet")
        raise CLIError(f"the ledger at {path} has no calls {_range(since, until)}")
    shown = rows[: args.top] if args.top else rows
    top = args.top or _DASHBOARD_TOP

    if html_path is not None:
        from ._html import render_html

        page = render_html(
            board, shown, group_by, source=path.name, total_groups=len(rows), top=top
        )
        with output_file(html_path) as file:
            file.write(page)
        print(f"wrote {html_path}: {usd(board.cost_usd)} over {board.calls} calls")
        return 0
    if args.json:
        out = {
            "group_by": group_by,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "rows": [_row_json(r) for r in shown],
            "dashboard": dashboard_json(board),
        }
        emit_json(out)
        return 0
    if args.csv:
        _write_csv(shown, group_by)
        return 0
    emit_table(_summary_headers(group_by), _summary_rows(shown, group_by))
    if len(shown) < len(rows):
        print(f"(top {len(shown)} of {len(rows)} rows by cost)")
    _print_dashboard(board, top)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser to ``commands``."""
    from ..ledger._dashboard import GROUP_KEYS

    report = commands.add_parser(
        "report",
        help="spend from the ledger: grouped, with savings, cache and model figures",
        description=(
            "Spend from the ledger, grouped, followed by the dashboard: total spend, cache hit "
            "rate, money saved by each kind of saving, spend per feature and user, model "
            "distribution, unpriced calls and error rate. See docs/reports.md."
        ),
    )
    add_ledger_option(report)
    report.add_argument(
        "--group-by",
        default="model",
        metavar="KEYS",
        help=f"comma-separated, from: {', '.join(GROUP_KEYS)} (default: model)",
    )
    add_range_options(report)
    report.add_argument(
        "--top",
        type=_positive,
        metavar="N",
        help="only the N most expensive groups (and N entries per dashboard list; default 10)",
    )
    output = report.add_mutually_exclusive_group()
    add_json_option(output, "rows and dashboard as JSON")
    output.add_argument("--csv", action="store_true", help="the grouped rows as CSV")
    output.add_argument(
        "--html",
        metavar="FILE",
        help="write a self-contained HTML page of charts to FILE (readable by you only)",
    )
    report.set_defaults(func=_cmd_report)
