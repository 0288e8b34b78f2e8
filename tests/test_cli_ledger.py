"""`costguard ledger path|status|tail|export|backup|prune` and their shell-friendly errors."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import costguard
from _helpers import Clock
from costguard.batch import BatchOptions
from costguard.cli import main
from costguard.ledger import CallRecord, Ledger, new_id
from costguard.ledger._maintenance import iter_rows, write_rows
from costguard.ledger._migrations import MIGRATIONS
from costguard.ledger._store import _row
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="journals need POSIX flock")


def _record(day: int, cost: str | None = "0.001", **changes: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "id": new_id(),
        "ts": datetime(2026, 3, day, 12, 0, tzinfo=UTC),
        "provider": "openai",
        "operation": "chat.completions.create",
        "requested_model": "gpt-4o",
        "served_model": "gpt-4o-2024-08-06",
        "usage": costguard.Usage(input_tokens=100 + day, output_tokens=day),
        "cost_usd": None if cost is None else Decimal(cost),
        "feature": f"f{day}",
        "tags": {"day": str(day)},
    }
    return CallRecord(**(fields | changes))


@pytest.fixture
def dated(tmp_path: Path) -> Path:
    """Five calls on 1, 2, 3, 4 and 5 March 2026 (noon UTC), written as records."""
    path = tmp_path / "dated.db"
    with Ledger(path) as ledger:
        for day in range(1, 6):
            ledger.write(_record(day))
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _one_line(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 2) -> str:
    assert main(list(argv)) == code
    captured = capsys.readouterr()
    assert captured.err.startswith("costguard: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    return captured.err


def _orphan_journal(path: Path, *records: CallRecord) -> Path:
    """A journal as a writer that was killed leaves it (no lock held)."""
    orphan = path.with_name(path.name + "-pending") / "999999-dead.jsonl"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"".join(json.dumps(_row(r)).encode() + b"\n" for r in records))
    return orphan


# -- path and status ------------------------------------------------------------------------


def test_path_prints_the_default_ledger_without_creating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger path` prints $COSTGUARD_HOME/ledger.db and creates nothing."""
    monkeypatch.setenv("COSTGUARD_HOME", str(tmp_path / "home"))
    assert main(["ledger", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "home" / "ledger.db")
    assert not (tmp_path / "home").exists()


def test_status_reports_rows_span_spend_size_and_schema(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger status --json` matches the ledger's own totals, exactly."""
    out = _json(capsys, "ledger", "status", "--ledger", str(ledger_path), "--json")
    with Ledger(ledger_path) as ledger:
        [total] = ledger.summary([])
        records = ledger.records()
    assert out["calls"] == 3 and out["errors"] == 0 and out["unpriced"] == 0
    assert Decimal(out["cost_usd"]) == total.cost_usd > 0
    assert out["first_call"] == records[0].ts.isoformat()
    assert out["last_call"] == records[-1].ts.isoformat()
    assert out["schema_version"] == out["schema_latest"] == len(MIGRATIONS)
    assert out["pending_rows"] == 0 and out["size_bytes"] > 0


def test_status_as_text(dated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The plain status names the span, the spend and the schema in labelled lines."""
    assert main(["ledger", "status", "--ledger", str(dated)]) == 0
    out = capsys.readouterr().out
    assert "calls:          5 (0 errors, 0 unpriced)" in out
    assert "first call:     2026-03-01 12:00:00 UTC" in out
    assert "last call:      2026-03-05 12:00:00 UTC" in out
    assert "spend:          $0.005 " in out and "(current)" in out


def test_status_of_an_empty_ledger_says_there_are_no_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty ledger has a status too: zero calls and no first or last call."""
    path = tmp_path / "empty.db"
    Ledger(path).close()
    out = _json(capsys, "ledger", "status", "--ledger", str(path), "--json")
    assert out["calls"] == 0 and out["first_call"] is None and out["cost_usd"] == "0"


@POSIX
def test_status_commits_a_dead_writers_journal_first(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows a killed writer left in its journal are committed before status counts."""
    orphan = _orphan_journal(dated, _record(6))
    out = _json(capsys, "ledger", "status", "--ledger", str(dated), "--json")
    assert out["calls"] == 6 and out["pending_rows"] == 0
    assert not orphan.exists()


@POSIX
def test_status_counts_rows_a_live_writer_has_not_committed(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A locked journal belongs to a live writer: only its uncommitted rows count as pending."""
    import fcntl

    with Ledger(dated) as ledger:
        committed = ledger.records()[0]
    journal = _orphan_journal(dated, committed, _record(7), _record(8))
    fd = os.open(journal, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        out = _json(capsys, "ledger", "status", "--ledger", str(dated), "--json")
    finally:
        os.close(fd)
    assert out["calls"] == 5 and out["pending_rows"] == 2  # the committed row is not pending
    assert journal.exists()


# -- tail -----------------------------------------------------------------------------------


def test_tail_shows_the_newest_calls_oldest_first(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tail -n 2` shows the last two calls as a table, in time order."""
    assert main(["ledger", "tail", "-n", "2", "--ledger", str(dated)]) == 0
    lines = capsys.readouterr().out.splitlines()
    body = lines[2:]
    assert len(body) == 2
    assert body[0].startswith("2026-03-04 12:00:00") and body[1].startswith("2026-03-05")
    assert "gpt-4o -> gpt-4o-2024-08-06" in body[0] and "$0.001 " in body[0]


def test_tail_defaults_to_twenty_and_has_json(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tail --json` gives every column with money as exact strings."""
    rows = _json(capsys, "ledger", "tail", "--ledger", str(ledger_path), "--json")
    assert [r["requested_model"] for r in rows] == [
        "gpt-4o-mini",
        "claude-haiku-4-5",
        "text-embedding-3-small",
    ]
    with Ledger(ledger_path) as ledger:
        assert [Decimal(r["cost_usd"]) for r in rows] == [r.cost_usd for r in ledger.records()]


def test_tail_of_an_empty_ledger_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing to show: one line on stderr, exit 2."""
    path = tmp_path / "empty.db"
    Ledger(path).close()
    assert "has no calls yet" in _one_line(capsys, "ledger", "tail", "--ledger", str(path))


@pytest.mark.parametrize("count", ["0", "-3", "ten"])
def test_tail_rejects_a_bad_count(
    dated: Path, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    """-n must be a whole number of at least 1."""
    err = _one_line(capsys, "ledger", "tail", f"-n={count}", "--ledger", str(dated))
    assert "-n/--lines must be" in err


# -- export ---------------------------------------------------------------------------------


def test_export_csv_to_stdout_has_every_call_and_exact_money(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV export has a header, one row per call, and costs that add up to the ledger's."""
    assert main(["ledger", "export", "--ledger", str(ledger_path)]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 3 and "exported 3 calls to stdout (csv)" in captured.err
    with Ledger(ledger_path) as ledger:
        [total] = ledger.summary([])
    assert sum(Decimal(r["cost_usd"]) for r in rows) == total.cost_usd
    assert {"id", "ts", "requested_model", "cost_usd", "saved_usd", "tags"} <= set(rows[0])
    assert "cost_pusd" not in rows[0]
    assert json.loads(rows[0]["raw_usage"])["prompt_tokens"] > 0


def test_export_jsonl_to_a_file_keeps_types(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON lines keep objects, booleans and nulls; the format follows the .jsonl suffix."""
    target = tmp_path / "out.jsonl"
    assert main(["ledger", "export", "--ledger", str(dated), "-o", str(target)]) == 0
    assert "exported 5 calls" in capsys.readouterr().err
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["tags"] for r in rows] == [{"day": str(d)} for d in range(1, 6)]
    assert rows[0]["stream"] is False and rows[0]["tenant"] is None
    assert rows[0]["cost_usd"] == "0.001" and rows[0]["saved_usd"] == "0"
    assert target.stat().st_mode & 0o077 == 0  # owner-only, like the ledger


def test_export_money_is_exact_to_the_picodollar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One picodollar, a large amount and an unpriced call survive export unrounded."""
    path = tmp_path / "money.db"
    amounts = ["0.000000000001", "123456.789012345678", None]
    with Ledger(path) as ledger:
        for day, amount in enumerate(amounts, start=1):
            ledger.write(_record(day, amount))
    assert main(["ledger", "export", "--ledger", str(path), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["cost_usd"] for r in rows] == amounts
    assert main(["ledger", "export", "--ledger", str(path), "--format", "csv"]) == 0
    cells = [r["cost_usd"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))]
    assert cells == ["0.000000000001", "123456.789012345678", ""]


def test_export_since_and_until_select_a_time_range(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since is inclusive and --until exclusive, as in `report`."""
    argv = ["ledger", "export", "--ledger", str(dated), "--format", "jsonl"]
    assert main([*argv, "--since", "2026-03-02T12:00:00Z", "--until", "2026-03-04T12:00"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["feature"] for r in rows] == ["f2", "f3"]


def test_export_of_nothing_is_a_header_only_csv(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A range with no calls still gives a valid CSV (the header) and says 0 were exported."""
    assert main(["ledger", "export", "--ledger", str(dated), "--since", "2999-01-01"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("id,ts,") and captured.out.count("\n") == 1
    assert "exported 0 calls" in captured.err


def test_export_streams_row_by_row(dated: Path) -> None:
    """Rows are read lazily and each is written before the next is read from the ledger."""
    out = io.StringIO()
    seen: list[int] = []

    def watched() -> Iterator[dict[str, Any]]:
        for row in iter_rows(dated, decode_json=True):
            seen.append(out.getvalue().count("\n"))
            yield row

    assert write_rows(watched(), out, "jsonl") == 5
    assert seen == [0, 1, 2, 3, 4]


def test_export_refuses_to_replace_a_file_unless_forced(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing --output is kept unless --force; with it, it is replaced completely."""
    target = tmp_path / "out.csv"
    target.write_text("precious\n")
    argv = ["ledger", "export", "--ledger", str(dated), "-o", str(target)]
    assert "already exists: pass --force" in _one_line(capsys, *argv)
    assert target.read_text() == "precious\n"
    assert main([*argv, "--force"]) == 0
    assert len(list(csv.DictReader(io.StringIO(target.read_text())))) == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "xml"], "unknown format 'xml': use csv or jsonl"),
        (["--since", "last tuesday"], "bad date 'last tuesday'"),
        (["--until", "2026-02-30"], "bad date '2026-02-30'"),
        (["--since", "2026-03-05", "--until", "2026-03-01"], "must be before --until"),
        (["-o", "{tmp}/no/such/dir/out.csv"], "cannot write"),
        (["-o", "{tmp}"], "is a directory"),
        (["-o", "{tmp}/new/"], "is a directory"),
        (["-o", "{tmp}/dated.db/out.csv"], "Not a directory"),  # under a file: even root fails
    ],
)
def test_export_errors_are_one_line(
    dated: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    """Unknown format, bad dates, an empty range order or unwritable output: exit 2, one line."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert message in _one_line(capsys, "ledger", "export", "--ledger", str(dated), *args)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions, not root"
)
def test_export_into_a_read_only_directory_fails_cleanly(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output directory without write permission: one line naming the file, exit 2."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        argv = ["ledger", "export", "--ledger", str(dated), "-o", str(locked / "x.csv")]
        assert "Permission denied" in _one_line(capsys, *argv)
    finally:
        locked.chmod(0o700)


def test_export_with_a_terminal_on_stderr_keeps_stdout_pure(
    dated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export > file` run from a terminal: the progress bar stays off stdout, so the CSV is
    exactly the rows (no stray blank line)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["ledger", "export", "--ledger", str(dated)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 6 and out.endswith("\n") and not out.endswith("\n\n")
    assert len(list(csv.DictReader(io.StringIO(out)))) == 5


def test_export_to_a_terminal_draws_no_bar_over_the_rows(
    dated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the rows go to the terminal itself, no progress bar is drawn across them."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["ledger", "export", "--ledger", str(dated)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "exported 5 calls to stdout (csv)\n"
    assert len(list(csv.DictReader(io.StringIO(captured.out)))) == 5


def test_tail_with_a_huge_count_shows_every_call(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A count beyond what SQLite can take is just "all of them", not a traceback."""
    rows = _json(capsys, "ledger", "tail", "-n", str(10**30), "--ledger", str(dated), "--json")
    assert [r["feature"] for r in rows] == ["f1", "f2", "f3", "f4", "f5"]


@pytest.mark.parametrize("when", ["99999999999d", "0001-01-01T00:00+01:00", "9999999999w"])
def test_dates_out_of_range_are_one_line(
    dated: Path, capsys: pytest.CaptureFixture[str], when: str
) -> None:
    """A relative or ISO date beyond the calendar is a usage error, not a traceback."""
    err = _one_line(capsys, "ledger", "export", "--ledger", str(dated), "--since", when)
    assert f"date {when!r} is out of range" in err
    err = _one_line(capsys, "ledger", "prune", "--ledger", str(dated), "--before", when)
    assert "out of range" in err


# -- backup ---------------------------------------------------------------------------------


def test_backup_is_a_complete_private_copy(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backup opens as a ledger with the same records, and only its owner can read it."""
    dest = tmp_path / "copy.db"
    assert main(["ledger", "backup", str(dest), "--ledger", str(ledger_path)]) == 0
    assert f"backed up 3 calls from {ledger_path} to {dest}" in capsys.readouterr().out
    assert dest.stat().st_mode & 0o077 == 0
    assert not dest.with_name("copy.db-wal").exists()  # one self-contained file
    with Ledger(ledger_path) as original, Ledger(dest) as copy:
        assert copy.records() == original.records()


def test_backup_into_a_directory_uses_the_ledgers_name(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like cp, a directory as DEST gets a file of the ledger's name inside it."""
    folder = tmp_path / "backups"
    folder.mkdir()
    assert main(["ledger", "backup", str(folder), "--ledger", str(dated)]) == 0
    assert (folder / "dated.db").is_file()


@POSIX
def test_backup_includes_rows_a_dead_writer_left(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Journal rows of a killed writer are committed first, so the backup has them."""
    _orphan_journal(dated, _record(9))
    dest = tmp_path / "copy.db"
    assert main(["ledger", "backup", str(dest), "--ledger", str(dated)]) == 0
    with Ledger(dest) as copy:
        assert len(copy.records()) == 6


def test_backup_refuses_to_overwrite_unless_forced(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing DEST is left alone without --force and replaced with it."""
    dest = tmp_path / "copy.db"
    dest.write_text("older backup")
    argv = ["ledger", "backup", str(dest), "--ledger", str(dated)]
    assert "already exists: pass --force" in _one_line(capsys, *argv)
    assert dest.read_text() == "older backup"
    assert main([*argv, "--force"]) == 0
    with Ledger(dest) as copy:
        assert len(copy.records()) == 5


def test_backup_errors_are_one_line(
    dated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing destination directory (also as `dir/`), or the ledger itself: exit 2, one line."""
    missing = tmp_path / "no" / "such" / "copy.db"
    argv = ["ledger", "backup", "--ledger", str(dated)]
    assert "cannot write a backup" in _one_line(capsys, *argv, str(missing))
    assert "is the ledger itself" in _one_line(capsys, *argv, str(dated), "--force")
    folder = f"{tmp_path / 'backups'}/"
    assert "no such directory" in _one_line(capsys, *argv, folder)
    assert not (tmp_path / "backups").exists()


# -- prune ----------------------------------------------------------------------------------


def test_prune_with_yes_removes_only_older_calls(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`prune --before 2026-03-03 --yes` removes the calls of 1 and 2 March and says so."""
    assert main(["ledger", "prune", "--before", "2026-03-03", "--yes", "--ledger", str(dated)]) == 0
    assert "removed 2 calls recorded before 2026-03-03T00:00:00+00:00" in capsys.readouterr().out
    with Ledger(dated) as ledger:
        assert [r.feature for r in ledger.records()] == ["f3", "f4", "f5"]


def test_prune_refuses_without_yes_when_nobody_can_answer(
    dated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on a terminal and no --yes: nothing is deleted, one line, exit 2."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    err = _one_line(capsys, "ledger", "prune", "--before", "2026-03-03", "--ledger", str(dated))
    assert "refusing to delete 2 calls without --yes" in err
    with Ledger(dated) as ledger:
        assert len(ledger.records()) == 5


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, 3), ("n\n", 1, 5), ("", 1, 5)])
def test_prune_asks_on_a_terminal(
    dated: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    left: int,
) -> None:
    """On a terminal prune asks first; only yes deletes, anything else leaves every row."""
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    assert main(["ledger", "prune", "--before", "2026-03-03", "--ledger", str(dated)]) == code
    assert "delete 2 calls recorded before" in capsys.readouterr().err
    with Ledger(dated) as ledger:
        assert len(ledger.records()) == left


def test_prune_with_nothing_to_remove_is_not_an_error(
    dated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No call is older than the date: it says so and exits 0 without asking."""
    assert main(["ledger", "prune", "--before", "2020-01-01", "--ledger", str(dated)]) == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_prune_keeps_budgets_intact(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake: FakeProvider,
    clock: Clock,
    options: BatchOptions,
) -> None:
    """Pruning every call leaves budget totals, reservations, alerts and rate events as they
    were (each table holds rows: alerts fire at 0.1%, a batch not yet resolved holds its
    reservation, and a rate limit records every call)."""
    path = tmp_path / "l.db"
    budgets = [costguard.Budget(1, name="app"), costguard.Budget("0.5", per="user", name="u")]
    limits = costguard.RateLimits(tiers={"free": 100}, clock=clock, sleep=clock.sleep)
    with costguard.CostGuardClient(
        ledger=path, cache=None, budgets=budgets, alert_at=("0.001",), rate_limits=limits
    ) as guard:
        client = guard.wrap(fake.openai())
        with guard.scope(user="u42", tier="free"):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=50)
            request = {"model": "gpt-4o", "messages": HI, "max_tokens": 50}
            guard.batch(fake.openai(), [request], wait=False, options=options)
    tables = ["budget_spend", "budget_reservations", "budget_alerts", "rate_events"]

    def snapshot() -> dict[str, list[Any]]:
        with sqlite3.connect(path) as db:
            return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}

    before = snapshot()
    assert before["budget_spend"]
    assert [t for t in tables if not before[t]] == []  # nothing here is vacuously kept
    budget = _json(capsys, "budget", "status", "--ledger", str(path), "--json")
    argv = ["ledger", "prune", "--before", "2999-01-01", "--yes", "--vacuum", "--ledger", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "removed 3 calls" in out and "vacuumed" in out
    assert snapshot() == before
    assert _json(capsys, "budget", "status", "--ledger", str(path), "--json") == budget
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM calls").fetchone() == (0,)


def test_prune_needs_a_readable_date(dated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A date that cannot be read is one line, exit 2, and deletes nothing."""
    err = _one_line(capsys, "ledger", "prune", "--before", "soon", "--yes", "--ledger", str(dated))
    assert "bad date 'soon'" in err


# -- errors every command shares ------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["tail"],
        ["export"],
        ["backup", "{tmp}/copy.db"],
        ["prune", "--before", "2026-01-01", "--yes"],
    ],
)
def test_a_missing_ledger_is_one_line_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Each command on a ledger that does not exist: exit 2, and no file appears."""
    missing = tmp_path / "nope.db"
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert "no ledger at" in _one_line(capsys, "ledger", *args, "--ledger", str(missing))
    assert not missing.exists()


@pytest.mark.parametrize("command", ["status", "tail", "export"])
def test_a_file_that_is_not_a_ledger_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A file that is not SQLite is reported by costguard in one line (exit 1)."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    err = _one_line(capsys, "ledger", command, "--ledger", str(junk), code=1)
    assert "not a database" in err
