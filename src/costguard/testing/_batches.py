"""The fake batch APIs: OpenAI files + batches, and Anthropic message batches.

Served (through the real SDKs, like every other fake endpoint):

- OpenAI ``files.create`` (multipart upload), ``files.retrieve``, ``files.content``,
  ``files.delete``; ``batches.create``, ``retrieve``, ``list`` and ``cancel``. A batch's input
  file is checked as the API does (JSONL lines with a unique ``custom_id``, ``method`` POST,
  the batch's ``url`` and a ``body``); a bad file makes the batch ``failed`` with ``errors``.
  Successes go to the output file, failed requests (and expired or cancelled ones) to the
  error file, one JSON line each.
- Anthropic ``messages.batches.create``, ``retrieve``, ``list``, ``cancel``, ``delete`` and
  ``results`` (JSONL of ``succeeded`` / ``errored`` / ``canceled`` / ``expired`` results). A bad
  request list is refused with a 400, as the API does.

Each request of a batch is answered when the batch is created, by the same code that answers
a live request, so scripted :meth:`FakeProvider.reply` / :meth:`FakeProvider.fail` items are
taken in order by batch requests too (a scripted HTTP failure becomes that request's error).

Time: a batch reports ``in_progress`` for :attr:`FakeBatches.polls` retrieves and ends on the
next one; or, with :attr:`FakeBatches.clock` set, it ends once ``duration_s`` seconds have
passed on that clock. :meth:`FakeBatches.script` makes the next batch expire, fail or be
cancelled, with some of its requests done first.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

import httpx2

from . import _anthropic, _openai
from ._wire import HEX, Ids, dumps, json_body, json_response, rfc3339

__all__ = ["BatchEndpoint", "FakeBatches", "route"]

BatchEndpoint: TypeAlias = Literal["files", "batches", "messages.batches"]
"""The batch-related endpoints the fake serves, named like the SDK resources."""

Outcome = Literal["completed", "expired", "failed", "cancelled"]
_OUTCOMES = frozenset(get_args(Outcome))

#: (provider, endpoint label of the live API, body) -> (HTTP status, JSON body)
Answer = Callable[[str, str, Mapping[str, Any]], tuple[int, Any]]

_OPENAI_URLS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
_FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DAY = 86_400

# (provider, method, path pattern) -> (endpoint, action); the pattern's group is an id.
_RouteSpec: TypeAlias = tuple[str, str, str, BatchEndpoint, str]
_ROUTE_SPECS: tuple[_RouteSpec, ...] = (
    ("openai", "POST", r"/files", "files", "upload"),
    ("openai", "GET", r"/files/([^/]+)/content", "files", "content"),
    ("openai", "GET", r"/files/([^/]+)", "files", "retrieve"),
    ("openai", "DELETE", r"/files/([^/]+)", "files", "delete"),
    ("openai", "POST", r"/batches", "batches", "create"),
    ("openai", "GET", r"/batches", "batches", "list"),
    ("openai", "GET", r"/batches/([^/]+)", "batches", "retrieve"),
    ("openai", "POST", r"/batches/([^/]+)/cancel", "batches", "cancel"),
    ("anthropic", "POST", r"/messages/batches", "messages.batches", "create"),
    ("anthropic", "GET", r"/messages/batches", "messages.batches", "list"),
    ("anthropic", "GET", r"/messages/batches/([^/]+)/results", "messages.batches", "results"),
    ("anthropic", "GET", r"/messages/batches/([^/]+)", "messages.batches", "retrieve"),
    ("anthropic", "DELETE", r"/messages/batches/([^/]+)", "messages.batches", "delete"),
    ("anthropic", "POST", r"/messages/batches/([^/]+)/cancel", "messages.batches", "cancel"),
)
_ROUTES: tuple[tuple[str, str, re.Pattern[str], BatchEndpoint, str], ...] = tuple(
    (provider, method, re.compile(pattern + r"/?$"), endpoint, action)
    for provider, method, pattern, endpoint, action in _ROUTE_SPECS
)


def _match(provider: str, method: str, path: str) -> tuple[BatchEndpoint, str, str | None] | None:
    for route_provider, route_method, pattern, endpoint, action in _ROUTES:
        if provider != route_provider or method != route_method:
            continue
        found = pattern.search(path)
        if found is not None:
            return endpoint, action, found.group(1) if found.groups() else None
    return None


def route(provider: str, method: str, path: str) -> BatchEndpoint | None:
    """The batch endpoint a request is for, or None."""
    matched = _match(provider, method, path)
    return None if matched is None else matched[0]


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created: int

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class _Item:
    """One request of a batch and its answer (computed when the batch is created)."""

    custom_id: str
    status: int
    body: Any


@dataclass
class _Script:
    outcome: Outcome
    done: int | None
    provider: str | None


@dataclass
class _Job:
    provider: str
    id: str
    created: int
    started: float | None  # the fake's clock at creation, when a clock is set
    polls_left: int
    polls: int
    items: list[_Item]
    endpoint: str = ""  # OpenAI: the batch's url
    input_file_id: str = ""
    metadata: Mapping[str, Any] | None = None
    script: _Script | None = None
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"  # running | cancelling | ended
    final: Outcome = "completed"
    done_at_end: int = 0
    progress: float = 0.0
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: bytes = b""
    base_url: str = ""

    @property
    def done(self) -> int:
        if self.state == "ended":
            return self.done_at_end
        return int(len(self.items) * self.progress)


class FakeBatches:
    """The batch state of one :class:`FakeProvider` (``fake.batches``).

    :attr:`polls`: how many retrieves report a new batch as in progress before it ends (default
    1; 0 ends it on the first retrieve). :attr:`clock` / :attr:`duration_s`: when a clock
    (seconds) is set, a batch ends once ``duration_s`` have passed on it instead.
    """

    def __init__(self, ids: Ids, created: int, answer: Answer) -> None:
        self.polls = 1
        self.clock: Callable[[], float] | None = None
        self.duration_s = 60.0
        self._ids = ids
        self._created = created
        self._answer = answer
        self._lock = threading.RLock()
        self._scripts: deque[_Script] = deque()
        self._files: dict[str, _File] = {}
        self._jobs: dict[str, _Job] = {}

    # -- scripting and inspection ------------------------------------------------------------

    def script(
        self,
        outcome: Outcome,
        *,
        done: int = 0,
        provider: Literal["openai", "anthropic"] | None = None,
        times: int = 1,
    ) -> None:
        """How the next batch(es) end: ``"expired"`` or ``"cancelled"`` after ``done`` of their
        requests were answered (the rest expire or are cancelled), ``"failed"`` (OpenAI: the
        batch fails validation; Anthropic: every request errors), or ``"completed"``."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(_OUTCOMES)}, got {outcome!r}")
        if done < 0 or times < 1:
            raise ValueError("done must be >= 0 and times >= 1")
        with self._lock:
            self._scripts.extend([_Script(outcome, done, provider)] * times)

    @property
    def ids(self) -> list[str]:
        """Every batch created so far, oldest first."""
        with self._lock:
            return list(self._jobs)

    def file(self, file_id: str) -> bytes:
        """The content of an uploaded (or generated) OpenAI file."""
        with self._lock:
            return self._files[file_id].content

    # -- HTTP --------------------------------------------------------------------------------

    def handle(self, provider: str, request: httpx2.Request) -> httpx2.Response:
        matched = _match(provider, request.method, request.url.path)
        assert matched is not None, "route() chose this request"
        endpoint, action, ident = matched
        with self._lock:
            if endpoint == "files":
                return self._file(action, ident, request)
            if endpoint == "batches":
                return self._openai(action, ident, request)
            return self._anthropic(action, ident, request)

    # -- OpenAI ------------------------------------------------------------------------------

    def _file(self, action: str, ident: str | None, request: httpx2.Request) -> httpx2.Response:
        if action == "upload":
            return self._upload(request)
        file = self._files.get(ident or "")
        if file is None:
            return self._openai_error(404, f"No such File object: {ident}")
        if action == "content":
            return httpx2.Response(
                200, headers={"content-type": "application/octet-stream"}, content=file.content
            )
        if action == "delete":
            del self._files[file.id]
            return json_response(200, {"id": file.id, "object": "file", "deleted": True})
        return json_response(200, file.json())

    def _openai(self, action: str, ident: str | None, request: httpx2.Request) -> httpx2.Response:
        if action == "create":
            return self._openai_create(_json(request))
        if action == "list":
            return self._openai_list(request)
        job = self._jobs.get(ident or "")
        if job is None or job.provider != "openai":
            return self._openai_error(404, f"No batch found with id '{ident}'.")
        return self._poll(job, action, self._openai_json)

    def _openai_error(self, status: int, message: str) -> httpx2.Response:
        return _openai.error_response(status, self._ids, model="", message=message)

    def _upload(self, request: httpx2.Request) -> httpx2.Response:
        parts = _multipart(request)
        purpose = parts.get("purpose", (None, b""))[1].decode()
        if "file" not in parts:
            return self._openai_error(400, "Missing required parameter: 'file'.")
        if purpose not in _FILE_PURPOSES:
            return self._openai_error(400, f"Invalid value for 'purpose': {purpose!r}.")
        filename, content = parts["file"]
        file = _File(
            self._ids.make("file-", 22),
            filename or "upload",
            purpose,
            content,
            self._created,
        )
        self._files[file.id] = file
        return json_response(200, file.json())

    def _openai_create(self, body: Mapping[str, Any]) -> httpx2.Response:
        endpoint = body.get("endpoint")
        if endpoint not in _OPENAI_URLS:
            return self._openai_error(
                400,
                f"Invalid value for 'endpoint': {endpoint!r} (served: {sorted(_OPENAI_URLS)}).",
            )
        if body.get("completion_window") != "24h":
            return self._openai_error(400, "Invalid value for 'completion_window': use '24h'.")
        file = self._files.get(str(body.get("input_file_id")))
        if file is None:
            return self._openai_error(400, f"No such File object: {body.get('input_file_id')}")
        if file.purpose != "batch":
            return self._openai_error(400, "The input file must be uploaded with purpose 'batch'.")
        script = self._next_script("openai")
        lines, errors = _openai_lines(file.content, str(endpoint))
        items: list[_Item] = []
        if not errors and not (script and script.outcome == "failed"):
            label = _OPENAI_URLS[str(endpoint)]
            items = [_Item(cid, *self._openai_answer(label, b)) for cid, b in lines]
        elif script and script.outcome == "failed" and not errors:
            errors = [
                {
                    "code": "invalid_request",
                    "message": "Batch failed (scripted).",
                    "line": None,
                    "param": None,
                }
            ]
        job = self._new_job("openai", self._ids.make("batch_", 32, HEX), items, script)
        job.endpoint = str(endpoint)
        job.input_file_id = file.id
        metadata = body.get("metadata")
        job.metadata = metadata if isinstance(metadata, Mapping) else None
        job.validation_errors = errors
        return json_response(200, self._openai_json(job))

    def _openai_answer(self, label: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        if body.get("stream"):
            return 400, _openai.error_json("Streaming is not supported in batches.")
        return self._answer("openai", label, body)

    def _openai_list(self, request: httpx2.Request) -> httpx2.Response:
        page, more = self._page("openai", request, "after")
        return json_response(
            200,
            {
                "object": "list",
                "data": [self._openai_json(j) for j in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": more,
            },
        )

    def _openai_json(self, job: _Job) -> dict[str, Any]:
        t0 = job.created
        status = self._openai_status(job)
        total = len(job.items)
        done = job.items[: job.done]
        good = sum(1 for item in done if item.status == 200)
        failed = (total - good) if job.state == "ended" else len(done) - good
        counts = {"total": total, "completed": good, "failed": failed}
        errors = (
            {"object": "list", "data": job.validation_errors} if job.validation_errors else None
        )
        stamps = {
            "in_progress_at": t0 + 1 if status not in ("validating", "failed") else None,
            "finalizing_at": t0 + 2 if status == "completed" else None,
            "completed_at": t0 + 3 if status == "completed" else None,
            "failed_at": t0 + 1 if status == "failed" else None,
            "expired_at": t0 + _DAY if status == "expired" else None,
            "cancelling_at": t0 + 2 if status in ("cancelling", "cancelled") else None,
            "cancelled_at": t0 + 3 if status == "cancelled" else None,
        }
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": job.endpoint,
            "errors": errors,
            "input_file_id": job.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": t0,
            "expires_at": t0 + _DAY,
            **stamps,
            "request_counts": counts,
            "metadata": job.metadata,
        }

    @staticmethod
    def _openai_status(job: _Job) -> str:
        if job.state == "ended":
            return job.final
        if job.state == "cancelling":
            return "cancelling"
        return "in_progress" if job.progress > 0 else "validating"

    def _finish_openai(self, job: _Job) -> None:
        if job.validation_errors:
            return
        out: list[bytes] = []
        err: list[bytes] = []
        for position, item in enumerate(job.items):
            line: dict[str, Any] = {
                "id": self._ids.make("batch_req_", 32, HEX),
                "custom_id": item.custom_id,
            }
            if position >= job.done_at_end:
                code, message = _UNDONE[job.final]
                err.append(
                    _line({**line, "response": None, "error": {"code": code, "message": message}})
                )
                continue
            response = {
                "status_code": item.status,
                "request_id": self._ids.make("req_", 32, HEX),
                "body": item.body,
            }
            (out if item.status == 200 else err).append(
                _line({**line, "response": response, "error": None})
            )
        if out:
            job.output_file_id = self._store_output(out)
        if err:
            job.error_file_id = self._store_output(err)

    def _store_output(self, lines: Sequence[bytes]) -> str:
        file = _File(
            self._ids.make("file-", 22),
            "batch_output.jsonl",
            "batch_output",
            b"".join(lines),
            self._created,
        )
        self._files[file.id] = file
        return file.id

    # -- Anthropic ---------------------------------------------------------------------------

    def _anthropic(
        self, action: str, ident: str | None, request: httpx2.Request
    ) -> httpx2.Response:
        if action == "create":
            return self._anthropic_create(_json(request), request)
        if action == "list":
            return self._anthropic_list(request)
        job = self._jobs.get(ident or "")
        if job is None or job.provider != "anthropic":
            return _anthropic.not_found(request.method, request.url.path, self._ids)
        if action == "results":
            if job.state != "ended":
                return self._anthropic_error(400, f"Message Batch {job.id} has not ended yet.")
            return httpx2.Response(
                200, headers={"content-type": "application/binary"}, content=job.results
            )
        if action == "delete":
            if job.state != "ended":
                return self._anthropic_error(400, "Only ended batches can be deleted.")
            del self._jobs[job.id]
            return json_response(200, {"id": job.id, "type": "message_batch_deleted"})
        return self._poll(job, action, self._anthropic_json)

    def _anthropic_error(self, status: int, message: str) -> httpx2.Response:
        return _anthropic.error_response(status, self._ids, model="", message=message)

    def _anthropic_create(
        self, body: Mapping[str, Any], request: httpx2.Request
    ) -> httpx2.Response:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return self._anthropic_error(400, "requests: must be a non-empty list")
        seen: set[str] = set()
        for index, entry in enumerate(requests):
            problem = _anthropic_problem(entry, seen)
            if problem is not None:
                return self._anthropic_error(400, f"requests.{index}.{problem}")
        script = self._next_script("anthropic")
        items = []
        for entry in requests:
            if script is not None and script.outcome == "failed":
                error = {"type": "api_error", "message": "Internal server error"}
                items.append(_Item(entry["custom_id"], 500, {"type": "error", "error": error}))
                continue
            items.append(
                _Item(entry["custom_id"], *self._answer("anthropic", "messages", entry["params"]))
            )
        job = self._new_job(
            "anthropic", self._ids.make("msgbatch_01", 22, _anthropic.ID_ALPHABET), items, script
        )
        job.base_url = str(request.url).split("/messages/batches")[0]
        return json_response(200, self._anthropic_json(job))

    def _anthropic_list(self, request: httpx2.Request) -> httpx2.Response:
        page, more = self._page("anthropic", request, "after_id")
        return json_response(
            200,
            {
                "data": [self._anthropic_json(j) for j in page],
                "has_more": more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            },
        )

    def _anthropic_json(self, job: _Job) -> dict[str, Any]:
        ended = job.state == "ended"
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for position, item in enumerate(job.items):
                if position >= job.done_at_end:
                    counts["canceled" if job.final == "cancelled" else "expired"] += 1
                else:
                    counts["succeeded" if item.status == 200 else "errored"] += 1
        else:
            counts["processing"] = len(job.items)
        stamp = rfc3339(job.created + 3)
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": {"running": "in_progress", "cancelling": "canceling"}.get(
                job.state, "ended"
            ),
            "request_counts": counts,
            "ended_at": stamp if ended else None,
            "created_at": rfc3339(job.created),
            "expires_at": rfc3339(job.created + _DAY),
            "cancel_initiated_at": stamp if job.final == "cancelled" else None,
            "archived_at": None,
            "results_url": f"{job.base_url}/messages/batches/{job.id}/results" if ended else None,
        }

    def _finish_anthropic(self, job: _Job) -> None:
        lines = []
        for position, item in enumerate(job.items):
            result: dict[str, Any]
            if position >= job.done_at_end:
                result = {"type": "canceled" if job.final == "cancelled" else "expired"}
            elif item.status == 200:
                message = {
                    **item.body,
                    "usage": {**item.body.get("usage", {}), "service_tier": "batch"},
                }
                result = {"type": "succeeded", "message": message}
            else:
                error = item.body if isinstance(item.body, Mapping) else {}
                error = {k: v for k, v in error.items() if k in ("type", "error", "request_id")}
                result = {"type": "errored", "error": error}
            lines.append(_line({"custom_id": item.custom_id, "result": result}))
        job.results = b"".join(lines)

    # -- shared ------------------------------------------------------------------------------

    def _poll(
        self, job: _Job, action: str, render: Callable[[_Job], dict[str, Any]]
    ) -> httpx2.Response:
        """A cancel or a retrieve: the batch as it stands after it."""
        if action == "cancel":
            _cancel(job)
        else:
            self._advance(job)
        return json_response(200, render(job))

    def _page(self, provider: str, request: httpx2.Request, after: str) -> tuple[list[_Job], bool]:
        """One page of a list request, newest first: (its batches, whether more follow)."""
        jobs = [j for j in reversed(self._jobs.values()) if j.provider == provider]
        cursor = request.url.params.get(after)
        if cursor:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(cursor) + 1 :] if cursor in ids else []
        limit = int(request.url.params.get("limit") or 20)
        return jobs[:limit], len(jobs) > limit

    def _next_script(self, provider: str) -> _Script | None:
        for index, script in enumerate(self._scripts):
            if script.provider in (None, provider):
                del self._scripts[index]
                return script
        return None

    def _new_job(
        self, provider: str, job_id: str, items: list[_Item], script: _Script | None
    ) -> _Job:
        job = _Job(
            provider=provider,
            id=job_id,
            created=self._created,
            started=self.clock() if self.clock is not None else None,
            polls_left=self.polls,
            polls=self.polls,
            items=items,
            script=script,
        )
        self._jobs[job.id] = job
        return job

    def _advance(self, job: _Job) -> None:
        """One retrieve: the batch moves on, and ends when its time has come."""
        if job.state == "ended":
            return
        if job.state == "cancelling" or job.validation_errors:
            self._end(job)
            return
        if job.started is not None and self.clock is not None:
            elapsed = self.clock() - job.started
            job.progress = min(elapsed / self.duration_s, 1.0) if self.duration_s > 0 else 1.0
            if job.progress >= 1.0:
                self._end(job)
            return
        if job.polls_left <= 0:
            self._end(job)
            return
        job.polls_left -= 1
        job.progress = (job.polls - job.polls_left) / (job.polls + 1)

    def _end(self, job: _Job) -> None:
        if job.state == "running":
            script = job.script
            if script is not None and script.outcome in ("expired", "cancelled"):
                job.final = script.outcome
                job.done_at_end = min(script.done or 0, len(job.items))
            else:
                job.final = "failed" if job.validation_errors else "completed"
                job.done_at_end = len(job.items)
        job.state = "ended"
        if job.provider == "openai":
            self._finish_openai(job)
        else:
            self._finish_anthropic(job)


def _cancel(job: _Job) -> None:
    """A cancel request: a running batch stops taking requests and ends at the next poll."""
    if job.state == "running":
        job.state = "cancelling"
        job.final = "cancelled"
        job.done_at_end = job.done


_UNDONE = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": (
        "batch_cancelled",
        "This request was not executed because the batch was cancelled.",
    ),
    "completed": ("batch_failed", "This request was not executed."),
    "failed": ("batch_failed", "This request was not executed."),
}


def _openai_lines(
    content: bytes, endpoint: str
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[dict[str, Any]]]:
    """The (custom_id, body) of each line, or the validation errors the API would report."""
    lines: list[tuple[str, Mapping[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def fail(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "line": number, "param": param})

    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            fail(number, "invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(entry, dict):
            fail(number, "invalid_json_line", "Each line must be a JSON object.")
            continue
        custom_id = entry.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            fail(number, "missing_required_parameter", "Missing custom_id.", "custom_id")
        elif custom_id in seen:
            fail(number, "duplicate_custom_id", "The custom_id for this request is a duplicate.")
        else:
            seen.add(custom_id)
        if entry.get("method") != "POST":
            fail(number, "invalid_method", "Only POST is supported.", "method")
        if entry.get("url") != endpoint:
            fail(
                number, "mismatched_endpoint", "The url does not match the batch's endpoint.", "url"
            )
        body = entry.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            fail(number, "missing_required_parameter", "The body needs a model.", "body.model")
            continue
        lines.append((str(custom_id), body))
    if not lines and not errors:
        fail(1, "empty_file", "The input file has no requests.")
    return lines, errors


def _anthropic_problem(entry: object, seen: set[str]) -> str | None:
    if not isinstance(entry, Mapping):
        return "custom_id: Field required"
    custom_id = entry.get("custom_id")
    if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
        return "custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    if custom_id in seen:
        return f"custom_id: duplicate custom_id {custom_id!r}"
    seen.add(custom_id)
    params = entry.get("params")
    if not isinstance(params, Mapping):
        return "params: Field required"
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            return f"params.{name}: Field required"
    if params.get("stream"):
        return "params.stream: streaming is not supported in Message Batches"
    return None


def _json(request: httpx2.Request) -> Mapping[str, Any]:
    value = json_body(request.content)
    return value if isinstance(value, Mapping) else {}


def _line(value: object) -> bytes:
    return dumps(value).encode() + b"\n"


_BOUNDARY = re.compile(r"boundary=\"?([^\";]+)\"?")
_DISPOSITION = re.compile(rb'name="([^"]*)"(?:; filename="([^"]*)")?')


def _multipart(request: httpx2.Request) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body as {field: (filename, bytes)}."""
    found = _BOUNDARY.search(request.headers.get("content-type", ""))
    if found is None:
        return {}
    delimiter = b"--" + found.group(1).encode()
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in request.content.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.partition(b"\r\n\r\n")
        named = _DISPOSITION.search(head)
        if named is None:
            continue
        filename = named.group(2).decode() if named.group(2) is not None else None
        parts[named.group(1).decode()] = (filename, body.removesuffix(b"\r\n"))
    return parts
