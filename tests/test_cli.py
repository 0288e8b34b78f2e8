"""The costguard command: demo, report and prices, with shell-friendly errors."""

from __future__ import annotations

import errno
import io
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import costguard
from costguard.cli import main
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


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


def _scoped_ledger(path: Path, feature: str) -> Path:
    with costguard.CostGuardClient(ledger=path, cache=None) as guard:
        client = guard.wrap(FakeProvider().openai())
        with guard.scope(feature=feature, user=feature):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    return path


@pytest.mark.parametrize("name", ["[/bold]", "[red]x[/red]", "[link=file:///etc]y"])
def test_terminal_tables_show_names_as_text_not_markup(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """In a terminal, a feature named like rich markup is shown as it is, never interpreted."""
    from costguard.cli import _common

    path = _scoped_ledger(tmp_path / "l.db", name)
    monkeypatch.setattr(_common, "rich_output", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    for argv in (["report", "--group-by", "feature"], ["ledger", "tail"]):
        assert main([*argv, "--ledger", str(path)]) == 0
        captured = capsys.readouterr()
        assert name in captured.out and captured.err == ""


def test_plain_tables_escape_control_characters_and_align_wide_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name with a newline stays on its row, written `\\n`; wide characters keep columns."""
    path = tmp_path / "l.db"
    for feature in ("a\nb\x1b[2J", "日本語", "plain"):
        _scoped_ledger(path, feature)
    assert main(["report", "--ledger", str(path), "--group-by", "feature"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert len(table) == 5  # header, rule and one line per feature
    assert any(line.startswith("a\\nb\\x1b[2J ") for line in table)
    assert "\x1b" not in "".join(table)
    wide = next(line for line in table if line.startswith("日本語"))
    narrow = next(line for line in table if line.startswith("plain"))
    calls_end = table[0].index("calls") + len("calls") - 1
    assert narrow.index("1") == calls_end  # the call count, right-aligned under "calls"
    assert wide.index("1") == calls_end - 3  # three characters two columns wide each


def test_dates_are_utc_and_relative_ones_count_back_from_now() -> None:
    """An ISO time with an offset is the same instant in UTC; `12h` is twelve hours before now."""
    from costguard.cli._common import when

    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert when("2026-11-01T05:00+05:00") == datetime(2026, 11, 1, tzinfo=UTC)
    assert when("2026-11-01T05:00+05:00").tzinfo is UTC
    assert when("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert when(" 12h ", now=now) == datetime(2026, 11, 21, tzinfo=UTC)


def test_report_dates_out_of_range_are_one_line(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--since 99999999999d` is a usage error with one line, not an OverflowError."""
    assert main(["report", "--ledger", str(ledger_path), "--since", "99999999999d"]) == 2
    err = capsys.readouterr().err
    assert err == "costguard: date '99999999999d' is out of range\n"


def test_negative_amounts_put_the_sign_before_the_dollar() -> None:
    """-0.05 USD reads `-$0.0500`, -2 USD `-$2.00` and a tiny negative amount in full."""
    from costguard.cli._common import usd

    assert usd(Decimal("-0.05")) == "-$0.0500"
    assert usd(Decimal("-2")) == "-$2.00"
    assert usd(Decimal("-0.000001")) == "-$0.000001"
    assert usd(Decimal("-0")) == "$0"


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_output_that_cannot_be_written_is_one_line_and_exit_1(
    ledger_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stdout on a full disk: `costguard: No space left on device`, exit 1, no traceback."""
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    assert main(["report", "--ledger", str(ledger_path)]) == 1
    assert capsys.readouterr().err == "costguard: No space left on device\n"


def test_budget_status_of_a_file_that_is_not_a_ledger_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`budget status` on junk: one `costguard:` line naming the file, exit 1."""
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    assert main(["budget", "status", "--ledger", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("costguard: cannot read the budgets in ledger ") and err.count("\n") == 1


def test_cache_commands_on_an_unusable_cache_fail_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache directory that is a file: `clear` and `stats` say so in one line, exit 2,
    instead of a warning and a claim that 0 entries were removed."""
    blocked = tmp_path / "cache"
    blocked.write_text("a file, not a directory")
    for argv in (["cache", "clear"], ["cache", "stats"]):
        assert main([*argv, "--dir", str(blocked)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"costguard: the cache at {blocked} cannot be opened: ")
        assert captured.err.count("\n") == 1
    assert main(["cache", "stats", "--dir", str(blocked), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["usable"] is False
