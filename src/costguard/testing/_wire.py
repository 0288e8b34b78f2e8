"""What both fake APIs share: ids, token counts, default text and server-sent-event bodies."""

from __future__ import annotations

import hashlib
import json
import re
import string
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from .._errors import InvalidRequestError
from .._tokens import count_text_tokens, count_tokens
from .._usage import Usage
from ._script import Endpoint, Reply

__all__ = [
    "ALNUM",
    "HEX",
    "Answer",
    "EventStream",
    "Exchange",
    "Ids",
    "TokenCounts",
    "default_text",
    "dumps",
    "fit_text",
    "json_response",
    "prompt_tokens",
    "settle_usage",
    "sse_response",
    "stream_pieces",
    "text_of",
    "text_tokens",
]

ALNUM = string.ascii_letters + string.digits
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

    def make(self, prefix: str, length: int, alphabet: str = ALNUM) -> str:
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
    """One request being answered: its JSON body, the reply to give, and the provider state."""

    body: Mapping[str, Any]
    reply: Reply
    ids: Ids
    seed: int
    created: int

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


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Token counts of one answer, before each provider renders them in its own convention.

    ``prompt`` is every prompt token (cache reads and writes included) and ``output`` every
    generated token (reasoning included), as in :class:`costguard.Usage`'s properties.
    """

    prompt: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def uncached_input(self) -> int:
        return self.prompt - self.cache_read - self.cache_write

    @property
    def total(self) -> int:
        return self.prompt + self.output


def settle_usage(reply: Reply, counted_prompt: int, visible_output: int) -> TokenCounts:
    """The counts to report: ``reply.usage`` if it is a ``Usage``, else counted ones.

    Scripted cache counts are honoured exactly; the prompt grows to hold them if the counted
    prompt is smaller than their sum.
    """
    if isinstance(reply.usage, Usage):
        u = reply.usage
        return TokenCounts(
            prompt=u.prompt_tokens,
            cache_read=u.cache_read_tokens,
            cache_write_5m=u.cache_write_5m_tokens,
            cache_write_1h=u.cache_write_1h_tokens,
            output=u.output_tokens,
            reasoning=u.reasoning_tokens,
        )
    cached = reply.cached_tokens + reply.cache_write_tokens + reply.cache_write_1h_tokens
    return TokenCounts(
        prompt=max(counted_prompt, cached),
        cache_read=reply.cached_tokens,
        cache_write_5m=reply.cache_write_tokens,
        cache_write_1h=reply.cache_write_1h_tokens,
        output=visible_output + reply.reasoning_tokens,
        reasoning=reply.reasoning_tokens,
    )


# -- text ----------------------------------------------------------------------------------


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
