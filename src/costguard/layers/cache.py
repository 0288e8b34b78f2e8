"""The cache layer: answer from the exact cache (then the semantic one), else ask and keep.

It runs inside every other layer, just before the SDK, so its key describes the request as it
will really be sent (after routing, capping and any layer of yours), and it computes that key
once per call and stores under the same key.

What it never stores: errors, refusals and content-filtered answers, streams that did not
finish (the caller stopped reading early, or the stream failed), raw HTTP responses. A hit is
the SDK's own object rebuilt from stored JSON, or, for a streamed request, a real SDK stream
replaying it; plain and streamed requests share entries.

Partitions are hard walls: the scope's tenant, else a keyed hash of the client's API key, so
two API keys never share entries (unless ``ExactCache(share_across_keys=True)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import CostGuardWarning
from ..cache._keys import cache_key, canonical

if TYPE_CHECKING:
    from ..cache._exact import ExactCache
    from ..cache._semantic import SemanticCache

__all__ = ["CacheLayer", "partition_tag"]


@dataclass(frozen=True, slots=True)
class _Plan:
    key: str
    tag: str
    ttl: float | None
    lookup: bool
    store: bool
    semantic: tuple[str, str] | None  # (partition, last user text) when eligible


def partition_tag(tenant: str | None, key_partition: str | None, *, share_across_keys: bool) -> str:
    """The cache partition: ``t:<tenant>``, else the client's ``k:<keyed hash of its key>``."""
    if tenant is not None:
        return f"t:{tenant}"
    if share_across_keys or key_partition is None:
        return "shared"
    return key_partition


class CacheLayer:
    def __init__(
        self,
        exact: ExactCache,
        semantic: SemanticCache | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.exact = exact
        self.semantic = semantic
        self._clock = clock
        self._pending: set[Any] = set()  # async store tasks, kept alive until done

    # -- the two drivers -----------------------------------------------------------------

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        plan = self._plan(call)
        if plan is None:
            return call_next(call)
        if plan.lookup:
            hit = self._serve(call, plan.key, self.exact.get(plan.key), "exact")
            if hit is None and plan.semantic is not None and self.semantic is not None:
                partition, text = plan.semantic
                found = self.semantic.lookup(plan.tag, partition, text, now=self._clock())
                if found is not None:
                    hit = self._serve(call, found, self.exact.get(found), "semantic", plan)
            if hit is not None:
                return hit
        outcome = call_next(call.replace(collect=True) if plan.store and call.stream else call)
        if plan.store:
            self._keep(call, plan, outcome, self._store)
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:

        plan = self._plan(call)
        if plan is None:
            return await call_next(call)
        if plan.lookup:
            entry = await self._aget(plan.key)
            hit = self._serve(call, plan.key, entry, "exact")
            if hit is None and plan.semantic is not None and self.semantic is not None:
                partition, text = plan.semantic
                found = await self.semantic.alookup(plan.tag, partition, text, now=self._clock())
                if found is not None:
                    entry = await self._aget(found)
                    hit = self._serve(call, found, entry, "semantic", plan)
            if hit is not None:
                return hit
        outcome = await call_next(
            call.replace(collect=True) if plan.store and call.stream else call
        )
        if plan.store:
            if outcome.stream is not None:  # stored by a task when the stream ends
                self._keep(call, plan, outcome, self._store_later)
            elif outcome.status == "ok" and outcome.cache == "miss":
                await self._astore(call, plan, outcome.response)
        return outcome

    async def _aget(self, key: str) -> Mapping[str, Any] | None:
        """An exact entry without blocking the loop: the memo, else a worker thread's read."""
        import asyncio

        entry = self.exact.recall(key)
        if entry is None:
            seen = self.exact.version()
            entry = await asyncio.to_thread(self.exact.get, key)
            if entry is not None:
                self.exact.remember(key, entry, seen)
        return entry

    # -- decisions shared by both drivers ------------------------------------------------

    def _plan(self, call: Call) -> _Plan | None:
        mode = call.scope.cache or "default"
        if mode == "off" or call.raw_response is not None:
            return None
        tag = partition_tag(
            call.scope.tenant,
            call.client.cache_partition,
            share_across_keys=self.exact.share_across_keys,
        )
        try:
            key = cache_key(call, tag)
        except TypeError:  # something the key cannot describe: do not guess
            return None
        return _Plan(
            key=key,
            tag=tag,
            ttl=call.scope.cache_ttl or self.exact.ttl,
            lookup=mode != "no-cache",
            store=mode != "no-store",
            semantic=_semantic_query(call, tag) if self.semantic is not None else None,
        )

    def _serve(
        self,
        call: Call,
        key: str,
        entry: Mapping[str, Any] | None,
        kind: str,
        plan: _Plan | None = None,
    ) -> Outcome | None:
        if entry is None:
            if kind == "semantic" and plan is not None and plan.semantic is not None:
                assert self.semantic is not None
                self.semantic.forget(plan.tag, plan.semantic[0], key)  # its exact entry is gone
            return None
        op = call.operation
        try:
            if entry.get("family") != op.family:
                raise ValueError(f"entry of family {entry.get('family')!r}")
            answer = op.rebuild(entry["object"])
            reading = op.read(answer)
            response = answer
            if call.stream:
                assert op.replay is not None
                response = op.replay(answer, call.params, call.client.sdk, call.client.is_async)
        except Exception as exc:
            warnings.warn(
                f"costguard ignored an unusable cache entry: {exc!r}",
                CostGuardWarning,
                stacklevel=2,
            )
            return None
        return reading.outcome(response, cache=kind)

    def _keep(
        self,
        call: Call,
        plan: _Plan,
        outcome: Outcome,
        store: Callable[[Call, _Plan, Any], None],
    ) -> None:
        if outcome.stream is not None:
            outcome.stream.on_finish(
                lambda final: store(call, plan, final.response) if final.status == "ok" else None
            )
        elif outcome.status == "ok" and outcome.cache == "miss":
            store(call, plan, outcome.response)

    def _store_later(self, call: Call, plan: _Plan, answer: Any) -> None:
        """Async drivers: store from a task on the running loop (disk and embedding off it)."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream finished outside any loop
            self._store(call, plan, answer)
            return
        task = loop.create_task(self._astore(call, plan, answer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _store(self, call: Call, plan: _Plan, answer: Any) -> None:
        entry = self._entry(call, answer)
        if entry is None:
            return
        self.exact.set(plan.key, entry, tag=plan.tag, ttl=plan.ttl)
        if self.semantic is not None and plan.semantic is not None and not _truncated(answer):
            partition, text = plan.semantic
            now = self._clock()
            expires = None if plan.ttl is None else now + plan.ttl
            with _quietly("index an answer"):
                self.semantic.add(plan.tag, partition, text, plan.key, expires_at=expires, now=now)

    async def _astore(self, call: Call, plan: _Plan, answer: Any) -> None:
        import asyncio

        entry = self._entry(call, answer)
        if entry is None:
            return
        await asyncio.to_thread(self.exact.set, plan.key, entry, tag=plan.tag, ttl=plan.ttl)
        if self.semantic is not None and plan.semantic is not None and not _truncated(answer):
            partition, text = plan.semantic
            now = self._clock()
            expires = None if plan.ttl is None else now + plan.ttl
            with _quietly("index an answer"):
                await self.semantic.aadd(
                    plan.tag, partition, text, plan.key, expires_at=expires, now=now
                )

    @staticmethod
    def _entry(call: Call, answer: Any) -> dict[str, Any] | None:
        """What to store for ``answer``: JSON data, or None if it must not be stored."""
        op = call.operation
        if answer is None or not op.cacheable(answer):
            return None
        return {"family": op.family, "object": answer.model_dump(mode="json", exclude_unset=True)}


@contextlib.contextmanager
def _quietly(what: str) -> Iterator[None]:
    """A cache failure never fails a call: it becomes a warning."""
    try:
        yield
    except Exception as exc:
        warnings.warn(f"costguard could not {what}: {exc!r}", CostGuardWarning, stacklevel=3)


def _truncated(answer: Any) -> bool:
    """Cut off by the output limit: fine to replay for the same limit, not for a look-alike."""
    if any(choice.finish_reason == "length" for choice in getattr(answer, "choices", None) or []):
        return True
    return getattr(answer, "stop_reason", None) == "max_tokens"


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _semantic_query(call: Call, tag: str) -> tuple[str, str] | None:
    """(partition, last user text) when a call may use the semantic cache, else None.

    The partition hard-filters candidates: the tenant, provider, base URL, model, every other
    output-affecting parameter, the system prompt and the conversation before the last user
    turn. Only a single-turn conversation whose last turn is plain user text qualifies.
    """
    op = call.operation
    name = op.messages_param
    if name is None:
        return None
    messages = canonical(call.params.get(name))
    if isinstance(messages, str):
        prefix: list[Any] = []
        text: str | None = messages
    elif isinstance(messages, list) and messages:
        *prefix, last = messages
        text = _user_text(last)
    else:
        return None
    if text is None or any(m.get("role") not in ("system", "developer") for m in prefix):
        return None  # multi-turn, or not a plain user question
    rest = {
        k: canonical(v)
        for k, v in call.params.items()
        if k in op.output_params and k != name and type(v).__name__ not in ("Omit", "NotGiven")
    }
    material = {
        "tag": tag,
        "provider": op.provider,
        "base_url": call.client.base_url,
        "family": op.family,
        "params": rest,
        "prefix": prefix,
    }
    return hashlib.sha256(_encode(material).encode()).hexdigest()[:32], text


def _user_text(message: Any) -> str | None:
    if not isinstance(message, dict) or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") in ("text", "input_text") for p in content
    ):
        return "\n".join(str(p.get("text", "")) for p in content)
    return None
