"""`costguard report`: grouped spend, the dashboard figures, each saving's definition, and
shell-friendly output and errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import costguard
from costguard import Usage
from costguard.cli import main
from costguard.ledger import CallRecord, Ledger, new_id
from costguard.ledger._dashboard import GROUP_KEYS, dashboard
from costguard.pricing import PriceTable, compute_cost
from costguard.routing import Router
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "Tell me a long story about the sea and the ships on it"}]
PRICES = PriceTable.default()
DAY = datetime(2026, 11, 2, 12, tzinfo=UTC)


def record(**changes: Any) -> CallRecord:
    """A priced gpt-4o call (1000 in, 100 out), changed as given; priced at the served model."""
    fields: dict[str, Any] = {
        "id": new_id(),
        "ts": DAY,
        "provider": "openai",
        "operation": "chat.completions.create",
        "requested_model": "gpt-4o",
        "usage": Usage(input_tokens=1000, output_tokens=100),
    } | changes
    model = fields.get("served_model") or fields["requested_model"]
    if "cost_usd" not in fields:
        cost = PRICES.cost(model, fields["usage"], service_tier=fields.get("service_tier"))
        if cost is not None:
            fields["cost_usd"] = cost.usd
            fields["rates"] = {
                name: str(getattr(cost.rates, name))
                for name in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
            }
    return CallRecord(**fields)


def write(path: Path, *records: CallRecord) -> Path:
    with Ledger(path) as ledger:
        for r in records:
            ledger.write(r)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A ledger from real guarded calls: routing, caps, prompt caching, cache hits, an error."""
    path = tmp_path / "ledger.db"
    fake = FakeProvider()
    guard = costguard.CostGuardClient(
        ledger=path,
        cache=costguard.ExactCache(tmp_path / "cache"),
        router=Router(rules={"classify": "gpt-4o-mini"}),
        max_tokens=costguard.Cap(default=1024, per_feature={"classify": 3}),
    )
    gpt, claude = guard.wrap(fake.openai()), guard.wrap(fake.anthropic())
    with guard.scope(feature="classify", user="u1"):
        gpt.chat.completions.create(model="gpt-4o", messages=HI)
        gpt.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=50)
    fake.reply(cached_tokens=2000, cache_write_tokens=300, provider="anthropic")
    with guard.scope(feature="chat", user="u2"):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=HI)
        for _ in range(3):  # one miss, then two exact-cache hits
            gpt.chat.completions.create(model="gpt-4o", messages=HI)
    fake.fail(500)
    with guard.scope(feature="chat", user="u3"), pytest.raises(Exception, match="500"):
        gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    guard.close()
    return path


def test_dashboard_totals_agree_with_the_ledger(mixed: Path) -> None:
    """Total spend, calls, errors and the per-feature, per-user and per-model lists add up."""
    with Ledger(mixed) as ledger:
        [total] = ledger.summary([])
        board = dashboard(ledger)
    assert (board.calls, board.errors, board.cost_usd) == (total.calls, 1, total.cost_usd)
    for slices in (board.features, board.users):
        assert sum(s.cost_usd for s in slices) == total.cost_usd
        assert sum(s.calls for s in slices) == total.calls
    assert sum(m.cost_usd for m in board.models) == total.cost_usd
    assert sum(m.call_share for m in board.models) == pytest.approx(1)
    assert sum(d.cost_usd for d in board.days) == total.cost_usd
    assert board.error_rate == pytest.approx(1 / 7)


def test_cache_saving_is_what_the_hits_saved(mixed: Path) -> None:
    """The cache saving is the saved_usd of exact and semantic hits; the hit rate counts them."""
    with Ledger(mixed) as ledger:
        hits = ledger.records(cache="exact")
        board = dashboard(ledger)
    assert len(hits) == 2 and board.cache_hits == 2
    assert board.savings.cache.usd == sum(r.saved_usd for r in hits) > 0
    assert board.cache_hit_rate == pytest.approx(2 / 7)
    assert board.cache_hits_by_kind == {"exact": 2}


def test_routing_saving_reprices_usage_at_the_requested_model(mixed: Path) -> None:
    """Routed rows save the requested model's price for their usage minus their real cost."""
    gpt_4o = PRICES.require("gpt-4o")
    with Ledger(mixed) as ledger:
        routed = [r for r in ledger.records() if r.route]
        board = dashboard(ledger)
    assert len(routed) == 2 and {r.served_model for r in routed} == {"gpt-4o-mini"}
    expected = sum(compute_cost(gpt_4o, r.usage).usd - (r.cost_usd or 0) for r in routed)
    assert board.savings.routing.usd == expected > 0
    assert board.savings.routing.calls == board.savings.cheaper_calls == 2
    assert board.cheaper_share == pytest.approx(2 / 7)


def test_routing_saving_by_hand(tmp_path: Path) -> None:
    """1000 in and 100 out at gpt-4o ($0.0035) instead of gpt-4o-mini ($0.00021) saves $0.00329."""
    path = write(
        tmp_path / "l.db",
        record(served_model="gpt-4o-mini", route="rule:classify"),
        record(served_model="gpt-4o-mini-2024-07-18", route="tier:draft"),  # a snapshot name
        record(served_model="gpt-4o-2099-01-01", route="complexity:0.9"),  # gpt-4o itself
    )
    with Ledger(path) as ledger:
        savings = dashboard(ledger).savings
    assert savings.routing.usd == Decimal("0.00658")
    assert savings.routing.calls == savings.cheaper_calls == 2


def test_routing_skips_unknown_prices_and_fallbacks_and_charges_discarded_cascades(
    tmp_path: Path,
) -> None:
    """Unknown prices and fallbacks are left out; a discarded cascade try counts against it."""
    discarded = record(requested_model="gpt-4o-mini", route="cascade:cheap(invalid_json)")
    path = write(
        tmp_path / "l.db",
        record(requested_model="my-model", served_model="gpt-4o-mini", route="rule:x"),
        record(served_model="my-finetune", route="rule:y", cost_usd=Decimal("0.01")),
        record(served_model="gpt-4o-mini", route="fallback:gpt-4o-mini"),
        record(served_model="gpt-4o-mini", route="rule:z+fallback:gpt-4o-mini"),
        record(served_model="gpt-4o-mini", route="cascade:cheap"),
        discarded,
    )
    with Ledger(path) as ledger:
        savings = dashboard(ledger).savings
    assert discarded.cost_usd == Decimal("0.00021")
    assert savings.routing.usd == Decimal("0.00329") - Decimal("0.00021")
    assert (savings.routing.calls, savings.cheaper_calls) == (2, 1)
    assert savings.discarded_cascade_calls == 1


def test_capping_saving_is_an_upper_bound_from_the_real_cap(mixed: Path) -> None:
    """Capped answers that used their whole limit save up to the rest of the limit asked for."""
    mini = PRICES.require("gpt-4o-mini")
    with Ledger(mixed) as ledger:
        capped = ledger.records(feature="classify")
        board = dashboard(ledger)
    assert [(r.requested_max_tokens, r.sent_max_tokens) for r in capped] == [(None, 3), (50, 3)]
    assert all(r.usage.output_tokens == 3 for r in capped)
    assert mini.max_output_tokens is not None
    tokens = (mini.max_output_tokens - 3) + (50 - 3)  # none asked: the model's maximum
    assert board.savings.capping.usd == tokens * mini.base.output / 1_000_000
    assert board.savings.capping.upper_bound and board.savings.capping.calls == 2


def test_capping_counts_only_answers_that_reached_a_lowered_limit(tmp_path: Path) -> None:
    """An answer below its limit, or a limit not lowered, saves nothing; a cap is at most the
    model's maximum output."""
    path = write(
        tmp_path / "l.db",
        record(requested_max_tokens=1000, sent_max_tokens=100),  # saves 900 * $10/M
        record(requested_max_tokens=1000, sent_max_tokens=200),  # stopped at 100: nothing
        record(requested_max_tokens=100, sent_max_tokens=100),  # not lowered: nothing
        record(requested_max_tokens=10**6, sent_max_tokens=100),  # beyond 16384: capped there
        record(sent_max_tokens=100, cost_usd=None),  # unpriced: nothing
    )
    with Ledger(path) as ledger:
        capping = dashboard(ledger).savings.capping
    assert capping.usd == Decimal("0.009") + (16384 - 100) * Decimal(10) / 1_000_000
    assert capping.calls == 2


def test_prompt_caching_saving_from_real_cache_reads_and_writes(mixed: Path) -> None:
    """2000 Haiku cache reads save $0.9/M each; 300 5-minute writes cost $0.25/M more."""
    with Ledger(mixed) as ledger:
        board = dashboard(ledger)
    assert board.savings.prompt_caching.usd == Decimal("0.0018") - Decimal("0.000075")
    assert board.savings.prompt_caching.calls == 1


def test_prompt_caching_uses_each_rows_own_rates(tmp_path: Path) -> None:
    """The rates stored with a row are used, 1-hour writes included; the net can be negative."""
    rates = {
        "input": "2",
        "output": "8",
        "cache_read": "0.5",
        "cache_write_5m": "2.5",
        "cache_write_1h": "4",
    }
    path = write(
        tmp_path / "l.db",
        record(
            usage=Usage(cache_read_tokens=1000, cache_write_1h_tokens=500),
            cost_usd=Decimal("0.0025"),
            rates=rates,
        ),
        record(usage=Usage(cache_write_5m_tokens=2000), cost_usd=Decimal("0.005"), rates=rates),
        record(usage=Usage(cache_read_tokens=10**6), cost_usd=None),  # unpriced: skipped
    )
    with Ledger(path) as ledger:
        saving = dashboard(ledger).savings.prompt_caching
    # (1000 * 1.5 - 500 * 2) + (-2000 * 0.5), per million
    assert saving.usd == Decimal("-0.0005")
    assert saving.calls == 2


def test_unpriced_models_and_model_shares(tmp_path: Path) -> None:
    """Unpriced calls are counted and named; shares of calls and spend are per model."""
    path = write(
        tmp_path / "l.db",
        record(),
        record(),
        record(requested_model="gpt-4o-mini"),
        record(requested_model="my-finetune"),
    )
    with Ledger(path) as ledger:
        board = dashboard(ledger)
    assert board.unpriced == 1 and board.unpriced_models == ("my-finetune",)
    shares = {m.model: (m.call_share, m.cost_share) for m in board.models}
    assert shares["gpt-4o"] == (0.5, pytest.approx(7000 / 7210))
    assert shares["my-finetune"] == (0.25, 0.0)


def test_a_time_range_limits_every_figure(tmp_path: Path) -> None:
    """--since/--until bound the rows, the dashboard and the savings alike."""
    path = write(
        tmp_path / "l.db",
        *(record(ts=DAY + timedelta(days=d), feature=f"f{d}") for d in range(3)),
        record(ts=DAY + timedelta(days=1), served_model="gpt-4o-mini", route="rule:r"),
    )
    with Ledger(path) as ledger:
        board = dashboard(
            ledger, since=DAY.date() + timedelta(days=1), until=DAY.date() + timedelta(days=2)
        )
    assert board.calls == 2 and [d.day for d in board.days] == ["2026-11-03"]
    assert {s.key for s in board.features} == {"f1", None}
    assert board.savings.routing.calls == 1


def test_an_empty_ledger_gives_an_empty_dashboard(tmp_path: Path) -> None:
    """No calls: zero figures, no lists, no division by zero."""
    with Ledger(tmp_path / "l.db") as ledger:
        board = dashboard(ledger)
    assert board.calls == 0 and board.cache_hit_rate == board.error_rate == 0.0
    assert board.days == () and board.savings.exact_usd == 0


# -- the command ------------------------------------------------------------------------------


def test_text_report_shows_the_table_and_every_dashboard_figure(
    mixed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text report has the grouped table, totals, savings by kind, features, users, models."""
    code, out, err = run(capsys, "--ledger", str(mixed), "--group-by", "feature")
    assert code == 0 and err == ""
    assert "total: $" in out and "over 7 calls" in out
    assert "cache: 2 of 7 calls answered from the cache (28.6%), saved $" in out
    assert "errors: 1 of 7 calls (14.3%)" in out and "unpriced: 0 calls" in out
    for line in ("costguard cache", "routing", "output caps (up to)", "provider prompt caching"):
        assert line in out
    assert "Spend by feature" in out and "Top spenders (users)" in out and "Models" in out
    assert "sent to a cheaper model than requested: 2 of 7 calls (28.6%)" in out


def test_top_limits_rows_by_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--top 2 keeps the two most expensive groups and says how many there were."""
    path = write(
        tmp_path / "l.db",
        record(feature="cheap", usage=Usage(10, output_tokens=1)),
        record(feature="dear", usage=Usage(10_000, output_tokens=1000)),
        record(feature="middle"),
    )
    code, out, _ = run(capsys, "--ledger", str(path), "--group-by", "feature", "--top", "2")
    assert code == 0
    table = out.split("\n\n")[0]
    assert table.index("dear") < table.index("middle") and "cheap" not in table
    assert "(top 2 of 3 rows by cost)" in out
    assert "total: $0.0385 over 3 calls" in out  # the total is still the whole range's


def test_json_has_exact_rows_and_the_dashboard(
    mixed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json gives rows and dashboard figures, money as exact decimal strings."""
    code, out, _ = run(capsys, "--ledger", str(mixed), "--group-by", "feature,user", "--json")
    assert code == 0
    data = json.loads(out)
    with Ledger(mixed) as ledger:
        [total] = ledger.summary([])
        board = dashboard(ledger)
    assert data["group_by"] == ["feature", "user"]
    assert sum(Decimal(r["cost_usd"]) for r in data["rows"]) == total.cost_usd
    dash = data["dashboard"]
    assert Decimal(dash["total_usd"]) == total.cost_usd and dash["calls"] == 7
    savings = dash["savings"]
    assert Decimal(savings["routing"]["usd"]) == board.savings.routing.usd
    assert Decimal(savings["capping"]["usd"]) == board.savings.capping.usd
    assert savings["capping"]["upper_bound"] is True
    assert Decimal(savings["prompt_caching"]["usd"]) == Decimal("0.001725")
    assert dash["cache"] == {"hits": 2, "hit_rate": 0.2857, "exact": 2, "semantic": 0}
    assert {f["feature"] for f in dash["by_feature"]} == {"classify", "chat"}
    assert {m["model"] for m in dash["models"]} >= {"gpt-4o", "gpt-4o-mini"}
    assert all(isinstance(d["cost_usd"], str) for d in dash["days"])


def test_csv_is_the_grouped_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--csv prints a header and one row per group; empty keys are empty cells."""
    path = write(tmp_path / "l.db", record(feature="a", user="u1"), record(user="u2"))
    code, out, _ = run(capsys, "--ledger", str(path), "--group-by", "feature,user", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["feature"], r["user"], r["cost_usd"]) for r in rows] == [
        ("", "u2", "0.0035"),
        ("a", "u1", "0.0035"),
    ]


def test_since_and_until_take_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows on several days: --since includes its day, --until excludes its own."""
    path = write(tmp_path / "l.db", *(record(ts=DAY + timedelta(days=d)) for d in range(4)))
    args = ["--ledger", str(path), "--group-by", "day", "--json"]
    code, out, _ = run(capsys, *args, "--since", "2026-11-03", "--until", "2026-11-05")
    assert code == 0
    assert [r["day"] for r in json.loads(out)["rows"]] == ["2026-11-03", "2026-11-04"]


def test_since_takes_a_relative_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since 7d keeps a call from two days ago and drops one from three weeks ago."""
    now = datetime.now(UTC)
    path = write(
        tmp_path / "l.db",
        record(ts=now - timedelta(days=2), feature="recent"),
        record(ts=now - timedelta(days=21), feature="old"),
    )
    code, out, _ = run(capsys, "--ledger", str(path), "--group-by", "feature", "--since", "7d")
    assert code == 0 and "recent" in out and "old" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "bad date 'last tuesday'"),
        (["--until", "2026-13-01"], "bad date '2026-13-01'"),
        (["--group-by", "feature,colour"], "unknown --group-by key 'colour'; valid keys: "),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "must be before --until"),
        (["--since", "2999-01-01"], "has no calls since 2999-01-01"),
        (["--html", "no/such/dir/r.html"], "no directory no/such/dir"),
        (["--html", "."], "it is a directory"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    """Bad dates, keys, ranges and HTML paths: one `costguard:` line on stderr, exit code 2."""
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "l.db", record())
    code, out, err = run(capsys, "--ledger", str(path), *args)
    assert code == 2 and out == ""
    assert err.startswith("costguard: ") and message in err and err.count("\n") == 1


def test_unknown_group_key_lists_every_valid_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error for a bad --group-by names all the keys that would work."""
    code, _, err = run(capsys, "--ledger", str(write(tmp_path / "l.db")), "--group-by", "colour")
    assert code == 2 and all(key in err for key in GROUP_KEYS)


def test_an_empty_ledger_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ledger with no calls at all says so, in every output format."""
    path = write(tmp_path / "l.db")
    for fmt in ([], ["--json"], ["--csv"], ["--html", str(tmp_path / "r.html")]):
        code, out, err = run(capsys, "--ledger", str(path), *fmt)
        assert code == 2 and out == "" and "has no calls yet" in err
    assert not (tmp_path / "r.html").exists()


def test_a_missing_ledger_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ledger path that does not exist: one line, exit 2, nothing created."""
    code, _, err = run(capsys, "--ledger", str(tmp_path / "nope.db"), "--json")
    assert code == 2 and "no ledger at" in err and not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize(
    "args", [["--top", "0"], ["--top", "many"], ["--json", "--csv"], ["--csv", "--html", "r.html"]]
)
def test_argument_mistakes_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """A --top that is not a positive number, or two output formats at once, is a usage error."""
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--ledger", str(write(tmp_path / "l.db", record())), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "costguard: " in err and "Traceback" not in err


def test_html_writes_one_file_and_says_where(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html FILE writes the page and prints one line naming it."""
    target = tmp_path / "report.html"
    code, out, _ = run(capsys, "--ledger", str(mixed), "--html", str(target))
    assert code == 0 and out.startswith(f"wrote {target}: $") and out.count("\n") == 1
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_html_replaces_the_file_whole_and_owner_only(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html over an old page swaps in the new one by rename: readable by you only (it holds
    feature and user names), with no temporary file left beside it."""
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    target.write_text("old page")
    target.chmod(0o644)
    code, _, _ = run(capsys, "--ledger", str(mixed), "--html", str(target))
    assert code == 0 and target.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_the_rest_row_says_when_it_holds_unpriced_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --top 1, the "(N more)" rows of features, users and models are marked
    `+ unpriced` when the calls they fold in include unpriced ones."""
    path = write(
        tmp_path / "l.db",
        record(feature="big", user="u1", usage=Usage(10_000, output_tokens=1000)),
        record(feature="mystery", user="u2", requested_model="my-finetune"),
    )
    code, out, _ = run(capsys, "--ledger", str(path), "--top", "1")
    assert code == 0
    rest = [line for line in out.splitlines() if line.startswith("(1 more)")]
    assert len(rest) == 3 and all("$0 + unpriced" in line for line in rest)
