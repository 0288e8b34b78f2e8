"""FakeProvider: real openai / anthropic SDK clients answered by an in-memory fake API."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import httpx2

from .._usage import Usage
from . import _anthropic, _batches, _openai
from ._batches import BatchEndpoint, FakeBatches
from ._script import (
    GENERATION_ENDPOINTS,
    Endpoint,
    Failure,
    FailureKind,
    Provider,
    Reply,
    ToolCall,
    coerce_tool_call,
    match_for,
    validate_failure,
)
from ._wire import Exchange, Handler, Ids, PromptCaches, find_route, json_body

if TYPE_CHECKING:
    from anthropic import Anthropic, AsyncAnthropic
    from openai import AsyncOpenAI, OpenAI

__all__ = ["FakeProvider", "RecordedRequest"]

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "openai-admin-key"}
)


class _Api(Protocol):
    """What each fake API module (``_openai``, ``_anthropic``) provides."""

    @property
    def FAKE_API_KEY(self) -> str: ...

    @property
    def ROUTES(self) -> Mapping[tuple[str, str], Endpoint]: ...

    @property
    def STREAM_ERROR_STATUS(self) -> int: ...

    @property
    def HANDLERS(self) -> Mapping[Endpoint, Handler]: ...

    def error_response(
        self,
        status: int,
        ids: Ids,
        *,
        model: str,
        message: str | None = ...,
        retry_after: float | None = ...,
    ) -> httpx2.Response: ...

    def not_found(self, method: str, path: str, ids: Ids) -> httpx2.Response: ...


_APIS: Mapping[str, _Api] = {"openai": _openai, "anthropic": _anthropic}


def _redact(value: str) -> str:
    """Keep an auth scheme and the secret's last 4 characters: ``"Bearer ****0000"``."""
    scheme, space, secret = value.partition(" ")
    if not space:
        scheme, secret = "", value
    return f"{scheme}{space}****{secret[-4:]}"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request a fake client sent, as the fake API received it.

    ``headers`` has lower-case names; API-key headers (``authorization``, ``x-api-key``, ...)
    are redacted to their last 4 characters. ``json`` is the decoded body (``None`` for a GET
    or a body that is not JSON). ``endpoint`` is ``None`` for a path the fake does not serve
    (it answered 404).
    """

    provider: Provider
    endpoint: Endpoint | BatchEndpoint | None
    method: str
    url: str
    path: str
    headers: dict[str, str]
    json: Any

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed answer."""
        return isinstance(self.json, dict) and self.json.get("stream") is True


class FakeProvider:
    """An in-memory OpenAI and Anthropic API behind real SDK clients, for offline tests.

    ``openai()``, ``async_openai()``, ``anthropic()`` and ``async_anthropic()`` return the
    SDKs' own client classes (subclassed only to skip the retry back-off sleep) whose
    ``http_client`` is an ``httpx2`` client on an ``httpx2.MockTransport``: requests never
    leave the process, and the SDK parses realistic JSON and server-sent events into its own
    types. Served: OpenAI ``chat.completions``, ``responses``, ``embeddings`` and ``models``;
    Anthropic ``messages`` (also ``messages.stream`` and ``beta.messages``),
    ``messages.count_tokens`` and ``models``; and the batch APIs (OpenAI ``files`` and
    ``batches``, Anthropic ``messages.batches``; see :attr:`batches`). Any other path answers
    the provider's 404.

    Answers are scripted with :meth:`reply` and :meth:`fail` in ONE first-in-first-out queue
    shared by every client of this FakeProvider, sync and async: a request takes the first
    queued item that matches its provider and endpoint (by default the generation endpoints,
    ``chat.completions``, ``responses`` and ``messages``, of either provider). With nothing
    queued, a request gets a deterministic default answer derived from it. Usage is counted
    with costguard's own token counter.

    Everything is deterministic for a given ``seed`` and sequence of requests: ids come from
    counters, timestamps are ``created``, nothing sleeps or reads the wall clock. The only
    clock is ``clock`` (seconds; default ``time.monotonic``), which the simulated prompt
    caches read to expire entries after their TTL (Anthropic: 5 minutes or 1 hour, refreshed
    by each read; OpenAI: 5 minutes after a prefix was last used); inject one to test
    expiry without waiting. The queue and the request log are guarded by a lock, so clients
    may be used from several threads.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        created: int = 1_763_683_200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self._seed = seed
        self._created = created
        self._clock = clock
        self._ids = Ids(seed)
        self._prompt_caches = PromptCaches(clock)
        self._lock = threading.Lock()
        self._queue: deque[Reply | Failure] = deque()
        self._requests: list[RecordedRequest] = []
        self._batches = FakeBatches(self._ids, created, self._answer)

    # -- clients ---------------------------------------------------------------------------

    def openai(self, **kwargs: Any) -> OpenAI:
        """A real ``openai.OpenAI`` served by this fake; ``kwargs`` go to its constructor.

        Defaults: ``api_key="sk-fake-000…"``, ``max_retries=0``, the SDK's usual base URL.
        """
        from ._clients import OpenAI as FakeOpenAI

        return FakeOpenAI(**self._client_kwargs("openai", kwargs, is_async=False))

    def async_openai(self, **kwargs: Any) -> AsyncOpenAI:
        """A real ``openai.AsyncOpenAI`` served by this fake (see :meth:`openai`)."""
        from ._clients import AsyncOpenAI as FakeAsyncOpenAI

        return FakeAsyncOpenAI(**self._client_kwargs("openai", kwargs, is_async=True))

    def anthropic(self, **kwargs: Any) -> Anthropic:
        """A real ``anthropic.Anthropic`` served by this fake; ``kwargs`` go to its constructor.

        Defaults: ``api_key="sk-ant-fake-000…"``, ``max_retries=0``, the SDK's usual base URL.
        """
        from ._clients import Anthropic as FakeAnthropic

        return FakeAnthropic(**self._client_kwargs("anthropic", kwargs, is_async=False))

    def async_anthropic(self, **kwargs: Any) -> AsyncAnthropic:
        """A real ``anthropic.AsyncAnthropic`` served by this fake (see :meth:`anthropic`)."""
        from ._clients import AsyncAnthropic as FakeAsyncAnthropic

        return FakeAsyncAnthropic(**self._client_kwargs("anthropic", kwargs, is_async=True))

    def _client_kwargs(
        self, provider: Provider, kwargs: dict[str, Any], *, is_async: bool
    ) -> dict[str, Any]:
        if "http_client" in kwargs:
            raise TypeError(
                "FakeProvider supplies the http_client (an in-memory transport); do not pass one"
            )
        transport = httpx2.MockTransport(functools.partial(self._handle, provider))
        return {
            "api_key": _APIS[provider].FAKE_API_KEY,
            "max_retries": 0,
            **kwargs,
            "http_client": httpx2.AsyncClient(transport=transport)
            if is_async
            else httpx2.Client(transport=transport),
        }

    # -- scripting -------------------------------------------------------------------------

    def reply(
        self,
        text: str | None = None,
        *,
        tool_calls: Iterable[ToolCall | Mapping[str, Any]] = (),
        model: str | None = None,
        finish_reason: str | None = None,
        usage: Usage | Mapping[str, Any] | None = None,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        reasoning_tokens: int = 0,
        service_tier: str | None = None,
        endpoint: Endpoint | Iterable[Endpoint] | None = None,
        provider: Provider | None = None,
        times: int = 1,
    ) -> None:
        """Queue the next answer of a generation endpoint.

        - ``text``: the assistant's text; ``None`` with no ``tool_calls`` means the default
          answer. A request's ``max_tokens`` (``max_completion_tokens``,
          ``max_output_tokens``) cuts the text at a word boundary, with ``finish_reason``
          ``"length"`` / stop reason ``"max_tokens"`` / status ``"incomplete"``.
        - ``tool_calls``: :class:`ToolCall` objects or ``{"name", "arguments"[, "id"]}``
          mappings; the finish reason becomes ``"tool_calls"`` / ``"tool_use"``.
        - ``model``: the model the answer says served it (default: the requested model).
        - ``finish_reason``: sent verbatim as ``finish_reason`` / ``stop_reason``; for the
          Responses API, ``"length"`` makes the response ``"incomplete"``.
        - ``usage``: a :class:`costguard.Usage`, rendered in each provider's convention, or a
          mapping sent verbatim as the provider's ``usage`` object. Replaces counted usage.
        - ``cached_tokens`` / ``cache_write_tokens`` (5-minute) / ``cache_write_1h_tokens``:
          prompt tokens read from / written to the prompt cache; ``reasoning_tokens``: hidden
          output tokens, added to the output count. All default to 0.
        - ``service_tier``: the tier the answer reports (default: OpenAI echoes a requested
          ``"flex"``, ``"priority"`` or ``"scale"``, else ``"default"``; Anthropic
          ``"standard"``).
        - ``endpoint`` / ``provider``: which requests may take this answer (default: any
          generation endpoint of either provider). ``times`` queues it that many times.
        """
        match = match_for(endpoint, provider, allowed=GENERATION_ENDPOINTS)
        counts = {
            "cached_tokens": cached_tokens,
            "cache_write_tokens": cache_write_tokens,
            "cache_write_1h_tokens": cache_write_1h_tokens,
            "reasoning_tokens": reasoning_tokens,
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if usage is not None and not isinstance(usage, Usage | Mapping):
            raise TypeError(f"usage must be a costguard.Usage or a mapping, got {usage!r}")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times!r}")
        item = Reply(
            text=text,
            tool_calls=tuple(coerce_tool_call(call) for call in tool_calls),
            model=model,
            finish_reason=finish_reason,
            usage=usage,
            cached_tokens=cached_tokens,
            cache_write_tokens=cache_write_tokens,
            cache_write_1h_tokens=cache_write_1h_tokens,
            reasoning_tokens=reasoning_tokens,
            service_tier=service_tier,
            match=match,
        )
        with self._lock:
            self._queue.extend([item] * times)

    def fail(
        self,
        status: FailureKind,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        times: int = 1,
        endpoint: Endpoint | Iterable[Endpoint] | None = None,
        provider: Provider | None = None,
    ) -> None:
        """Queue a failure for the next matching request(s), as the real APIs fail.

        - an HTTP status (400-599): the provider's error JSON for that status, e.g. OpenAI
          ``{"error": {"message", "type", "param", "code"}}`` or Anthropic
          ``{"type": "error", "error": {"type": "rate_limit_error", ...}}``; the SDK raises its
          own class (``RateLimitError``, ``InternalServerError``, ``OverloadedError`` for an
          Anthropic 529, ...). ``retry_after`` (seconds) adds ``retry-after`` (whole seconds,
          rounded up) and ``retry-after-ms`` headers.
        - ``"timeout"``: the transport raises ``httpx2.ReadTimeout``; the SDK raises
          ``APITimeoutError``.
        - ``"connection"``: the transport raises ``httpx2.ConnectError``; the SDK raises
          ``APIConnectionError``.
        - ``"stream_error"``: a streamed answer starts, then fails as each API does mid-stream
          (OpenAI chat: a ``data: {"error": ...}`` line, the SDK raises ``openai.APIError``;
          OpenAI responses: a ``response.failed`` event, which the SDK yields, not raises;
          Anthropic: ``event: error`` with ``overloaded_error``, the SDK raises
          ``anthropic.APIStatusError``). A request that does not stream gets an HTTP 500
          (OpenAI) or 529 (Anthropic) instead.

        ``message`` replaces the error message; ``times`` queues the failure that many times;
        ``endpoint`` / ``provider`` choose the requests it may fail (default: any generation
        endpoint of either provider; any endpoint may be named here).
        """
        validate_failure(status, retry_after, times)
        item = Failure(
            kind=status,
            retry_after=retry_after,
            message=message,
            match=match_for(endpoint, provider),
        )
        with self._lock:
            self._queue.extend([item] * times)

    @property
    def batches(self) -> FakeBatches:
        """The batch APIs' state: how batches advance, and scripted endings (see
        :class:`~costguard.testing._batches.FakeBatches`)."""
        return self._batches

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many scripted replies and failures are still queued."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget queued items, recorded requests and the simulated prompt caches (ids keep
        counting, so stay unique)."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._prompt_caches.clear()

    # -- the fake API ----------------------------------------------------------------------

    def _handle(self, provider: Provider, request: httpx2.Request) -> httpx2.Response:
        api = _APIS[provider]
        path = request.url.path
        endpoint = find_route(api.ROUTES, request.method, path)
        batch = _batches.route(provider, request.method, path) if endpoint is None else None
        body = json_body(request.content)
        recorded = RecordedRequest(
            provider=provider,
            endpoint=endpoint or batch,
            method=request.method,
            url=str(request.url),
            path=path,
            headers={
                name: _redact(value) if name in _SECRET_HEADERS else value
                for name, value in request.headers.items()
            },
            json=body,
        )
        with self._lock:
            self._requests.append(recorded)
            item = self._take(provider, endpoint or batch)

        if endpoint is None and batch is None:
            return api.not_found(request.method, path, self._ids)
        exchange = self._exchange(body if isinstance(body, dict) else {}, item)
        if isinstance(item, Failure):
            if item.kind == "timeout":
                raise httpx2.ReadTimeout(
                    "Read timed out (scripted by FakeProvider)", request=request
                )
            if item.kind == "connection":
                raise httpx2.ConnectError(
                    "Connection refused (scripted by FakeProvider)", request=request
                )
            if item.kind != "stream_error":
                return api.error_response(
                    item.kind,
                    self._ids,
                    model=exchange.model,
                    message=item.message,
                    retry_after=item.retry_after,
                )
            if not exchange.stream or endpoint not in GENERATION_ENDPOINTS:
                # Not streamed (a batch endpoint never streams): the API's plain error status.
                return api.error_response(
                    api.STREAM_ERROR_STATUS, self._ids, model=exchange.model, message=item.message
                )
            # Otherwise the handler streams the answer and breaks it (exchange.failure).
        if endpoint is None:
            return self._batches.handle(provider, request)
        return api.HANDLERS[endpoint](exchange)

    def _answer(self, provider: str, endpoint: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        """One request of a batch, answered as a live request would be: (status, JSON)."""
        api = _APIS[provider]
        with self._lock:
            item = self._take(provider, endpoint)
        exchange = self._exchange(body, item)
        if isinstance(item, Failure):
            status = item.kind if isinstance(item.kind, int) else 500
            response = api.error_response(
                status, self._ids, model=exchange.model, message=item.message
            )
        else:
            response = api.HANDLERS[cast("Endpoint", endpoint)](exchange)
        return response.status_code, json.loads(response.content)

    def _exchange(self, body: Mapping[str, Any], item: Reply | Failure | None) -> Exchange:
        return Exchange(
            body=body,
            reply=item if isinstance(item, Reply) else Reply(),
            failure=item if isinstance(item, Failure) else None,
            ids=self._ids,
            seed=self._seed,
            created=self._created,
            caches=self._prompt_caches,
        )

    def _take(self, provider: str, endpoint: str | None) -> Reply | Failure | None:
        """Pop the first queued item this request may take (the caller holds the lock)."""
        for index, item in enumerate(self._queue):
            if item.match.accepts(provider, endpoint):
                del self._queue[index]
                return item
        return None
