"""`costguard prices [MODEL | --search TEXT] [--json]` and `costguard prices check`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import costguard
from costguard.cli import main
from costguard.ledger import CallRecord, Ledger, new_id
from costguard.ledger._store import _row
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


def _record(requested: str | None, served: str | None, cost: str | None = None) -> CallRecord:
    return CallRecord(
        id=new_id(),
        ts=datetime(2026, 3, 1, tzinfo=UTC),
        provider="openai",
        operation="chat.completions.create",
        requested_model=requested,
        served_model=served,
        cost_usd=None if cost is None else Decimal(cost),
    )


def _ledger(path: Path, *records: CallRecord) -> Path:
    with Ledger(path) as ledger:
        for record in records:
            ledger.write(record)
    return path


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("costguard: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_check_passes_when_every_model_is_priced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Calls made through the SDKs to priced models: check says so and exits 0."""
    path = tmp_path / "l.db"
    with costguard.CostGuardClient(ledger=path) as guard:
        fake = FakeProvider()
        guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o-mini", messages=HI)
        claude = guard.wrap(fake.anthropic())
        claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)
    assert main(["prices", "check", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "all 2 models in the ledger have a price" in out


def test_check_lists_unpriced_requested_and_served_models_with_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A requested and a served model without prices are listed with their calls; exit 1."""
    path = tmp_path / "l.db"
    fake = FakeProvider()
    fake.reply("ok", model="acme-served-9")  # a priced request, served by an unpriced model
    with costguard.CostGuardClient(ledger=path, cache=None) as guard:
        client = guard.wrap(fake.openai())
        client.chat.completions.create(model="gpt-4o", messages=HI)  # takes the scripted reply
        with pytest.warns(costguard.CostGuardWarning, match="gpt-mystery"):
            for _ in range(2):
                client.chat.completions.create(model="gpt-mystery", messages=HI)
    assert main(["prices", "check", "--ledger", str(path)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert lines["gpt-mystery"] == ["2", "2", "2"]  # calls, as requested, as served
    assert lines["acme-served-9"] == ["1", "0", "1"]
    assert "gpt-4o" not in lines
    assert "PriceTable.override()" in out


def test_check_json_counts_each_call_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json lists unpriced models; a call naming one model twice counts once; exit 1."""
    path = _ledger(
        tmp_path / "l.db",
        _record("acme-1", "acme-1"),
        _record("acme-1", "acme-1-2026-01-01"),
        _record("gpt-4o", "acme-1"),
        _record("gpt-4o", "gpt-4o", "0.01"),
        _record(None, None),
    )
    assert main(["prices", "check", "--ledger", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["models_seen"] == 3 and out["calls_recorded_unpriced"] == 4
    assert out["unpriced"] == [
        {"model": "acme-1", "calls": 3, "requested": 2, "served": 2},
        {"model": "acme-1-2026-01-01", "calls": 1, "requested": 0, "served": 1},
    ]


def test_check_uses_an_extra_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --prices FILE, models priced there pass (snapshots resolve to their family)."""
    path = _ledger(tmp_path / "l.db", _record("acme-1", "acme-1-2026-01-01"))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"acme-1": {"base": {"input": 1, "output": 2}}}}))
    argv = ["prices", "check", "--ledger", str(path), "--prices", str(prices), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["unpriced"] == []


def test_check_notes_calls_recorded_before_their_price_was_known(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All priced now, but unpriced rows from before are pointed out (exit 0)."""
    path = _ledger(tmp_path / "l.db", _record("gpt-4o", "gpt-4o"))
    assert main(["prices", "check", "--ledger", str(path)]) == 0
    assert "1 calls were recorded unpriced" in capsys.readouterr().out


def test_check_on_an_empty_ledger_has_nothing_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger with no calls passes, and says there was nothing to check."""
    path = _ledger(tmp_path / "l.db")
    assert main(["prices", "check", "--ledger", str(path)]) == 0
    assert "nothing to check" in capsys.readouterr().out


@pytest.mark.skipif(sys.platform == "win32", reason="journals need POSIX flock")
def test_check_sees_rows_a_dead_writer_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Journal rows of a killed writer are committed before the check reads the ledger."""
    path = _ledger(tmp_path / "l.db", _record("gpt-4o", "gpt-4o", "0.01"))
    orphan = tmp_path / "l.db-pending" / "999999-dead.jsonl"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(json.dumps(_row(_record("acme-9", "acme-9"))).encode() + b"\n")
    assert main(["prices", "check", "--ledger", str(path), "--json"]) == 1
    assert [u["model"] for u in json.loads(capsys.readouterr().out)["unpriced"]] == ["acme-9"]


def test_check_on_a_missing_ledger_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ledger at that path: exit 2, one line, and nothing is created."""
    missing = tmp_path / "nope.db"
    assert "no ledger at" in _one_line(capsys, ["prices", "check", "--ledger", str(missing)])
    assert not missing.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prices", "check", "--search", "gpt"], "--search does not go with"),
        (["prices", "gpt-4o", "--ledger", "x.db"], "--ledger goes with `costguard prices check`"),
        (["prices", "gpt-4o", "--search", "gpt"], "give a MODEL or --search TEXT, not both"),
        (["prices", "--search", "zzz-no-such"], "no model matches 'zzz-no-such'"),
    ],
)
def test_options_of_the_other_form_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Mixing `check` with listing options (or MODEL with --search) is one line, exit 2."""
    assert message in _one_line(capsys, argv)


def test_prices_json_gives_exact_rates(capsys: pytest.CaptureFixture[str]) -> None:
    """`prices MODEL --json` gives the resolved model's rates as exact decimal strings."""
    assert main(["prices", "gpt-4o-2024-08-06", "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    rates = out["models"]["gpt-4o-2024-08-06"]
    assert rates["base"]["input"] == "2.5" and rates["base"]["output"] == "10"
    assert rates["batch"]["input"] == "1.25"
    assert main(["prices", "--search", "haiku", "--json"]) == 0
    assert "claude-haiku-4-5" in json.loads(capsys.readouterr().out)["models"]


def test_prices_with_a_price_file_shows_its_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--prices FILE adds its models to the listing."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"acme-1": {"base": {"input": 1, "output": 2}}}}))
    assert main(["prices", "acme-1", "--prices", str(prices)]) == 0
    assert "acme-1" in capsys.readouterr().out


def test_rates_written_with_an_exponent_print_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A price file's `1e1` and `2.50` are listed as `$10` and `$2.5`, never `$1E+1`."""
    prices = tmp_path / "prices.json"
    rates = {"input": "1e1", "output": "2.50", "cache_read": "1E-1"}
    prices.write_text(json.dumps({"models": {"acme-1": {"base": rates}}}))
    assert main(["prices", "acme-1", "--prices", str(prices)]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:5] == ["acme-1", "openai", "$10", "$2.5", "$0.1"]
