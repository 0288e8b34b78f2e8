"""The exact cache: safe to turn on, partitioned, and answering with the SDK's own objects."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import costguard
from _helpers import Clock
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "What is a good name for a cat?"}]


@pytest.fixture
def cached(tmp_path: Path, clock: Clock) -> Iterator[costguard.CostGuardClient]:
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "ledger.db", cache=costguard.ExactCache(tmp_path / "cache", clock=clock)
    )
    yield guard
    guard.close()


def test_the_exact_cache_is_on_by_default(tmp_path: Path) -> None:
    """CostGuardClient() caches, under COSTGUARD_HOME, in an owner-only directory."""
    with costguard.CostGuardClient(ledger=tmp_path / "l.db") as guard:
        assert isinstance(guard.cache, costguard.ExactCache)
        client = guard.wrap(FakeProvider().openai())
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        directory = guard.cache.directory
        assert directory == Path(os.environ["COSTGUARD_HOME"]) / "cache" / "exact"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_repeated_call_is_answered_from_the_cache(cached: costguard.CostGuardClient) -> None:
    """The second identical call sends nothing, returns an equal ChatCompletion, costs $0 and
    records what it saved."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    first = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    second = client.chat.completions.create(messages=HI, model="gpt-4o-mini")
    assert type(second) is ChatCompletion and second == first
    assert len(fake.requests) == 1
    miss, hit = cached.ledger.records()
    assert (miss.cache, hit.cache) == ("miss", "exact")
    assert hit.cost_usd == 0 and hit.saved_usd == miss.cost_usd and hit.saved_usd > 0
    assert hit.usage == costguard.Usage() and hit.raw_usage == miss.raw_usage


@pytest.mark.parametrize(
    ("provider", "call", "sdk_type"),
    [
        (
            "openai",
            lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=HI),
            ChatCompletion,
        ),
        (
            "openai",
            lambda c: c.responses.create(model="gpt-4o-mini", input="Name a cat."),
            Response,
        ),
        (
            "openai",
            lambda c: c.embeddings.create(model="text-embedding-3-small", input=["a", "b"]),
            CreateEmbeddingResponse,
        ),
        (
            "anthropic",
            lambda c: c.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HI),
            Message,
        ),
    ],
)
def test_hits_are_the_sdks_own_objects_for_every_operation(
    cached: costguard.CostGuardClient, provider: str, call: Any, sdk_type: type
) -> None:
    """Each guarded operation's hit is equal to the stored answer and of the same type."""
    fake = FakeProvider()
    client = cached.wrap(getattr(fake, provider)())
    first, second = call(client), call(client)
    assert type(second) is sdk_type and second == first
    assert len(fake.requests) == 1


def test_async_clients_hit_the_cache_too(cached: costguard.CostGuardClient) -> None:
    """An async client gets the same hit, read off the event loop."""
    fake = FakeProvider()
    client = cached.wrap(fake.async_anthropic())

    async def main() -> tuple[Any, Any]:
        ask = lambda: client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HI)  # noqa: E731
        return await ask(), await ask()

    first, second = asyncio.run(main())
    assert second == first and len(fake.requests) == 1


def test_a_streamed_request_replays_a_stored_answer_as_a_real_stream(
    cached: costguard.CostGuardClient,
) -> None:
    """A stream request served from the cache is an openai.Stream of several chunks with the
    same text, and ends with usage when the request asked for it."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    stored = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    assert type(stream) is openai.Stream
    chunks = list(stream)
    assert len(chunks) > 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == stored.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == stored.usage
    plain = list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert all(c.usage is None for c in plain)
    assert len(fake.requests) == 1


def test_a_plain_request_is_served_from_a_recorded_stream(
    cached: costguard.CostGuardClient,
) -> None:
    """An answer recorded from a finished stream serves a later non-stream request."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        if c.choices
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert type(completion) is ChatCompletion
    assert completion.choices[0].message.content == text
    assert len(fake.requests) == 1


def test_responses_streams_are_recorded_and_replayed(cached: costguard.CostGuardClient) -> None:
    """A Responses stream is stored from its completed event and replayed as events."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    live = list(client.responses.create(model="gpt-4o-mini", input="Name a cat.", stream=True))
    replay = list(client.responses.create(model="gpt-4o-mini", input="Name a cat.", stream=True))
    assert len(fake.requests) == 1
    assert replay[-1].type == "response.completed"
    assert replay[-1].response.output_text == live[-1].response.output_text
    deltas = "".join(e.delta for e in replay if e.type == "response.output_text.delta")
    assert deltas == live[-1].response.output_text


def test_anthropic_stream_helper_is_served_from_the_cache(
    cached: costguard.CostGuardClient,
) -> None:
    """messages.stream() after a plain call replays through the SDK's MessageStream."""
    fake = FakeProvider()
    claude = cached.wrap(fake.anthropic())
    stored = claude.messages.create(model="claude-haiku-4-5", max_tokens=80, messages=HI)
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=80, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == stored.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == stored.usage.output_tokens
    raw = list(
        claude.messages.create(model="claude-haiku-4-5", max_tokens=80, messages=HI, stream=True)
    )
    assert raw[0].type == "message_start" and raw[-1].type == "message_stop"
    assert len(fake.requests) == 1


def test_an_anthropic_stream_is_stored_when_it_finishes(cached: costguard.CostGuardClient) -> None:
    """A finished messages.stream() serves a later messages.create, with the same text."""
    fake = FakeProvider()
    claude = cached.wrap(fake.anthropic())
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=80, messages=HI) as stream:
        final = stream.get_final_message()
    again = claude.messages.create(model="claude-haiku-4-5", max_tokens=80, messages=HI)
    assert type(again) is Message and again.content[0].text == final.content[0].text  # type: ignore[union-attr]
    assert len(fake.requests) == 1


def test_a_stream_the_caller_stopped_reading_is_not_stored(
    cached: costguard.CostGuardClient,
) -> None:
    """A partial stream never becomes a cache entry."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    with client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True) as stream:
        next(iter(stream))
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert len(fake.requests) == 2


def test_errors_and_refusals_are_not_stored(cached: costguard.CostGuardClient) -> None:
    """A failed call and a content-filtered answer are asked again next time."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    fake.fail(500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    fake.reply("I can't help with that.", finish_reason="content_filter")
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert len(fake.requests) == 3


def test_an_anthropic_refusal_is_not_stored(cached: costguard.CostGuardClient) -> None:
    """stop_reason "refusal" is never replayed."""
    fake = FakeProvider()
    claude = cached.wrap(fake.anthropic())
    fake.reply("No.", finish_reason="refusal")
    for _ in range(2):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HI)
    assert len(fake.requests) == 2


def test_tenants_and_api_keys_are_hard_partitions(cached: costguard.CostGuardClient) -> None:
    """Another tenant, or another API key with no tenant, never sees an entry."""
    fake = FakeProvider()
    alice = cached.wrap(fake.openai(api_key="sk-alice-000000000001"))
    bob = cached.wrap(fake.openai(api_key="sk-bob-0000000000002"))
    for tenant in ("acme", "globex"):
        with cached.scope(tenant=tenant):
            alice.chat.completions.create(model="gpt-4o-mini", messages=HI)
    alice.chat.completions.create(model="gpt-4o-mini", messages=HI)
    bob.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert len(fake.requests) == 4
    with cached.scope(tenant="acme"):
        bob.chat.completions.create(model="gpt-4o-mini", messages=HI)  # same tenant: shared
    assert len(fake.requests) == 4


def test_sharing_across_keys_is_opt_in(tmp_path: Path) -> None:
    """share_across_keys=True lets clients with different keys and no tenant share entries."""
    cache = costguard.ExactCache(tmp_path / "c", share_across_keys=True)
    with costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=cache) as guard:
        fake = FakeProvider()
        for key in ("sk-one-0000000000001", "sk-two-0000000000002"):
            guard.wrap(fake.openai(api_key=key)).chat.completions.create(
                model="gpt-4o-mini", messages=HI
            )
        assert len(fake.requests) == 1


def test_scope_cache_controls(cached: costguard.CostGuardClient) -> None:
    """no-store looks up but keeps nothing, no-cache asks again but stores, off does neither."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    ask = lambda: client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # noqa: E731
    with cached.scope(cache="no-store"):
        ask()
    ask()  # nothing was stored: asks, and stores
    assert len(fake.requests) == 2
    with cached.scope(cache="no-cache"):
        ask()  # skips the lookup
    with cached.scope(cache="off"):
        ask()
    with cached.scope(cache="no-store"):
        ask()  # lookup still works
    assert len(fake.requests) == 4


def test_an_unknown_cache_mode_is_a_configuration_error(cached: costguard.CostGuardClient) -> None:
    """scope(cache=...) names the allowed modes."""
    with pytest.raises(costguard.ConfigurationError, match="no-store"):
        cached.scope(cache="sometimes")


def test_entries_expire_after_their_ttl(cached: costguard.CostGuardClient, clock: Clock) -> None:
    """scope(ttl=...) bounds how long an entry is served (by the injected clock)."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    with cached.scope(ttl=60):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    clock.now += 59
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    clock.now += 2
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert len(fake.requests) == 2


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10"])
def test_a_bad_ttl_is_a_configuration_error(ttl: Any) -> None:
    """TTLs must be positive, finite seconds."""
    with pytest.raises(costguard.ConfigurationError, match="ttl"):
        costguard.ExactCache(ttl=ttl)


def test_n_must_match_to_share_an_entry(cached: costguard.CostGuardClient) -> None:
    """An answer with two choices is not served to a request for one, nor the reverse."""
    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, n=2)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, n=2)
    assert len(fake.requests) == 2


def test_a_pickled_row_is_a_miss_and_is_never_unpickled(
    cached: costguard.CostGuardClient, tmp_path: Path
) -> None:
    """A row written with pickle under a live key warns, misses, and runs no code."""
    import diskcache

    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert cached.cache is not None
    [key] = list(diskcache.Cache(str(cached.cache.directory)).iterkeys())
    marker = tmp_path / "pwned"
    evil = diskcache.Cache(str(cached.cache.directory))  # diskcache's default disk: pickles
    evil.set(key, _Exploit(str(marker)))
    evil.close()
    with pytest.warns(costguard.CostGuardWarning, match="will not decode"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert not marker.exists()
    assert len(fake.requests) == 2


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path(self.path).touch, ())


def test_a_corrupt_row_is_a_miss_with_a_warning(cached: costguard.CostGuardClient) -> None:
    """Bytes that are not costguard's JSON are dropped and the call goes to the provider."""
    import diskcache

    fake = FakeProvider()
    client = cached.wrap(fake.openai())
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert cached.cache is not None
    store = diskcache.Cache(str(cached.cache.directory))
    [key] = list(store.iterkeys())
    store.set(key, b"\x00not json")
    store.close()
    with pytest.warns(costguard.CostGuardWarning, match="not its JSON"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert len(fake.requests) == 2


def test_an_unusable_cache_directory_warns_and_the_call_goes_through(tmp_path: Path) -> None:
    """A cache under a regular file cannot open: a warning, and the provider answers."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=costguard.ExactCache(blocker / "cache")
    ) as guard:
        with pytest.warns(costguard.CostGuardWarning, match="unusable"):
            client = guard.wrap(FakeProvider().openai())
            result = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert type(result) is ChatCompletion


def test_an_entry_written_by_another_process_is_served(tmp_path: Path) -> None:
    """The cache is shared by processes: a child's answer is a hit here."""
    code = (
        "import sys, costguard; from costguard.testing import FakeProvider\n"
        "cache = costguard.ExactCache(sys.argv[2])\n"
        "g = costguard.CostGuardClient(ledger=sys.argv[1], cache=cache)\n"
        "g.wrap(FakeProvider().openai()).chat.completions.create(model='gpt-4o-mini', "
        "messages=[{'role': 'user', 'content': 'What is a good name for a cat?'}])\n"
        "g.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "child.db"), str(tmp_path / "c")], check=True
    )
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=costguard.ExactCache(tmp_path / "c")
    ) as g:
        fake = FakeProvider()
        g.wrap(fake.openai()).chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert fake.requests == []


# -- keys --------------------------------------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _key(guard: costguard.CostGuardClient, client: Any, **params: Any) -> str:
    from costguard._call import Call
    from costguard._scope import Scope
    from costguard.cache._keys import cache_key
    from costguard.providers import operations_for

    [chat, *_] = operations_for("openai")
    info = costguard.ClientInfo("openai", "https://api.openai.com/v1/", False)
    return cache_key(Call(chat, params, client, info, Scope()), "t:x")


@given(st.dictionaries(st.text(min_size=1, max_size=6), _values, max_size=5))
def test_dict_and_argument_order_never_change_the_key(extra: dict[str, Any]) -> None:
    """The same request spelled in any key order has one key."""
    forward = {"model": "gpt-4o-mini", "messages": HI, "extra_body": extra}
    backward = {
        "extra_body": dict(reversed(list(extra.items()))),
        "messages": HI,
        "model": "gpt-4o-mini",
    }
    assert _key(None, None, **forward) == _key(None, None, **backward)  # type: ignore[arg-type]


@given(
    st.sampled_from(
        [
            "temperature",
            "seed",
            "top_p",
            "max_tokens",
            "n",
            "stop",
            "tools",
            "response_format",
            "extra_body",
        ]
    ),
    st.integers(min_value=1, max_value=5),
)
def test_any_output_affecting_change_changes_the_key(name: str, value: int) -> None:
    """Changing one parameter that shapes the answer gives another key."""
    base = {"model": "gpt-4o-mini", "messages": HI}
    changed = {
        **base,
        name: value if name not in ("tools", "stop", "extra_body", "response_format") else [value],
    }
    assert _key(None, None, **base) != _key(None, None, **changed)  # type: ignore[arg-type]


@given(
    st.sampled_from(
        [
            "metadata",
            "user",
            "stream",
            "stream_options",
            "timeout",
            "extra_headers",
            "service_tier",
            "store",
        ]
    )
)
def test_request_noise_never_changes_the_key(name: str) -> None:
    """Per-request noise (timeouts, headers, metadata, stream options...) shares the entry."""
    base = {"model": "gpt-4o-mini", "messages": HI}
    value: Any = {
        "stream": True,
        "timeout": 3.0,
        "service_tier": "flex",
        "store": True,
        "user": "u",
    }.get(name, {"a": "b"})
    assert _key(None, None, **base) == _key(None, None, **{**base, name: value})  # type: ignore[arg-type]


def test_the_key_is_versioned() -> None:
    """Keys carry the recipe's version, so a new recipe never reads old entries."""
    assert _key(None, None, model="gpt-4o-mini", messages=HI).startswith("v1:")  # type: ignore[arg-type]


def test_anthropic_raw_response_passes_by_the_cache(cached: costguard.CostGuardClient) -> None:
    """with_raw_response calls are neither served from nor stored in the cache."""
    fake = FakeProvider()
    claude = cached.wrap(fake.anthropic())
    for _ in range(2):
        claude.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=20, messages=HI
        )
    assert len(fake.requests) == 2
    assert isinstance(claude, anthropic.Anthropic)


def test_an_async_client_never_serves_an_entry_cleared_elsewhere(
    cached: costguard.CostGuardClient, tmp_path: Path
) -> None:
    """After another process clears the cache, the event loop's memo is not trusted."""
    fake = FakeProvider()
    client = cached.wrap(fake.async_openai())
    ask = lambda: client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # noqa: E731

    async def main() -> None:
        await ask()
        await ask()  # read from disk in a worker thread, memoised
        await ask()  # served from the memo
        assert len(fake.requests) == 1
        other = costguard.ExactCache(tmp_path / "cache")  # e.g. `costguard cache clear`
        assert other.clear() == 1
        other.close()
        await ask()
        assert len(fake.requests) == 2

    asyncio.run(main())


def test_memoised_entries_still_expire(cached: costguard.CostGuardClient, clock: Clock) -> None:
    """The event loop's memo honours each entry's TTL."""
    fake = FakeProvider()
    client = cached.wrap(fake.async_openai())

    async def main() -> None:
        with cached.scope(ttl=10):
            for _ in range(3):
                await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        clock.now += 11
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    asyncio.run(main())
    assert len(fake.requests) == 2
