"""The semantic cache behind a guard: look-alike questions, never across walls or near-misses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import costguard
from _helpers import Clock
from costguard.testing import FakeProvider


def ask(text: str, system: str | None = None) -> list[dict[str, str]]:
    prefix = [{"role": "system", "content": system}] if system else []
    return [*prefix, {"role": "user", "content": text}]


def make_guard(tmp_path: Path, clock: Clock, threshold: float = 0.88, embedder: Any = None) -> Any:
    return costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=costguard.ExactCache(tmp_path / "exact", clock=clock),
        semantic=costguard.SemanticCache(
            threshold,
            embedder=embedder or costguard.FakeEmbedder(),
            directory=tmp_path / "semantic",
        ),
    )


@pytest.fixture
def guard(tmp_path: Path, clock: Clock) -> Iterator[Any]:
    g = make_guard(tmp_path, clock)
    yield g
    g.close()


def test_a_look_alike_question_is_served_from_the_semantic_cache(guard: Any) -> None:
    """The same question spelled differently is a semantic hit: no request, $0, savings."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("How do I reset my password?")
    )
    second = client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("how do I RESET my password")
    )
    assert second == first and len(fake.requests) == 1
    miss, hit = guard.ledger.records()
    assert hit.cache == "semantic" and hit.cost_usd == 0 and hit.saved_usd == miss.cost_usd


def test_the_guard_refuses_a_near_miss_the_embedding_would_allow(
    tmp_path: Path, clock: Clock
) -> None:
    """Even at a loose threshold, "capital of France" never answers "capital of Germany"."""
    with make_guard(tmp_path, clock, threshold=0.5) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        for country in ("France", "Germany"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=ask(f"What is the capital of {country}?")
            )
        assert len(fake.requests) == 2


def test_tenants_are_walls_for_the_semantic_cache_too(guard: Any) -> None:
    """A look-alike question from another tenant is asked afresh."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tenant="acme"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=ask("How do I reset my password?")
        )
    with guard.scope(tenant="globex"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=ask("how do I reset my password")
        )
    assert len(fake.requests) == 2


def test_another_system_prompt_or_model_is_another_partition(guard: Any) -> None:
    """Candidates must share the system prompt and every other parameter."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("Reset my password?", "Be terse.")
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("reset my password", "Be chatty.")
    )
    client.chat.completions.create(model="gpt-4o", messages=ask("reset my password", "Be terse."))
    client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("reset my password", "Be terse."), temperature=0
    )
    assert len(fake.requests) == 4


def test_multi_turn_conversations_are_not_served_semantically(guard: Any) -> None:
    """Only single-turn questions use the semantic cache."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[*history, *ask("Reset my password?")]
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[*history, *ask("reset my password")]
    )
    assert len(fake.requests) == 2


def test_semantic_entries_expire_with_their_ttl(guard: Any, clock: Clock) -> None:
    """No semantic hit is served after the entry's TTL."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(ttl=30):
        client.chat.completions.create(model="gpt-4o-mini", messages=ask("Reset my password?"))
    clock.now += 31
    client.chat.completions.create(model="gpt-4o-mini", messages=ask("reset my password"))
    assert len(fake.requests) == 2


def test_anthropic_and_async_clients_use_the_semantic_cache(guard: Any) -> None:
    """An async Anthropic client gets semantic hits, with embedding off the event loop."""
    fake = FakeProvider()
    claude = guard.wrap(fake.async_anthropic())

    async def main() -> None:
        for text in ("How do I reset my password?", "how do I reset my password"):
            await claude.messages.create(
                model="claude-haiku-4-5", max_tokens=300, messages=ask(text)
            )

    asyncio.run(main())
    assert len(fake.requests) == 1
    assert [r.cache for r in guard.ledger.records()] == ["miss", "semantic"]


def test_a_truncated_answer_is_not_offered_to_look_alikes(guard: Any) -> None:
    """An answer cut off by max_tokens is kept for the exact request only."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("Reset my password?"), max_tokens=3
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("reset my password"), max_tokens=3
    )
    assert len(fake.requests) == 2


def test_a_semantic_cache_needs_the_exact_cache(tmp_path: Path) -> None:
    """semantic= with cache=None is a configuration error: the answers live in the exact cache."""
    with pytest.raises(costguard.ConfigurationError, match="exact cache"):
        costguard.CostGuardClient(
            ledger=tmp_path / "l.db",
            cache=None,
            semantic=costguard.SemanticCache(
                embedder=costguard.FakeEmbedder(), directory=tmp_path / "s"
            ),
        )


def test_real_paraphrases_hit_with_the_local_embedder(tmp_path: Path, clock: Clock) -> None:
    """With all-MiniLM-L6-v2, a reworded question is served; a different city is not."""
    pytest.importorskip("tokenizers")
    from costguard.cache._minilm import MiniLMEmbedder

    try:
        embedder = MiniLMEmbedder()
    except costguard.ConfigurationError:
        pytest.skip("the local embedder's weights are not installed")
    with make_guard(tmp_path, clock, embedder=embedder) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        for text in (
            "How can I reset my account password?",
            "How do I reset the password for my account?",
            "What is the weather in Paris tomorrow?",
            "What is the weather in Berlin tomorrow?",
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=ask(text))
        assert [r.cache for r in guard.ledger.records()] == ["miss", "semantic", "miss", "miss"]
