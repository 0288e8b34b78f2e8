"""The fake batch endpoints, exercised only through the real openai / anthropic SDKs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from costguard.testing import FakeProvider

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
STRICT: dict[str, Any] = {"_strict_response_validation": True}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def chat_line(
    custom_id: str, text: str = "hi", url: str = "/v1/chat/completions"
) -> dict[str, Any]:
    body = {"model": GPT, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def openai_batch(fake: FakeProvider, lines: list[dict[str, Any]]) -> tuple[Any, Any]:
    client = fake.openai(**STRICT)
    file = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return client, batch


def claude_request(custom_id: str, **params: Any) -> dict[str, Any]:
    base = {"model": CLAUDE, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": {**base, **params}}


def test_an_uploaded_file_can_be_retrieved_downloaded_and_deleted(fake: FakeProvider) -> None:
    """files.create stores the multipart upload; retrieve, content and delete see it."""
    client = fake.openai(**STRICT)
    file = client.files.create(file=("in.jsonl", b'{"a":1}\n'), purpose="batch")
    assert (file.filename, file.purpose, file.bytes, file.status) == (
        "in.jsonl",
        "batch",
        8,
        "processed",
    )
    assert client.files.retrieve(file.id) == file
    assert client.files.content(file.id).content == b'{"a":1}\n'
    assert client.files.delete(file.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)


def test_an_openai_batch_validates_then_runs_then_completes_one_poll_later(
    fake: FakeProvider,
) -> None:
    """A new batch is validating, in progress on the first retrieve, completed on the next."""
    client, batch = openai_batch(fake, [chat_line("a"), chat_line("b")])
    assert batch.status == "validating"
    assert client.batches.retrieve(batch.id).status == "in_progress"
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 0)
    lines = client.files.content(done.output_file_id).content.splitlines()
    results = {json.loads(line)["custom_id"]: json.loads(line) for line in lines}
    assert set(results) == {"a", "b"}
    body = results["a"]["response"]["body"]
    assert results["a"]["response"]["status_code"] == 200
    assert openai.types.chat.ChatCompletion.model_validate(body).choices[0].message.content


def test_scripted_replies_and_failures_answer_batch_requests_in_order(
    fake: FakeProvider,
) -> None:
    """Queued replies and failures are taken by batch requests; failures go to the error file."""
    fake.reply("Paris.")
    fake.fail(429)
    fake.batches.polls = 0
    client, batch = openai_batch(fake, [chat_line("a"), chat_line("b")])
    done = client.batches.retrieve(batch.id)
    output = json.loads(client.files.content(done.output_file_id).content)
    error = json.loads(client.files.content(done.error_file_id).content)
    assert output["response"]["body"]["choices"][0]["message"]["content"] == "Paris."
    assert error["custom_id"] == "b"
    assert error["response"]["status_code"] == 429
    assert error["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)


def test_a_malformed_input_file_makes_the_batch_fail_with_line_errors(fake: FakeProvider) -> None:
    """A line for another endpoint or a duplicate custom_id fails the batch, as the API does."""
    client, batch = openai_batch(
        fake, [chat_line("a"), chat_line("a"), chat_line("c", url="/v1/embeddings")]
    )
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.errors is not None
    codes = {(e.line, e.code) for e in failed.errors.data or []}
    assert codes == {(2, "duplicate_custom_id"), (3, "mismatched_endpoint")}
    assert failed.output_file_id is None


def test_a_scripted_expiry_keeps_the_done_requests_and_expires_the_rest(
    fake: FakeProvider,
) -> None:
    """script("expired", done=1): one answer in the output file, the rest batch_expired."""
    fake.batches.script("expired", done=1)
    fake.batches.polls = 0
    client, batch = openai_batch(fake, [chat_line("a"), chat_line("b"), chat_line("c")])
    done = client.batches.retrieve(batch.id)
    assert done.status == "expired"
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).content.splitlines()]
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("b", "batch_expired"),
        ("c", "batch_expired"),
    ]


def test_cancelling_an_openai_batch_passes_through_cancelling(fake: FakeProvider) -> None:
    """batches.cancel answers cancelling; the next retrieve is cancelled, nothing was run."""
    client, batch = openai_batch(fake, [chat_line("a")])
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled"
    [line] = client.files.content(done.error_file_id).content.splitlines()
    assert json.loads(line)["error"]["code"] == "batch_cancelled"


def test_batches_list_newest_first_with_their_metadata(fake: FakeProvider) -> None:
    """batches.list pages through every batch, newest first, metadata included."""
    client = fake.openai(**STRICT)
    file = client.files.create(file=("in.jsonl", jsonl([chat_line("a")])), purpose="batch")
    ids = [
        client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"n": str(n)},
        ).id
        for n in range(3)
    ]
    listed = list(client.batches.list(limit=2))
    assert [b.id for b in listed] == ids[::-1]
    assert [b.metadata for b in listed] == [{"n": "2"}, {"n": "1"}, {"n": "0"}]


def test_an_injected_clock_ends_a_batch_after_its_duration(fake: FakeProvider) -> None:
    """With batches.clock set, a batch ends when duration_s has passed on it, not by polls."""
    now = [0.0]
    fake.batches.clock = lambda: now[0]
    fake.batches.duration_s = 100.0
    client, batch = openai_batch(fake, [chat_line("a"), chat_line("b")])
    now[0] = 50.0
    halfway = client.batches.retrieve(batch.id)
    assert (halfway.status, halfway.request_counts.completed) == ("in_progress", 1)
    now[0] = 100.0
    assert client.batches.retrieve(batch.id).status == "completed"


def test_an_unknown_batch_is_the_providers_404(fake: FakeProvider) -> None:
    """Retrieving a batch that does not exist raises the SDK's NotFoundError."""
    with pytest.raises(openai.NotFoundError):
        fake.openai().batches.retrieve("batch_nope")
    with pytest.raises(anthropic.NotFoundError):
        fake.anthropic().messages.batches.retrieve("msgbatch_nope")


def test_an_openai_batch_for_an_unserved_endpoint_is_refused(fake: FakeProvider) -> None:
    """batches.create for an endpoint the fake does not serve is a 400."""
    client = fake.openai()
    file = client.files.create(file=("in.jsonl", jsonl([chat_line("a")])), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=file.id, endpoint="/v1/moderations", completion_window="24h"
        )


def test_a_message_batch_ends_and_streams_its_results(fake: FakeProvider) -> None:
    """Message Batches: in progress, then ended with a results URL the SDK reads as JSONL."""
    client = fake.anthropic(**STRICT)
    fake.fail(529, endpoint="messages")
    batch = client.messages.batches.create(requests=[claude_request("a"), claude_request("b")])
    assert batch.processing_status == "in_progress"
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 1)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["a"].type == "errored"
    assert results["a"].error.error.type == "overloaded_error"
    assert results["b"].type == "succeeded"
    assert results["b"].message.usage.service_tier == "batch"


def test_a_cancelled_message_batch_reports_its_requests_canceled(fake: FakeProvider) -> None:
    """Cancelling a message batch: canceling, then ended with every request canceled."""
    client = fake.anthropic(**STRICT)
    batch = client.messages.batches.create(requests=[claude_request("a")])
    assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended = client.messages.batches.retrieve(batch.id)
    assert (ended.processing_status, ended.request_counts.canceled) == ("ended", 1)
    [result] = client.messages.batches.results(batch.id)
    assert result.result.type == "canceled"
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_a_scripted_anthropic_expiry_expires_the_undone_requests(fake: FakeProvider) -> None:
    """script("expired", provider="anthropic") ends the next message batch with expired results."""
    fake.batches.script("expired", provider="anthropic")
    fake.batches.polls = 0
    client = fake.anthropic(**STRICT)
    batch = client.messages.batches.create(requests=[claude_request("a")])
    assert client.messages.batches.retrieve(batch.id).request_counts.expired == 1
    assert [r.result.type for r in client.messages.batches.results(batch.id)] == ["expired"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (claude_request("bad id!"), "custom_id"),
        (claude_request("a", stream=True), "stream"),
        ({"custom_id": "a", "params": {"model": CLAUDE, "max_tokens": 5}}, "messages"),
    ],
)
def test_a_message_batch_with_a_bad_request_is_refused_whole(
    fake: FakeProvider, request_: dict[str, Any], message: str
) -> None:
    """A bad custom_id, a streamed request or missing params refuse the batch with a 400."""
    with pytest.raises(anthropic.BadRequestError, match=message):
        fake.anthropic().messages.batches.create(requests=[request_])  # type: ignore[list-item]


def test_message_batches_list_newest_first(fake: FakeProvider) -> None:
    """messages.batches.list pages through every message batch, newest first."""
    client = fake.anthropic(**STRICT)
    ids = [client.messages.batches.create(requests=[claude_request("a")]).id for _ in range(3)]
    assert [b.id for b in client.messages.batches.list(limit=2)] == ids[::-1]


def test_batch_requests_are_recorded_with_their_endpoints(fake: FakeProvider) -> None:
    """The request log names the batch endpoints and never shows the API key."""
    openai_batch(fake, [chat_line("a")])
    assert [r.endpoint for r in fake.requests] == ["files", "batches"]
    assert fake.requests[0].headers["authorization"].endswith("****0000")


def test_the_batch_state_is_inspectable(fake: FakeProvider) -> None:
    """fake.batches.ids lists the batches and file() returns an uploaded file's bytes."""
    _, batch = openai_batch(fake, [chat_line("a")])
    assert fake.batches.ids == [batch.id]
    assert json.loads(fake.batches.file(batch.input_file_id))["custom_id"] == "a"
    with pytest.raises(ValueError, match="outcome"):
        fake.batches.script("exploded")  # type: ignore[arg-type]


def test_a_failure_can_be_scripted_on_a_batch_endpoint() -> None:
    """fake.fail(..., endpoint="batches") makes the next batch creation answer that error."""

    fake = FakeProvider()
    client = fake.openai(max_retries=0)
    fake.fail(503, endpoint="batches")
    upload = client.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
    with pytest.raises(openai.InternalServerError):
        client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
