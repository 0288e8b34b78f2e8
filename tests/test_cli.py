"""The costguard command: demo, report and prices, with shell-friendly errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import costguard
from costguard.cli import main
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    guard = costguard.CostGuardClient(ledger=path)
    fake = FakeProvider()
    gpt, claude = guard.wrap(fake.openai()), guard.wrap(fake.anthropic())
    with guard.scope(feature="chat", user="u1"):
        gpt.chat.completions.create(model="gpt-4o-mini", messages=HI)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)
    with guard.scope(feature="search", user="u2"):
        gpt.embeddings.create(model="text-embedding-3-small", input="hi")
    guard.close()
    return path


def test_demo_prints_spend_by_model_and_feature(capsys: pytest.CaptureFixture[str]) -> None:
    """`costguard demo` runs offline and prints what was spent, per model and per feature."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "By model" in out and "By feature" in out
    assert "support-bot" in out and "claude-sonnet-4-6" in out
    assert "spent:" in out and "saved:" in out


def test_report_groups_by_several_keys(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --group-by feature,user` prints one row per pair and the total."""
    assert main(["report", "--ledger", str(ledger_path), "--group-by", "feature,user"]) == 0
    out = capsys.readouterr().out
    assert "chat" in out and "search" in out and "u1" in out
    assert "total:" in out and "over 3 calls" in out


def test_report_json_is_exact(ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`report --json` gives machine-readable rows whose costs add up to the ledger's."""
    assert main(["report", "--ledger", str(ledger_path), "--group-by", "model", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    with costguard.Ledger(ledger_path) as ledger:
        [total] = ledger.summary([])
    assert sum(r["calls"] for r in rows) == 3
    assert sum(Decimal(r["cost_usd"]) for r in rows) == total.cost_usd


def test_report_since_filters_by_time(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since in the future leaves nothing to report: one line on stderr, non-zero exit."""
    assert main(["report", "--ledger", str(ledger_path), "--since", "2999-01-01"]) == 2
    assert "no calls" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday-ish"], "bad date"),
        (["--group-by", "colour"], "unknown --group-by key 'colour'"),
    ],
)
def test_report_errors_are_one_line_and_non_zero(
    ledger_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A bad date or group key gives one clear stderr line and exit code 2, no traceback."""
    assert main(["report", "--ledger", str(ledger_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_report_on_a_missing_ledger_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reporting from a ledger that does not exist is an error, and creates nothing."""
    missing = tmp_path / "nope.db"
    assert main(["report", "--ledger", str(missing)]) == 2
    assert "no ledger" in capsys.readouterr().err
    assert not missing.exists()


def test_prices_shows_one_model_and_resolves_snapshots(capsys: pytest.CaptureFixture[str]) -> None:
    """`prices gpt-4o-2024-08-06` prints the model's per-million rates."""
    assert main(["prices", "gpt-4o-2024-08-06"]) == 0
    out = capsys.readouterr().out
    assert "$2.5" in out and "$10" in out


def test_prices_search_and_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    """`prices --search haiku` lists matches; an unknown model exits 2 with one line."""
    assert main(["prices", "--search", "haiku"]) == 0
    assert "claude-haiku-4-5" in capsys.readouterr().out
    assert main(["prices", "no-such-model"]) == 2
    assert "no price for model 'no-such-model'" in capsys.readouterr().err


def test_report_shows_cache_hit_rate_and_savings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report` states how many calls the cache answered and what that saved."""
    path = tmp_path / "l.db"
    with costguard.CostGuardClient(ledger=path) as guard:
        client = guard.wrap(FakeProvider().openai())
        for _ in range(4):
            client.chat.completions.create(model="gpt-4o", messages=HI)
    assert main(["report", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cache: 3 of 4 calls answered from the cache (75%), saved $" in out


def test_cache_stats_and_clear_by_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache stats` counts entries; `cache clear --tenant` removes only that tenant's."""
    directory = tmp_path / "cache"
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=costguard.ExactCache(directory)
    ) as guard:
        client = guard.wrap(FakeProvider().openai())
        for tenant in ("acme", "globex"):
            with guard.scope(tenant=tenant):
                client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert main(["cache", "stats", "--dir", str(directory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert main(["cache", "clear", "--dir", str(directory), "--tenant", "acme"]) == 0
    assert "removed 1 cache entries of tenant 'acme'" in capsys.readouterr().out
    assert main(["cache", "stats", "--dir", str(directory)]) == 0
    assert "entries: 1" in capsys.readouterr().out


def test_cache_clear_by_tenant_also_clears_the_semantic_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache clear --tenant` removes that tenant's semantic entries too."""
    exact, semantic = tmp_path / "exact", tmp_path / "semantic"
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=costguard.ExactCache(exact),
        semantic=costguard.SemanticCache(embedder=costguard.FakeEmbedder(), directory=semantic),
    ) as guard:
        client = guard.wrap(FakeProvider().openai())
        for tenant in ("acme", "globex"):
            with guard.scope(tenant=tenant):
                client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    dirs = ["--dir", str(exact), "--semantic-dir", str(semantic)]
    assert main(["cache", "stats", *dirs, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["semantic_entries"] == 2
    assert main(["cache", "clear", *dirs, "--tenant", "acme"]) == 0
    capsys.readouterr()
    assert main(["cache", "stats", *dirs, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["semantic_entries"] == 1 and stats["entries"] == 1


def test_budget_status_shows_spent_reserved_remaining_and_a_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`budget status` lists each recorded budget and key with a usage bar."""
    path = tmp_path / "l.db"
    budgets = [
        costguard.Budget(1, name="app"),
        costguard.Budget("0.5", per="user", name="each-user"),
    ]
    with costguard.CostGuardClient(ledger=path, cache=None, budgets=budgets) as guard:
        client = guard.wrap(FakeProvider().openai())
        with guard.scope(user="u42"):
            client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=100)
    assert main(["budget", "status", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "app" in out and "each-user" in out and "u42" in out and "[" in out and "%" in out
    assert main(["budget", "status", "--ledger", str(path), "--json"]) == 0
    rows = {r["budget"]: r for r in json.loads(capsys.readouterr().out)}
    assert Decimal(rows["app"]["spent_usd"]) + Decimal(rows["app"]["remaining_usd"]) == 1
