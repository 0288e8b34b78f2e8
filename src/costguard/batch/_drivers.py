"""The provider side: submit a batch, poll it, read its results, through the SDK's own methods.

Each method is a stretch of the core (see ``_run``): it yields the SDK calls it needs and works
on their results, so the same code serves a sync client and an async one.

OpenAI: the requests go up as a JSONL file (``files.create(purpose="batch")``), then
``batches.create(input_file_id=..., endpoint=..., completion_window="24h")`` with costguard's
attempt id in ``metadata`` (so a batch whose id was never recorded can be found again);
results are the output and error files. Anthropic: ``messages.batches.create(requests=[...])``
and ``messages.batches.results(id)``.

Results come back keyed by ``custom_id`` (costguard uses each request's handle) as
:class:`Result`: the response JSON, or why there is none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._run import Steps, listing, sdk
from ._types import BatchProgress

__all__ = ["Driver", "Result", "driver_for"]

_OPENAI_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_UNDONE_KIND = {"expired": "expired", "cancelled": "cancelled", "failed": "failed"}
_ATTEMPT_KEY = "costguard_attempt"
_ADOPT_SCAN = 100  # recent batches searched for one a dead process created


@dataclass(frozen=True, slots=True)
class Result:
    """One request's answer (``body``: the response JSON) or why there is none (``error``)."""

    body: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None  # BatchItemError.to_json() without batch_id


def _error(kind: str, message: str, **fields: Any) -> Result:
    return Result(error={"kind": kind, "message": message, **fields})


class Driver(Protocol):
    provider: str

    def submit(
        self, client: Any, attempt: str, endpoint: str, entries: Sequence[tuple[str, Any]]
    ) -> Steps[tuple[str, str | None]]:
        """Send ``(custom_id, body)`` entries as one batch: (batch id, input file id)."""
        ...

    def find(self, client: Any, attempt: str) -> Steps[str | None]:
        """The batch submitted for ``attempt`` by a process that died before recording it."""
        ...

    def poll(self, client: Any, batch_id: str) -> Steps[BatchProgress]: ...

    def results(self, client: Any, batch_id: str) -> Steps[tuple[dict[str, Result], Result]]:
        """Each request's result by custom_id, and the result of a request not listed."""
        ...


class OpenAIDriver:
    provider = "openai"

    def submit(
        self, client: Any, attempt: str, endpoint: str, entries: Sequence[tuple[str, Any]]
    ) -> Steps[tuple[str, str | None]]:
        lines = [
            json.dumps(
                {"custom_id": cid, "method": "POST", "url": endpoint, "body": body},
                separators=(",", ":"),
                ensure_ascii=False,
            )
            for cid, body in entries
        ]
        content = ("\n".join(lines) + "\n").encode()
        uploaded = yield from sdk(
            client.files.create,
            file=(f"costguard-{attempt}.jsonl", content, "application/jsonl"),
            purpose="batch",
        )
        batch = yield from sdk(
            client.batches.create,
            input_file_id=uploaded.id,
            endpoint=endpoint,
            completion_window="24h",
            metadata={_ATTEMPT_KEY: attempt},
        )
        return str(batch.id), str(uploaded.id)

    def find(self, client: Any, attempt: str) -> Steps[str | None]:
        recent = yield from listing(client.batches.list, at_most=_ADOPT_SCAN, limit=_ADOPT_SCAN)
        for batch in recent:
            if (batch.metadata or {}).get(_ATTEMPT_KEY) == attempt:
                return str(batch.id)
        return None

    def poll(self, client: Any, batch_id: str) -> Steps[BatchProgress]:
        batch = yield from sdk(client.batches.retrieve, batch_id)
        counts = batch.request_counts
        total = counts.total if counts is not None else 0
        done = (counts.completed + counts.failed) if counts is not None else 0
        return BatchProgress(batch_id, batch.status, done, total, batch.status in _OPENAI_ENDED)

    def results(self, client: Any, batch_id: str) -> Steps[tuple[dict[str, Result], Result]]:
        batch = yield from sdk(client.batches.retrieve, batch_id)
        found: dict[str, Result] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            file = yield from sdk(client.files.content, file_id)
            for raw in file.content.splitlines():
                if raw.strip():
                    line = json.loads(raw)
                    found[str(line.get("custom_id"))] = _openai_result(line)
        if batch.status == "failed":
            errors = (batch.errors.data if batch.errors else None) or []
            detail = "; ".join(f"{e.code}: {e.message}" for e in errors) or "no details"
            missing = _error("failed", f"the batch failed: {detail}")
        else:
            kind = _UNDONE_KIND.get(batch.status, "missing")
            missing = _error(kind, f"no result for this request (batch {batch.status})")
        return found, missing


def _openai_result(line: Mapping[str, Any]) -> Result:
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, Mapping) and response.get("status_code") == 200:
        body = response.get("body")
        if isinstance(body, Mapping):
            return Result(body=body)
    if isinstance(response, Mapping):
        body = response.get("body")
        detail = body.get("error") if isinstance(body, Mapping) else None
        detail = detail if isinstance(detail, Mapping) else {}
        return _error(
            "error",
            str(detail.get("message") or f"HTTP {response.get('status_code')}"),
            status_code=response.get("status_code"),
            code=detail.get("code") or detail.get("type"),
            body=body,
        )
    error = error if isinstance(error, Mapping) else {}
    code = str(error.get("code") or "")
    kind = {"batch_expired": "expired", "batch_cancelled": "cancelled"}.get(code, "error")
    return _error(kind, str(error.get("message") or code or "no result"), code=code or None)


class AnthropicDriver:
    provider = "anthropic"

    def submit(
        self, client: Any, attempt: str, endpoint: str, entries: Sequence[tuple[str, Any]]
    ) -> Steps[tuple[str, str | None]]:
        requests = [{"custom_id": cid, "params": body} for cid, body in entries]
        batch = yield from sdk(client.messages.batches.create, requests=requests)
        return str(batch.id), None

    def find(self, client: Any, attempt: str) -> Steps[str | None]:
        yield from ()  # nothing to ask: Message Batches carry no metadata
        return None  # so the attempt is submitted again

    def poll(self, client: Any, batch_id: str) -> Steps[BatchProgress]:
        batch = yield from sdk(client.messages.batches.retrieve, batch_id)
        counts = batch.request_counts
        total = (
            counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        )
        status = batch.processing_status
        return BatchProgress(batch_id, status, total - counts.processing, total, status == "ended")

    def results(self, client: Any, batch_id: str) -> Steps[tuple[dict[str, Result], Result]]:
        found: dict[str, Result] = {}
        entries = yield from listing(client.messages.batches.results, batch_id)
        for entry in entries:
            result = entry.result
            kind = result.type
            if kind == "succeeded":
                found[entry.custom_id] = Result(
                    body=result.message.model_dump(mode="json", exclude_unset=True)
                )
            elif kind == "errored":
                body = result.error.model_dump(mode="json", exclude_unset=True)
                detail = body.get("error") or {}
                found[entry.custom_id] = _error(
                    "error",
                    str(detail.get("message") or "the request errored"),
                    code=detail.get("type"),
                    body=body,
                )
            else:
                kind = "cancelled" if kind == "canceled" else "expired"
                found[entry.custom_id] = _error(kind, f"the request was {kind} (batch ended)")
        return found, _error("missing", "no result for this request")


_DRIVERS: dict[str, Driver] = {"openai": OpenAIDriver(), "anthropic": AnthropicDriver()}


def driver_for(provider: str) -> Driver:
    return _DRIVERS[provider]
