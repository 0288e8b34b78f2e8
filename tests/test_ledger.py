from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costguard.ledger
from costguard import LedgerError, Usage
from costguard.ledger import CallRecord, Ledger, SummaryRow, default_ledger_path, new_id
from costguard.ledger._migrations import MIGRATIONS
from costguard.ledger._store import _row

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def record(**changes: object) -> CallRecord:
    base = CallRecord(new_id(), T0, "openai", "chat.completions.create", requested_model="gpt-x")
    return replace(base, **changes)  # type: ignore[arg-type]


def id_ms(id_: str) -> int:
    value = 0
    for char in id_:
        value = value * 32 + CROCKFORD.index(char)
    return value >> 80


# -- ids ------------------------------------------------------------------------------------


def test_ledger_exports_a_sorted_all() -> None:
    assert costguard.ledger.__all__ == sorted(costguard.ledger.__all__)
    for name in costguard.ledger.__all__:
        assert getattr(costguard.ledger, name)


def test_new_id_is_26_crockford_characters_encoding_the_millisecond() -> None:
    id_ = new_id(1_700_000_000_123)
    assert len(id_) == 26
    assert set(id_) <= set(CROCKFORD)
    assert id_ms(id_) == 1_700_000_000_123


@given(st.integers(0, 2**48 - 2), st.integers(1, 2**20))
def test_ids_sort_by_their_millisecond(ms: int, later: int) -> None:
    assert new_id(ms) < new_id(min(ms + later, 2**48 - 1))


def test_ids_made_in_the_same_millisecond_strictly_increase() -> None:
    ids = [new_id(1_000) for _ in range(1000)]
    assert ids == sorted(set(ids))
    assert {id_ms(i) for i in ids} == {1_000}


def test_ids_from_the_clock_increase_even_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def mint(out: list[str]) -> None:
        out.extend(new_id() for _ in range(2000))

    threads = [threading.Thread(target=mint, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in made:
        assert out == sorted(out)
    assert len({i for out in made for i in out}) == 8000


def test_new_id_rejects_a_millisecond_outside_48_bits() -> None:
    with pytest.raises(ValueError, match="now_ms"):
        new_id(2**48)


# -- CallRecord -----------------------------------------------------------------------------


def test_record_timestamps_are_normalised_to_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=5)))
    assert record(ts=local).ts.tzinfo == UTC
    assert record(ts=local).ts == T0


def test_record_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        record(ts=datetime(2025, 1, 1))


def test_the_ledger_refuses_a_cost_finer_than_a_picodollar() -> None:
    with Ledger(":memory:") as ledger, pytest.raises(LedgerError, match="picodollar"):
        ledger.write(record(cost_usd=Decimal("0.0000000000001")))


def test_record_refuses_a_float_cost() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        record(cost_usd=0.5)


def test_the_ledger_refuses_a_cost_beyond_64_bit_picodollars() -> None:
    with Ledger(":memory:") as ledger, pytest.raises(LedgerError, match="too large"):
        ledger.write(record(cost_usd=Decimal("1e7")))


def test_record_is_priced_when_it_has_a_cost() -> None:
    assert record(cost_usd=Decimal(0)).priced
    assert not record().priced


# -- round trip and totals ------------------------------------------------------------------

text = st.text(max_size=12)
maybe_text = st.none() | text
picodollars = st.integers(0, 2**63 - 1).map(lambda p: Decimal(p).scaleb(-12))
tokens = st.integers(0, 2**40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
records = st.builds(
    CallRecord,
    id=st.just(""),
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    provider=st.sampled_from(["openai", "anthropic"]),
    operation=st.sampled_from(["chat.completions.create", "messages.create"]),
    requested_model=st.none() | st.sampled_from(["a", "b"]),
    served_model=st.none() | st.sampled_from(["a", "b", "c"]),
    usage=st.builds(Usage, tokens, tokens, tokens, tokens, tokens, tokens),
    raw_usage=st.none() | st.dictionaries(text, json_values, max_size=4),
    cost_usd=st.none() | picodollars,
    saved_usd=picodollars,
    rates=st.none() | st.dictionaries(text, text, max_size=3),
    price_version=maybe_text,
    service_tier=maybe_text,
    cache=st.sampled_from(["miss", "exact", "semantic", "off"]),
    latency_ms=st.floats(0, 1e9),
    attempts=st.integers(1, 10),
    status=st.sampled_from(["ok", "error", "incomplete"]),
    error_type=maybe_text,
    stream=st.booleans(),
    feature=st.none() | st.sampled_from(["search", "chat"]),
    user=maybe_text,
    tenant=st.none() | st.sampled_from(["t1", "t2"]),
    tags=st.dictionaries(text, text, max_size=3),
    api_key_hash=maybe_text,
    api_key_last4=maybe_text,
)


def with_ids(rows: list[CallRecord]) -> list[CallRecord]:
    return [replace(r, id=new_id()) for r in rows]


@given(st.lists(records, max_size=5))
def test_every_field_survives_a_write_and_read_back(rows: list[CallRecord]) -> None:
    rows = with_ids(rows)
    with Ledger(":memory:") as ledger:
        for r in rows:
            ledger.write(r)
        assert ledger.records() == sorted(rows, key=lambda r: (r.ts, r.id))


GROUPABLE = ["model", "provider", "feature", "tenant", "status", "cache", "day"]


def key_of(r: CallRecord, keys: list[str]) -> dict[str, str | None]:
    values = {
        "model": r.served_model or r.requested_model,
        "provider": r.provider,
        "feature": r.feature,
        "tenant": r.tenant,
        "status": r.status,
        "cache": r.cache,
        "day": r.ts.date().isoformat(),
    }
    return {k: values[k] for k in keys}


@given(st.lists(records, max_size=8), st.lists(st.sampled_from(GROUPABLE), max_size=3))
def test_summary_totals_equal_the_exact_sums_of_the_rows(
    rows: list[CallRecord], keys: list[str]
) -> None:
    keys = list(dict.fromkeys(keys))
    rows = with_ids(rows)
    expected: dict[tuple[str | None, ...], list[Decimal | int]] = defaultdict(
        lambda: [0, 0, 0, Decimal(0), Decimal(0), 0, 0, 0, 0]
    )
    for r in rows:
        acc = expected[tuple(key_of(r, keys).values())]
        u = r.usage
        for i, v in enumerate(
            [
                1,
                r.status == "error",
                r.cost_usd is None,
                r.cost_usd or 0,
                r.saved_usd,
                u.input_tokens,
                u.output_tokens,
                u.cache_read_tokens,
                u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            ]
        ):
            acc[i] += v
    with Ledger(":memory:") as ledger:
        for r in rows:
            ledger.write(r)
        got = ledger.summary(keys)
        overall = ledger.summary([])
    assert {tuple(s.key.values()): list(astuple_row(s)) for s in got} == dict(expected)
    assert [s.cost_usd for s in got] == sorted((s.cost_usd for s in got), reverse=True)
    assert sum((s.cost_usd for s in overall), Decimal(0)) == sum(
        (r.cost_usd or 0 for r in rows), Decimal(0)
    )


def astuple_row(s: SummaryRow) -> tuple[int | Decimal, ...]:
    return (
        s.calls,
        s.errors,
        s.unpriced,
        s.cost_usd,
        s.saved_usd,
        s.input_tokens,
        s.output_tokens,
        s.cache_read_tokens,
        s.cache_write_tokens,
    )


def test_summary_stays_exact_when_the_total_overflows_64_bits() -> None:
    big = Decimal("9000000.000000000001")
    with Ledger(":memory:") as ledger:
        for _ in range(3):
            ledger.write(record(cost_usd=big))
        [row] = ledger.summary()
    assert row.cost_usd == 3 * big


# -- queries --------------------------------------------------------------------------------


def test_records_are_filtered_by_time_and_exact_column_values() -> None:
    with Ledger(":memory:") as ledger:
        for day in range(5):
            ledger.write(record(ts=T0 + timedelta(days=day), feature="a" if day % 2 else None))
        assert len(ledger.records(since=date(2025, 3, 2), until=T0 + timedelta(days=3))) == 2
        assert [r.ts.day for r in ledger.records(feature="a")] == [2, 4]
        assert [r.ts.day for r in ledger.records(feature=None)] == [1, 3, 5]
        assert ledger.records(provider="anthropic") == []


def test_records_limit_keeps_the_newest_in_time_order() -> None:
    with Ledger(":memory:") as ledger:
        for day in (3, 1, 2, 5, 4):
            ledger.write(record(ts=T0 + timedelta(days=day)))
        assert [r.ts.day for r in ledger.records(limit=2)] == [5, 6]


def test_records_refuses_an_unknown_filter_and_names_the_allowed_ones() -> None:
    with Ledger(":memory:") as ledger, pytest.raises(ValueError, match=r"'colour'.*feature"):
        ledger.records(colour="red")


def test_records_refuses_a_naive_time_bound() -> None:
    with Ledger(":memory:") as ledger, pytest.raises(ValueError, match="timezone-aware"):
        ledger.records(since=datetime(2025, 1, 1))


def test_summary_by_model_falls_back_to_the_requested_model() -> None:
    with Ledger(":memory:") as ledger:
        ledger.write(record(requested_model="gpt-x", served_model="gpt-x-2025", cost_usd=1))
        ledger.write(record(requested_model="gpt-y", served_model=None, cost_usd=2))
        ledger.write(record(requested_model="gpt-y", status="error"))
        rows = ledger.summary("model")
    assert [(r.key["model"], r.calls, r.errors, r.unpriced, r.cost_usd) for r in rows] == [
        ("gpt-y", 2, 1, 1, Decimal(2)),
        ("gpt-x-2025", 1, 0, 0, Decimal(1)),
    ]


def test_summary_groups_by_utc_day_and_several_keys() -> None:
    with Ledger(":memory:") as ledger:
        ledger.write(record(ts=datetime(2025, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))))
        ledger.write(record(ts=datetime(2025, 3, 2, 0, 30, tzinfo=UTC), provider="anthropic"))
        keys = [dict(r.key) for r in ledger.summary(["day", "provider"])]
    assert sorted(keys, key=str) == [
        {"day": "2025-03-02", "provider": "anthropic"},
        {"day": "2025-03-02", "provider": "openai"},
    ]


def test_summary_refuses_an_unknown_key_and_names_the_allowed_ones() -> None:
    with Ledger(":memory:") as ledger, pytest.raises(ValueError, match=r"'colour'.*day.*model"):
        ledger.summary(["model", "colour"])


def test_summary_of_an_empty_ledger_is_empty() -> None:
    with Ledger(":memory:") as ledger:
        assert ledger.summary([]) == []
        assert ledger.summary("model") == []


# -- files, paths, errors -------------------------------------------------------------------


def test_default_path_is_under_costguard_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COSTGUARD_HOME", str(tmp_path / "home"))
    assert default_ledger_path() == tmp_path / "home" / "ledger.db"
    with Ledger() as ledger:
        assert ledger.path == tmp_path / "home" / "ledger.db"
    assert (tmp_path / "home" / "ledger.db").is_file()


def test_default_path_without_costguard_home_is_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import platformdirs

    monkeypatch.delenv("COSTGUARD_HOME", raising=False)
    assert default_ledger_path() == platformdirs.user_data_path("costguard") / "ledger.db"


def test_missing_parent_directories_are_created_owner_only(tmp_path: Path) -> None:
    with Ledger(tmp_path / "a" / "b" / "ledger.db"):
        pass
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "a" / "b" / "ledger.db").stat().st_mode & 0o077 == 0


def test_a_path_under_a_regular_file_fails_at_construction(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "ledger.db"
    with pytest.raises(LedgerError, match=rf"{re.escape(str(path))}.*Not a directory"):
        Ledger(path)


def test_a_directory_as_the_path_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=rf"{re.escape(str(tmp_path))}.*Is a directory"):
        Ledger(tmp_path)


def test_a_file_that_is_not_sqlite_fails_at_construction(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match=r"junk\.db.*not a database"):
        Ledger(tmp_path / "junk.db")


def test_a_write_is_visible_to_another_connection_once_flushed(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as writer, Ledger(tmp_path / "l.db") as reader:
        writer.write(r := record())
        writer.flush()
        assert reader.records() == [r]


def test_a_journal_left_by_a_dead_writer_is_committed_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        ledger.write(first := record())
    orphan = tmp_path / "l.db-pending" / "999999-dead.jsonl"
    orphan.parent.mkdir(exist_ok=True)
    rows = [_row(first), _row(second := record())]  # the first was committed already
    orphan.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + b'["torn')
    with Ledger(path) as ledger:
        assert ledger.records() == [first, second]
    assert not orphan.exists()


def test_a_live_writers_journal_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as writer:
        writer.write(record())
        with Ledger(path):
            pass
        assert len(list((tmp_path / "l.db-pending").glob("*.jsonl"))) == 1
        assert len(writer.records()) == 1


def test_writing_the_same_record_twice_stores_it_once(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.write(r := record())
        ledger.write(r)
        assert ledger.records() == [r]


def test_writing_to_a_closed_ledger_raises_ledger_error() -> None:
    ledger = Ledger(":memory:")
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.write(record())


def test_the_schema_is_migrated_once_and_tracked_in_user_version(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path):
        pass
    with Ledger(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(calls)")}
        assert {"calls_ts"} <= indexes
    finally:
        conn.close()


def test_the_clock_stamps_when_the_ledger_was_created_and_opened(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path, clock=lambda: T0):
        pass
    with Ledger(path, clock=lambda: T0 + timedelta(days=1)):
        pass
    conn = sqlite3.connect(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()
    assert datetime.fromisoformat(meta["created_at"]) == T0
    assert datetime.fromisoformat(meta["last_opened_at"]) == T0 + timedelta(days=1)


# -- api key fingerprints -------------------------------------------------------------------


def test_key_fingerprints_are_stable_per_ledger_and_differ_between_ledgers(
    tmp_path: Path,
) -> None:
    key = "sk-proj-abcdefghijklmnopWXYZ"
    with Ledger(tmp_path / "a.db") as a:
        first = a.key_fingerprint(key)
    with Ledger(tmp_path / "a.db") as a, Ledger(tmp_path / "b.db") as b:
        assert a.key_fingerprint(key) == first
        assert b.key_fingerprint(key)[0] != first[0]
    digest, last4 = first
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert last4 == "WXYZ"


def test_a_short_key_gets_no_last4_because_it_would_reveal_too_much() -> None:
    with Ledger(":memory:") as ledger:
        assert ledger.key_fingerprint("sk-test")[1] == ""


def test_the_raw_api_key_is_never_stored(tmp_path: Path) -> None:
    key = "sk-proj-SECRETSECRETSECRET1234"
    with Ledger(tmp_path / "l.db") as ledger:
        digest, last4 = ledger.key_fingerprint(key)
        ledger.write(record(api_key_hash=digest, api_key_last4=last4))
        stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"SECRETSECRET" not in stored
    assert digest.encode() in stored


# -- concurrency and crashes ----------------------------------------------------------------


def test_threads_sharing_one_ledger_lose_no_writes(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:

        def work() -> None:
            for _ in range(200):
                ledger.write(record())

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ledger.records()) == 1600


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from decimal import Decimal
    from costguard.ledger import CallRecord, Ledger, new_id

    ledger = Ledger(sys.argv[1])
    for _ in range(int(sys.argv[2])):
        r = CallRecord(new_id(), datetime.now(UTC), "openai", "x", cost_usd=Decimal("0.001"))
        ledger.write(r)
        print(r.id, flush=True)
    ledger.close()
    """
)


def test_several_processes_can_write_one_ledger_at_once(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "300"], stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    printed = set()
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        printed |= set(out.decode().split())
    with Ledger(path) as ledger:
        assert {r.id for r in ledger.records()} == printed
        assert len(printed) == 900
        [total] = ledger.summary([])
    assert total.cost_usd == Decimal("0.9")


def test_a_process_killed_mid_writes_leaves_every_acknowledged_row(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "1000000"], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    acknowledged = [proc.stdout.readline() for _ in range(300)]
    os.kill(proc.pid, signal.SIGKILL)
    acknowledged += proc.stdout.readlines()
    proc.stdout.close()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    ids = {line.decode().strip() for line in acknowledged if line.endswith(b"\n")}
    with Ledger(path) as ledger:
        stored = {r.id for r in ledger.records()}
    assert len(ids) >= 300
    assert ids <= stored
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def test_importing_the_ledger_loads_no_heavy_modules() -> None:
    code = (
        "import sys, costguard.ledger; "
        "print(sorted(m for m in ('platformdirs', 'openai', 'anthropic', 'httpx', 'tiktoken')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip() == "[]"


def test_a_token_count_beyond_64_bits_raises_ledger_error() -> None:
    with Ledger(":memory:") as ledger, pytest.raises(LedgerError, match="too large"):
        ledger.write(record(usage=Usage(input_tokens=2**63)))


def test_a_forked_child_writes_through_a_journal_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        ledger.write(parent := record())
        pid = os.fork()
        if pid == 0:  # the child: write one row and leave without running atexit handlers
            try:
                ledger.write(record())
                ledger.flush()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        rows = ledger.records()
    assert len(rows) == 2 and parent in rows
