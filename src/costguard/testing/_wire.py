"""What both fake APIs share: ids, token counts, usage, default text, the prompt caches'
bookkeeping and HTTP bodies."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import string
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx2

from .._errors import InvalidRequestError
from .._tokens import count_text_tokens, count_tokens
from .._usage import Usage
from ._script import Endpoint, Failure, Reply

__all__ = [
    "HEX",
    "Answer",
    "CacheSplit",
    "EventStream",
    "Exchange",
    "Handler",
    "Ids",
    "PromptCaches",
    "default_text",
    "dumps",
    "find_route",
    "fit_text",
    "json_body",
    "json_pieces",
    "json_response",
    "last_user_text",
    "mappings",
    "prefix_hashes",
    "prompt_tokens",
    "retry_headers",
    "rfc3339",
    "settle_usage",
    "sse_response",
    "stream_pieces",
    "text_of",
    "text_tokens",
]

_ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"

# Models the token counter does not know (a made-up "test-model", a local model name) are
# counted with this one, so a test never fails just because of the model name.
_FALLBACK_MODEL = "gpt-4o"


class Ids:
    """Deterministic, provider-looking ids: a per-prefix counter hashed with the seed."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def make(self, prefix: str, length: int, alphabet: str = _ALNUM) -> str:
        with self._lock:
            n = self._counters.get(prefix, 0)
            self._counters[prefix] = n + 1
        chars: list[str] = []
        block = 0
        while len(chars) < length:
            digest = hashlib.sha256(f"{self._seed}:{prefix}:{n}:{block}".encode()).digest()
            chars.extend(alphabet[byte % len(alphabet)] for byte in digest)
            block += 1
        return prefix + "".join(chars[:length])


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request being answered: its JSON body, the reply to give (or the scripted
    ``stream_error`` its stream breaks with), and the FakeProvider's state."""

    body: Mapping[str, Any]
    reply: Reply
    failure: Failure | None
    ids: Ids
    seed: int
    created: int
    caches: PromptCaches

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) and model else "unknown-model"

    @property
    def served_model(self) -> str:
        return self.reply.model or self.model


# -- token counting ------------------------------------------------------------------------


def text_tokens(model: str, text: str) -> int:
    try:
        return count_text_tokens(model, text)
    except InvalidRequestError:
        return count_text_tokens(_FALLBACK_MODEL, text)


def prompt_tokens(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    system: str | Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens as costguard's own counter sees them; never raises on odd input."""
    try:
        return count_tokens(model, messages, tools=tools, system=system)
    except InvalidRequestError as exc:
        if exc.field == "model":
            return prompt_tokens(_FALLBACK_MODEL, messages, tools=tools, system=system)
        # Malformed messages: a real API would answer 400; the fake counts what it got.
        dumped = json.dumps([system, list(messages), tools], default=str)
        return text_tokens(model, dumped)


CacheSplit: TypeAlias = tuple[int, int, int]
"""Prompt tokens read from the prompt cache, written to it for 5 minutes, and for 1 hour."""


def settle_usage(
    reply: Reply, prompt: int, output: int, simulate_cache: Callable[[int], CacheSplit]
) -> Usage:
    """The usage to report: ``reply.usage`` if it is a ``Usage``, else the counted ``prompt``
    and visible ``output`` tokens, with the reply's reasoning tokens added to the output.

    Scripted cache counts are honoured exactly; the prompt grows to hold them if it is smaller
    than their sum. With none scripted (and no ``usage=``), ``simulate_cache(prompt)`` splits
    the prompt by the fake API's prompt cache (it only runs then, as it updates the cache).
    """
    if isinstance(reply.usage, Usage):
        return reply.usage
    scripted = (reply.cached_tokens, reply.cache_write_tokens, reply.cache_write_1h_tokens)
    if reply.usage is None and not any(scripted):
        scripted = simulate_cache(prompt)
    read, write_5m, write_1h = scripted
    cached = read + write_5m + write_1h
    return Usage(
        input_tokens=max(prompt, cached) - cached,
        cache_read_tokens=read,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=output + reply.reasoning_tokens,
        reasoning_tokens=reply.reasoning_tokens,
    )


# -- prompt caches -------------------------------------------------------------------------


def prefix_hashes(start: object, units: Iterable[object]) -> list[str]:
    """A hash per prefix of ``units`` (the i-th covers units 0..i), chained from ``start``:
    the names of a prompt's cacheable prefixes. ``start`` keeps apart what must never share
    an entry (the provider, the model, OpenAI's ``prompt_cache_key``)."""
    digest = hashlib.sha256(dumps(start).encode()).digest()
    hashes: list[str] = []
    for unit in units:
        digest = hashlib.sha256(digest + dumps(unit).encode()).digest()
        hashes.append(digest.hex())
    return hashes


class PromptCaches:
    """One FakeProvider's simulated prompt caches: prefix hash -> (expiry, lifetime), in
    seconds of the FakeProvider's ``clock``. An entry is live until the clock reaches its
    expiry. Both fake APIs keep their entries here (their hashes start apart, see
    :func:`prefix_hashes`); what they cache, and for how long, is each API's own.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _last_live(self, keys: Sequence[str], now: float) -> int:
        expired = (now, 0.0)
        return next(
            (
                i
                for i in range(len(keys) - 1, -1, -1)
                if self._entries.get(keys[i], expired)[0] > now
            ),
            -1,
        )

    def read(self, keys: Sequence[str]) -> int:
        """The index of the last live entry of ``keys`` (-1 for none), which starts its own
        lifetime again (Anthropic's reads)."""
        with self._lock:
            now = self._clock()
            found = self._last_live(keys, now)
            if found >= 0:
                _, lifetime = self._entries[keys[found]]
                self._entries[keys[found]] = (now + lifetime, lifetime)
            return found

    def write(self, key: str, lifetime: float) -> None:
        """Cache ``key`` for ``lifetime`` seconds from now (Anthropic's writes)."""
        with self._lock:
            self._entries[key] = (self._clock() + lifetime, lifetime)

    def use(self, keys: Sequence[str], lifetime: float) -> int:
        """The index of the last live entry of ``keys`` (-1 for none); then every one of
        ``keys`` lives at least ``lifetime`` seconds from now (OpenAI's prefixes)."""
        with self._lock:
            now = self._clock()
            found = self._last_live(keys, now)
            until = now + lifetime
            for key in keys:
                if self._entries.get(key, (until, 0.0))[0] <= until:
                    self._entries[key] = (until, lifetime)
            return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# -- text ----------------------------------------------------------------------------------


def mappings(value: object) -> list[Mapping[str, Any]]:
    """The mappings in a JSON list (a message list, a content list, tools); [] otherwise."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def text_of(content: object) -> str:
    """The readable text of a message's content: a string or a list of parts / blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "tool_result":
                    texts.append(text_of(part.get("content")))
        return " ".join(t for t in texts if t)
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message: what the default answer quotes."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


_FILLERS = (
    "No network was used: this answer comes from costguard's FakeProvider.",
    "The same request always gets the same words, so tests stay deterministic.",
    "Script a different answer with FakeProvider.reply() when a test needs one.",
    "Token usage is counted from the request and this text, as a real API would.",
    "Pricing, budgets and the ledger see this call exactly like a real one.",
)


def default_text(seed: int, model: str, prompt: str) -> str:
    """The answer given when nothing is scripted: a pure function of seed, model and prompt."""
    snippet = " ".join(prompt.split())
    if len(snippet) > 60:
        snippet = snippet[:57].rstrip() + "..."
    digest = hashlib.sha256(f"{seed}\0{model}\0{snippet}".encode()).digest()
    first = digest[0] % len(_FILLERS)
    second = (first + 1 + digest[1] % (len(_FILLERS) - 1)) % len(_FILLERS)
    head = (
        f'This is a fake reply from {model} to "{snippet}".'
        if snippet
        else (f"This is a fake reply from {model}.")
    )
    return f"{head} {_FILLERS[first]} {_FILLERS[second]}"


_PIECE = re.compile(r"\s*\S+|\s+$")


def stream_pieces(text: str) -> list[str]:
    """``text`` cut into word-sized deltas (each with its leading space), as streams send it."""
    return _PIECE.findall(text)


_JSON_PIECE = re.compile(r".{1,8}", re.DOTALL)


def json_pieces(text: str) -> list[str]:
    """Tool-call arguments as both APIs stream them: a few characters of JSON at a time."""
    return _JSON_PIECE.findall(text)


def fit_text(model: str, text: str, limit: int | None) -> tuple[str, bool]:
    """``text`` cut at a word boundary to at most ``limit`` tokens; True if it was cut."""
    if limit is None or text_tokens(model, text) <= limit:
        return text, False
    pieces = stream_pieces(text)
    lo, hi = 0, len(pieces)  # the longest fitting prefix has lo..hi pieces
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_tokens(model, "".join(pieces[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return "".join(pieces[:lo]), True


class Answer:
    """The text and tool calls of one answer, cut to the request's output limit.

    ``text`` is the scripted text, or the default answer when neither text nor tool calls
    were scripted, cut at a word boundary to ``limit`` minus the reasoning tokens
    (``truncated`` says whether it was). ``visible_tokens`` counts the text and the tool calls.
    """

    def __init__(self, ex: Exchange, prompt_text: str, limit: int | None) -> None:
        reply = ex.reply
        self.tool_calls = reply.tool_calls
        text = reply.text
        if text is None and not self.tool_calls:
            text = default_text(ex.seed, ex.model, prompt_text)
        self.truncated = False
        if text is not None and not self.tool_calls and limit is not None:
            text, self.truncated = fit_text(ex.model, text, max(limit - reply.reasoning_tokens, 0))
        self.text = text
        self.visible_tokens = text_tokens(ex.model, text or "") + sum(
            text_tokens(ex.model, call.name + call.arguments_json) for call in self.tool_calls
        )


# -- HTTP ----------------------------------------------------------------------------------


Handler: TypeAlias = Callable[[Exchange], httpx2.Response]
"""Answers one endpoint's requests."""


class EventStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body that arrives one server-sent event at a time (sync or async)."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = tuple(chunks)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def find_route(
    routes: Mapping[tuple[str, str], Endpoint], method: str, path: str
) -> Endpoint | None:
    """The endpoint a request is for, whatever the base URL's path prefix."""
    for (route_method, suffix), endpoint in routes.items():
        if method == route_method and path.rstrip("/").endswith(suffix):
            return endpoint
    return None


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_body(content: bytes) -> Any:
    """A request body decoded as JSON; ``None`` if empty or not JSON."""
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def rfc3339(seconds: int) -> str:
    """A Unix time as the Anthropic API writes it: ``2025-11-21T00:00:00Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def retry_headers(retry_after: float | None) -> dict[str, str]:
    """``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``, as both APIs send."""
    if retry_after is None:
        return {}
    return {
        "retry-after": str(math.ceil(retry_after)),
        "retry-after-ms": str(round(retry_after * 1000)),
    }


def json_response(
    status: int, body: object, headers: Mapping[str, str] | None = None
) -> httpx2.Response:
    return httpx2.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        content=dumps(body).encode(),
    )


def sse_response(
    chunks: Sequence[bytes], headers: Mapping[str, str] | None = None
) -> httpx2.Response:
    return httpx2.Response(
        200,
        headers={
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            **(headers or {}),
        },
        stream=EventStream(chunks),
    )
