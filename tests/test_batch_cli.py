"""`costguard batch flush|status`: the deferred queue from the shell, on the fake provider."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

import costguard
from costguard.cli import main
from costguard.ledger._migrations import MIGRATIONS
from costguard.testing import FakeProvider

GPT = "gpt-4o-mini"


def chat(text: str) -> dict[str, Any]:
    return {"model": GPT, "messages": [{"role": "user", "content": text}], "max_tokens": 50}


@pytest.fixture
def queued(tmp_path: Path) -> tuple[Path, list[str]]:
    """A ledger with two OpenAI requests and one Anthropic request deferred."""
    path = tmp_path / "ledger.db"
    fake = FakeProvider()
    guard = costguard.CostGuardClient(ledger=path, cache=None)
    handles = [guard.defer(fake.openai(), chat(t)) for t in ("a", "b")]
    handles.append(
        guard.defer(
            fake.anthropic(),
            {"model": "claude-haiku-4-5", "max_tokens": 30, "messages": chat("c")["messages"]},
            priority="high",
        )
    )
    guard.close()
    return path, handles


def test_flush_with_the_fake_provider_submits_and_collects_every_queue(
    queued: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`batch flush --fake --wait` sends each provider's queue and collects the answers."""
    path, _ = queued
    assert main(["batch", "flush", "--ledger", str(path), "--fake", "--wait"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    openai_row = next(line for line in lines if line.startswith("openai")).split()
    anthropic_row = next(line for line in lines if line.startswith("anthropic")).split()
    assert openai_row[1:3] == ["2", "1"] and openai_row[-3:] == ["2", "0", "0"]
    assert anthropic_row[1:3] == ["1", "1"]
    assert captured.err == ""  # no terminal: no progress bar, no noise
    guard = costguard.CostGuardClient(ledger=path, cache=None)
    assert len(guard.ledger.records()) == 3
    assert {r.service_tier for r in guard.ledger.records()} == {"batch"}
    guard.close()


def test_flush_with_nothing_queued_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty queue is not an error."""
    path = tmp_path / "ledger.db"
    costguard.CostGuardClient(ledger=path, cache=None).close()
    assert main(["batch", "flush", "--ledger", str(path), "--fake"]) == 0
    assert capsys.readouterr().out.strip() == "nothing queued"


def test_flush_builds_clients_from_the_environment_and_says_what_is_missing(
    queued: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --fake, a missing API key is a one-line usage error naming the variable."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path, _ = queued
    assert main(["batch", "flush", "--ledger", str(path), "--provider", "openai"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_flush_applies_the_budgets_recorded_in_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A budget the application published holds back what it cannot afford."""
    path = tmp_path / "ledger.db"
    fake = FakeProvider()
    guard = costguard.CostGuardClient(
        ledger=path, cache=None, budgets=[costguard.Budget("0.000001", period="day")]
    )
    guard.defer(fake.openai(), chat("too dear"))
    guard.close()
    assert main(["batch", "flush", "--ledger", str(path), "--fake"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("openai"))
    assert row.split()[1:5] == ["0", "0", "0", "1"]


def test_status_lists_requests_by_state(
    queued: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`batch status` counts requests per state and provider and lists each one."""
    path, handles = queued
    assert main(["batch", "status", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "queued" in out and all(h in out for h in handles)
    main(["batch", "flush", "--ledger", str(path), "--fake", "--wait"])
    capsys.readouterr()
    assert main(["batch", "status", "--ledger", str(path), "--state", "finished"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    listed = [row for row in rows if row and row[0] in handles]
    assert len(listed) == 3 and {row[1] for row in listed} == {"finished"}


def test_status_json_is_machine_readable(
    queued: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`batch status --json` gives one object per request, oldest first."""
    path, handles = queued
    assert main(["batch", "status", "--ledger", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["handle"] for r in rows] == handles
    assert [r["priority"] for r in rows] == ["low", "low", "high"]
    assert {r["state"] for r in rows} == {"queued"}


def test_status_of_a_missing_ledger_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger path that does not exist: exit 2 and one line on stderr."""
    assert main(["batch", "status", "--ledger", str(tmp_path / "nope.db")]) == 2
    assert "no ledger" in capsys.readouterr().err


def test_the_batch_tables_come_from_an_appended_migration(tmp_path: Path) -> None:
    """m005 adds batch_items, batch_jobs and calls.batch_id; the ledger reads the column back."""
    path = tmp_path / "ledger.db"
    costguard.CostGuardClient(ledger=path, cache=None).close()
    assert MIGRATIONS[4].__name__ == "_m005_batches"
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    assert {"batch_items", "batch_jobs"} <= tables
    assert "batch_id" in columns


def test_flush_draws_a_progress_bar_when_stderr_is_a_terminal(
    queued: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, polling shows each batch's progress on stderr; the table stays on stdout."""
    monkeypatch.delenv("COSTGUARD_PLAIN", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    path, _ = queued
    assert main(["batch", "flush", "--ledger", str(path), "--fake", "--wait"]) == 0
    captured = capsys.readouterr()
    assert "batch_" in captured.err and "msgbatch_" in captured.err
    assert captured.out.splitlines()[0].startswith("provider")


def test_flush_does_not_apply_a_scopes_budget_to_every_queued_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A budget an application scope recorded limits that scope's calls, not the whole queue."""
    path = tmp_path / "ledger.db"
    fake = FakeProvider()
    guard = costguard.CostGuardClient(ledger=path, cache=None)
    client = guard.wrap(fake.openai())
    scoped = guard.scope(feature="tagging", budget=costguard.Budget("0.000001", period="day"))
    with scoped, pytest.raises(costguard.BudgetExceededError):  # records the scope's budget
        client.chat.completions.create(**chat("too dear"))
    guard.defer(fake.openai(), chat("outside that scope"))
    guard.close()
    assert main(["batch", "flush", "--ledger", str(path), "--fake"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("openai"))
    assert row.split()[1:5] == ["1", "1", "0", "0"]
