"""The deferred queue: defer, flush_deferred, resolve, and recovery after a crash at any step."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

import costguard
from _helpers import Clock, Crash, ask, chat, connection_error, refuse_batches, status_error
from costguard import InvalidRequestError
from costguard.batch import BatchItemError, BatchLimits, BatchOptions
from costguard.batch._store import BatchStore
from costguard.testing import FakeProvider

ULID = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """The ledger file of the ``guard`` fixture."""
    return tmp_path / "ledger.db"


def fresh(path: Path) -> costguard.CostGuardClient:
    """Another process's guard on the same ledger."""
    return costguard.CostGuardClient(ledger=path, cache=None)


def crash_at(step: str, options: BatchOptions) -> BatchOptions:
    def hook(name: str, ident: str) -> None:
        if name == step:
            raise Crash(f"died after {name} {ident}")

    return BatchOptions(sleep=options.sleep, clock=options.clock, on_step=hook)


def die_flushing(
    path: Path, client: Any, requests: list[dict[str, Any]], step: str, options: BatchOptions
) -> tuple[costguard.CostGuardClient, list[str]]:
    """A guard (another process) that defers ``requests``, then dies flushing, after ``step``."""
    dying = fresh(path)
    handles = [dying.defer(client, request) for request in requests]
    with pytest.raises(Crash):
        dying.flush_deferred(client, options=crash_at(step, options))
    return dying, handles


def states(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [s for (s,) in db.execute("SELECT state FROM batch_items ORDER BY id")]


def test_defer_queues_the_request_and_sends_nothing(
    guard: costguard.CostGuardClient, fake: FakeProvider, path: Path
) -> None:
    """defer returns a ULID handle; the request waits in the ledger, queued, never sent."""
    handle = guard.defer(fake.openai(), chat("later"), priority="high")
    assert len(handle) == 26 and set(handle) <= set(ULID)
    assert fake.requests == []
    with sqlite3.connect(path) as db:
        state, request, priority = db.execute(
            "SELECT state, request, priority FROM batch_items WHERE id = ?", (handle,)
        ).fetchone()
    assert (state, priority) == ("queued", 0)
    assert json.loads(request) == chat("later")


def test_flush_submits_the_queue_and_resolve_returns_the_sdk_object(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """flush_deferred sends queued requests as one batch; resolve gives the ChatCompletion."""
    handles = [guard.defer(fake.openai(), chat(t)) for t in ("a", "b")]
    report = guard.flush_deferred(fake.openai(), options=options)
    assert (report.submitted, report.batch_ids, report.open) == (
        2,
        fake.batches.ids,
        fake.batches.ids,
    )
    answers = [guard.resolve(h, fake.openai(), options=options) for h in handles]
    assert all(isinstance(a, ChatCompletion) for a in answers)
    rows = guard.ledger.records()
    assert len(rows) == 2 and {r.batch_id for r in rows} == set(fake.batches.ids)


def test_a_cron_style_flush_collects_what_ended_since_the_last_one(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Each flush polls open batches once: ended ones are collected, without waiting."""
    guard.defer(fake.openai(), chat("a"))
    first = guard.flush_deferred(fake.openai(), options=options)
    second = guard.flush_deferred(fake.openai(), options=options)
    third = guard.flush_deferred(fake.openai(), options=options)
    assert (first.submitted, first.finished) == (1, 0)
    assert (second.finished, second.open) == (0, first.batch_ids)
    assert (third.finished, third.open, third.submitted) == (1, [], 0)


def test_flush_with_wait_polls_until_every_batch_has_ended(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """flush_deferred(wait=True) returns once everything it submitted has been collected."""
    handle = guard.defer(fake.anthropic(), ask("hi"))
    report = guard.flush_deferred(fake.anthropic(), wait=True, options=options)
    assert (report.submitted, report.finished, report.open) == (1, 1, [])
    assert isinstance(guard.resolve(handle, fake.anthropic(), wait=False), Message)


def test_resolving_a_queued_handle_submits_it_and_waits(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """resolve on a handle never flushed submits that request and polls until it ends."""
    other = guard.defer(fake.openai(), chat("stays queued"))
    handle = guard.defer(fake.openai(), chat("now"))
    answer = guard.resolve(handle, fake.openai(), options=options)
    assert isinstance(answer, ChatCompletion)
    assert "now" in (answer.choices[0].message.content or "")
    assert guard.resolve(other, fake.openai(), wait=False, options=options) is None


def test_a_failed_request_raises_its_error_when_resolved_alone(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """resolve of one handle whose request failed raises its BatchItemError."""
    fake.fail(400, message="nope", endpoint="chat.completions")
    handle = guard.defer(fake.openai(), chat("x"))
    with pytest.raises(BatchItemError, match="nope") as raised:
        guard.resolve(handle, fake.openai(), options=options)
    assert raised.value.handle == handle


def test_high_priority_requests_are_submitted_first(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """With max_items, a flush takes high before normal before low, oldest first."""
    low = guard.defer(fake.openai(), chat("low"))
    high = guard.defer(fake.openai(), chat("high"), priority="high")
    normal = guard.defer(fake.openai(), chat("normal"), priority="normal")
    options = BatchOptions(sleep=clock.sleep, clock=clock, max_items=2)
    guard.flush_deferred(fake.openai(), options=options)
    [batch] = fake.batches.ids
    store = BatchStore.for_guard(guard)
    assert {i.id for i in store.items("batch_id = ?", [batch])} == {high, normal}
    assert store.items("id = ?", [low])[0].state == "queued"


def test_an_unknown_priority_is_refused(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """priority must be high, normal or low."""
    with pytest.raises(InvalidRequestError, match="priority"):
        guard.defer(fake.openai(), chat("x"), priority="urgent")


def test_a_bad_deferred_request_is_refused_at_once(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """defer checks the request like batch does; the field is named from "request"."""
    with pytest.raises(InvalidRequestError) as raised:
        guard.defer(fake.openai(), chat("x", stream=True))
    assert raised.value.field == "request.stream"
    assert states(guard.ledger.path) == []


def test_the_queue_never_holds_the_api_key(
    guard: costguard.CostGuardClient, fake: FakeProvider, path: Path, options: BatchOptions
) -> None:
    """Neither the ledger database nor its journal holds the client's key, only its hash."""
    key = "sk-secret-key-that-must-not-leak-1234"
    client = fake.openai(api_key=key)
    guard.defer(client, chat("x"))
    guard.flush_deferred(client, wait=True, options=options)
    guard.ledger.flush()
    for file in path.parent.rglob("*"):
        if file.is_file():
            assert key.encode() not in file.read_bytes(), file


def test_requests_are_forgotten_once_they_have_ended(
    guard: costguard.CostGuardClient, fake: FakeProvider, path: Path, options: BatchOptions
) -> None:
    """An ended item keeps its answer for resolve, not the request it was made of."""
    handle = guard.defer(fake.openai(), chat("private question"))
    guard.flush_deferred(fake.openai(), wait=True, options=options)
    with sqlite3.connect(path) as db:
        request, result = db.execute(
            "SELECT request, result FROM batch_items WHERE id = ?", (handle,)
        ).fetchone()
    assert request is None
    assert json.loads(result)["object"] == "chat.completion"


def test_only_a_client_with_the_same_key_flushes_a_queue(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """Requests queued with one API key are not sent with another (a different account)."""
    guard.defer(fake.openai(api_key="sk-team-a-000000000000"), chat("a"))
    report = guard.flush_deferred(fake.openai(api_key="sk-team-b-000000000000"), options=options)
    assert report.submitted == 0
    assert guard.flush_deferred(fake.openai(api_key="sk-team-a-000000000000")).submitted == 1


def test_a_crash_after_claiming_is_recovered_once_the_lease_lapses(
    path: Path, fake: FakeProvider, clock: Clock, options: BatchOptions
) -> None:
    """Died between claiming and sending: the claim holds for lease_s, then a fresh guard sends."""
    dying, [handle] = die_flushing(path, fake.openai(), [chat("a")], "claimed", options)
    assert states(path) == ["submitting"]
    survivor = fresh(path)
    assert survivor.flush_deferred(fake.openai(), options=options).submitted == 0  # leased
    clock.now += options.lease_s
    report = survivor.flush_deferred(fake.openai(), options=options)
    assert (report.recovered, report.submitted) == (1, 1)
    assert isinstance(survivor.resolve(handle, fake.openai(), options=options), ChatCompletion)
    assert len(fake.batches.ids) == 1
    dying.close()
    survivor.close()


def test_an_openai_batch_created_just_before_a_crash_is_adopted_not_sent_twice(
    path: Path, fake: FakeProvider, clock: Clock, options: BatchOptions
) -> None:
    """Died after the provider accepted the batch, before recording it: found by its metadata."""
    dying, handles = die_flushing(path, fake.openai(), [chat("a"), chat("b")], "created", options)
    assert len(fake.batches.ids) == 1
    clock.now += options.lease_s
    survivor = fresh(path)
    report = survivor.flush_deferred(fake.openai(), wait=True, options=options)
    assert (report.recovered, report.submitted, report.finished) == (2, 0, 2)
    assert len(fake.batches.ids) == 1
    assert all(
        isinstance(survivor.resolve(h, fake.openai(), options=options), ChatCompletion)
        for h in handles
    )
    assert len(survivor.ledger.records()) == 2
    dying.close()
    survivor.close()


def test_an_anthropic_batch_lost_in_a_crash_is_submitted_again(
    path: Path, fake: FakeProvider, clock: Clock, options: BatchOptions
) -> None:
    """Message batches carry no metadata: a batch whose id was never recorded is sent again."""
    dying, [handle] = die_flushing(path, fake.anthropic(), [ask("a")], "created", options)
    clock.now += options.lease_s
    survivor = fresh(path)
    assert isinstance(survivor.resolve(handle, fake.anthropic(), options=options), Message)
    assert len(fake.batches.ids) == 2
    assert len(survivor.ledger.records()) == 1
    dying.close()
    survivor.close()


def test_a_crash_after_submitting_is_collected_by_another_process(
    path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """Died with the batch recorded but not collected: any later guard collects it, once."""
    dying, [handle] = die_flushing(path, fake.openai(), [chat("a")], "submitted", options)
    assert states(path) == ["submitted"]
    survivor = fresh(path)
    assert isinstance(survivor.resolve(handle, fake.openai(), options=options), ChatCompletion)
    survivor.ledger.flush()  # other processes see a row once it is committed
    again = fresh(path)
    assert again.flush_deferred(fake.openai(), options=options).finished == 0
    assert len(again.ledger.records()) == 1
    for g in (dying, survivor, again):
        g.close()


def test_a_crash_between_writing_rows_and_recording_the_results_doubles_nothing(
    path: Path, fake: FakeProvider, options: BatchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows have fixed ids: a collection that died before its commit is redone, rows once."""
    dying = fresh(path)
    handle = dying.batch(fake.openai(), [chat("a"), chat("b")], wait=False, options=options)
    real_update = BatchStore.update

    def die_on_finish(conn: sqlite3.Connection, item_id: str, changes: Any, **where: Any) -> bool:
        if changes.get("state") == "finished":
            raise Crash("died while recording the results")
        return real_update(conn, item_id, changes, **where)

    monkeypatch.setattr(BatchStore, "update", staticmethod(die_on_finish))
    with pytest.raises(Crash):
        dying.resolve(handle, fake.openai(), options=options)
    monkeypatch.setattr(BatchStore, "update", staticmethod(real_update))
    dying.ledger.flush()
    assert len(dying.ledger.records()) == 2  # written before the crash
    survivor = fresh(path)
    assert len(survivor.resolve(handle, fake.openai(), options=options)) == 2
    assert len(survivor.ledger.records()) == 2
    dying.close()
    survivor.close()


def test_a_provider_outage_at_submission_keeps_the_requests_queued(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    options: BatchOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection error leaves the requests queued and is reported; the next flush sends."""
    client = fake.openai()
    guard.defer(client, chat("a"))
    real_create = client.batches.create
    refuse_batches(client, monkeypatch, connection_error())
    report = guard.flush_deferred(client, options=options)
    assert report.submitted == 0
    assert report.errors and "APIConnectionError" in report.errors[0]
    assert states(guard.ledger.path) == ["queued"]
    monkeypatch.setattr(client.batches, "create", real_create)
    assert guard.flush_deferred(client, options=options).submitted == 1


def test_a_batch_the_provider_refuses_fails_its_requests(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    options: BatchOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 400 for the batch itself cannot be cured by retrying: its requests fail, "rejected"."""
    client = fake.openai()
    handle = guard.defer(client, chat("a"))
    refuse_batches(client, monkeypatch, status_error(openai.BadRequestError, 400))
    report = guard.flush_deferred(client, options=options)
    assert report.errors and states(guard.ledger.path) == ["failed"]
    with pytest.raises(BatchItemError) as raised:
        guard.resolve(handle, client, options=options)
    assert raised.value.kind == "rejected"


def test_a_deferred_request_the_cache_can_answer_is_not_sent(
    cached_guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """At flush time the exact cache is consulted first: a held answer finishes the request."""
    guard = cached_guard
    client = guard.wrap(fake.openai())
    live = client.chat.completions.create(**chat("known"))
    handle = guard.defer(client, chat("known"))
    report = guard.flush_deferred(client, options=options)
    assert (report.cache_hits, report.submitted, fake.batches.ids) == (1, 0, [])
    assert guard.resolve(handle, client, wait=False) == live
    assert guard.ledger.records()[-1].cache == "exact"


def test_deferred_rows_keep_the_scope_they_were_queued_in(
    guard: costguard.CostGuardClient, fake: FakeProvider, options: BatchOptions
) -> None:
    """The ledger row of a deferred request is attributed to the scope around defer()."""
    with guard.scope(feature="digest", user="u9"):
        guard.defer(fake.openai(), chat("x"))
    guard.flush_deferred(fake.openai(), wait=True, options=options)
    [row] = guard.ledger.records()
    assert (row.feature, row.user, row.service_tier) == ("digest", "u9", "batch")


def test_a_deferred_request_too_large_for_any_batch_is_refused(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """defer applies the batch limits too, naming the field from "request"."""
    small = BatchOptions(limits=BatchLimits(10, 300))
    with pytest.raises(InvalidRequestError, match="over the batch limit") as raised:
        guard.defer(fake.openai(), chat("x" * 400), options=small)
    assert raised.value.field == "request"


def test_a_request_that_can_no_longer_be_sent_ends_failed_and_is_counted(
    path: Path, fake: FakeProvider, options: BatchOptions
) -> None:
    """A queued request the flushing guard refuses (strict prices) fails "rejected", ended."""
    with pytest.warns(costguard.CostGuardWarning, match="no price"):
        handle = fresh(path).defer(fake.openai(), chat("x") | {"model": "gpt-unpriced-1"})
    strict = costguard.CostGuardClient(ledger=path, cache=None, strict_prices=True)
    report = strict.flush_deferred(fake.openai(), options=options)
    assert (report.failed, report.submitted, fake.batches.ids) == (1, 0, [])
    [item] = BatchStore.for_guard(strict).items("id = ?", [handle])
    assert (item.state, item.request, item.ended_at) == ("failed", None, options.clock())
    with pytest.raises(BatchItemError) as raised:
        strict.resolve(handle, fake.openai(), options=options)
    assert raised.value.kind == "rejected"
    strict.close()


def test_a_batch_accepted_just_before_a_timeout_is_adopted_not_sent_again(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    options: BatchOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A create that times out after the provider accepted it: found by its metadata, kept."""
    client = fake.openai()
    handle = guard.defer(client, chat("a"))
    real_create = client.batches.create

    def accepted_then_timed_out(**kwargs: Any) -> Any:
        real_create(**kwargs)
        raise openai.APITimeoutError(request=httpx2.Request("POST", "https://api.openai.com"))

    monkeypatch.setattr(client.batches, "create", accepted_then_timed_out)
    report = guard.flush_deferred(client, options=options)
    assert (report.submitted, report.batch_ids, report.errors) == (1, fake.batches.ids, [])
    monkeypatch.setattr(client.batches, "create", real_create)
    assert isinstance(guard.resolve(handle, client, options=options), ChatCompletion)
    assert len(fake.batches.ids) == 1


def test_a_recovery_leaves_alone_a_claim_another_process_made_meanwhile(
    path: Path, fake: FakeProvider, clock: Clock, options: BatchOptions
) -> None:
    """Two processes recover one lapsed claim: the slower never queues the other's claim again."""
    dying, _ = die_flushing(path, fake.openai(), [chat("a")], "claimed", options)
    clock.now += options.lease_s
    slow, quick = fresh(path), fresh(path)
    slow_client = fake.openai()
    real_list = slow_client.batches.list

    def quick_recovers_while_slow_looks(**kwargs: Any) -> Any:
        with pytest.raises(Crash):  # quick queues the request again and claims it anew
            quick.flush_deferred(fake.openai(), options=crash_at("claimed", options))
        return real_list(**kwargs)

    slow_client.batches.list = quick_recovers_while_slow_looks  # type: ignore[method-assign]
    report = slow.flush_deferred(slow_client, options=options)
    assert (report.recovered, report.submitted, fake.batches.ids) == (1, 0, [])
    [item] = BatchStore.for_guard(slow).items("1 = 1")
    assert item.state == "submitting" and item.lease_until == clock.now + options.lease_s
    for g in (dying, slow, quick):
        g.close()


def test_resolving_a_request_that_cannot_be_submitted_raises_the_providers_error(
    guard: costguard.CostGuardClient,
    fake: FakeProvider,
    clock: Clock,
    options: BatchOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused key surfaces from resolve at once; the request stays queued for a later try."""
    client = fake.openai()
    handle = guard.defer(client, chat("a"))
    refuse_batches(client, monkeypatch, status_error(openai.AuthenticationError, 401))
    with pytest.raises(openai.AuthenticationError):
        guard.resolve(handle, client, options=options)
    assert (states(guard.ledger.path), clock.now) == (["queued"], 1_800_000_000.0)


def test_a_flush_that_gives_up_waiting_says_to_flush_again(
    guard: costguard.CostGuardClient, fake: FakeProvider, clock: Clock
) -> None:
    """flush_deferred(wait=True) past its timeout points at a later flush, not at a handle."""
    fake.batches.polls = 100
    guard.defer(fake.openai(), chat("slow"))
    options = BatchOptions(sleep=clock.sleep, clock=clock, timeout_s=60)
    with pytest.raises(
        costguard.batch.BatchNotReadyError, match=r"guard\.flush_deferred"
    ) as raised:
        guard.flush_deferred(fake.openai(), wait=True, options=options)
    assert raised.value.handle == "" and "resolve" not in str(raised.value)
