from __future__ import annotations

import asyncio
import json
import math
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from costguard import ConfigurationError, CostGuardWarning
from costguard.cache._embedders import Embedder, FakeEmbedder, OpenAIEmbedder
from costguard.cache._semantic import DEFAULT_THRESHOLD, SemanticCache
from costguard.testing import FakeProvider

T = "tenant-a"
P = "partition-1"
NOW = 1_700_000_000.0


def cache(directory: Path, threshold: float = 0.6, **kwargs: object) -> SemanticCache:
    kwargs.setdefault("embedder", FakeEmbedder())
    return SemanticCache(threshold, directory=directory, **kwargs)  # type: ignore[arg-type]


class FixedEmbedder:
    """Returns whatever vectors it is told to; declares ``declared`` dimensions."""

    name = "fixed"

    def __init__(self, width: int, declared: int | None) -> None:
        self.width = width
        self.declared = declared

    @property
    def dimensions(self) -> int | None:
        return self.declared

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.ones((len(texts), self.width), dtype=np.float32)

    async def aembed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)


def files(directory: Path, suffix: str) -> list[Path]:
    return sorted(directory.rglob(f"*{suffix}"))


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, 0.0, -0.5, 1.0001, 2, math.nan, math.inf, True, "0.9"])
def test_a_threshold_outside_zero_to_one_is_refused(tmp_path: Path, threshold: object) -> None:
    with pytest.raises(ConfigurationError, match="cosine similarity"):
        SemanticCache(threshold, embedder=FakeEmbedder(), directory=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [1e-9, 0.5, DEFAULT_THRESHOLD, 1, 1.0])
def test_a_threshold_in_zero_to_one_is_accepted(tmp_path: Path, threshold: float) -> None:
    assert SemanticCache(threshold, embedder=FakeEmbedder(), directory=tmp_path).threshold == (
        threshold
    )


@pytest.mark.parametrize("max_entries", [0, -1, 1.5, True])
def test_max_entries_must_be_a_positive_int(tmp_path: Path, max_entries: object) -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        cache(tmp_path, max_entries=max_entries)


def test_the_default_threshold_is_a_strict_similarity() -> None:
    assert 0.8 <= DEFAULT_THRESHOLD < 1.0


def test_the_fake_embedder_satisfies_the_embedder_protocol() -> None:
    assert isinstance(FakeEmbedder(), Embedder)


def test_without_the_local_extra_the_default_embedder_fails_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "costguard.cache._minilm", None)
    with pytest.raises(ConfigurationError, match=r"costguard\[local\]"):
        SemanticCache(directory=tmp_path)


def test_the_default_directory_is_created_owner_only() -> None:
    semantic = SemanticCache(embedder=FakeEmbedder())
    root = semantic.directory.parent
    assert root.name == "semantic"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(semantic.directory.stat().st_mode) == 0o700


# -- hits and misses --------------------------------------------------------------------------


def test_the_same_text_hits_in_the_same_tenant_and_partition(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add(T, P, "What is the capital of France?", "key-1", expires_at=None)
    assert semantic.lookup(T, P, "what is the capital of france", now=NOW) == "key-1"


def test_a_close_text_hits_and_an_unrelated_one_misses(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=0.7)
    semantic.add(T, P, "how do I reverse a list in python", "key-1", expires_at=None)
    assert semantic.lookup(T, P, "how do I reverse a python list please", now=NOW) == "key-1"
    assert semantic.lookup(T, P, "write a poem about the sea", now=NOW) is None


def test_the_most_similar_entry_wins(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=0.5)
    semantic.add(T, P, "how to bake sourdough bread at home", "bread", expires_at=None)
    semantic.add(T, P, "how to bake sourdough bread at home quickly", "quick", expires_at=None)
    assert semantic.lookup(T, P, "how to bake sourdough bread at home quickly", now=NOW) == "quick"


def test_a_threshold_of_one_still_serves_an_identical_text(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=1.0)
    semantic.add(T, P, "exactly this question", "key-1", expires_at=None)
    assert semantic.lookup(T, P, "exactly this question", now=NOW) == "key-1"
    assert semantic.lookup(T, P, "exactly this question too", now=NOW) is None


def test_empty_and_overlong_texts_are_neither_stored_nor_embedded(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    semantic = cache(tmp_path, embedder=embedder, max_chars=50)
    semantic.add(T, P, "   ", "blank", expires_at=None)
    semantic.add(T, P, "x" * 51, "long", expires_at=None)
    assert embedder.calls == 0
    assert semantic.lookup(T, P, "x" * 51, now=NOW) is None
    assert semantic.stats()["entries"] == 0


def test_a_lookup_in_an_empty_partition_does_not_embed(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    semantic = cache(tmp_path, embedder=embedder)
    assert semantic.lookup(T, P, "anything at all", now=NOW) is None
    assert embedder.calls == 0


# -- the guard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("translate to French: where is the station", "translate to Spanish: where is the station"),
        ("what is the capital of France", "what is the capital of Germany"),
        ("what is 15% of 200 in total", "what is 20% of 200 in total"),
        ('what does "break the ice" mean exactly', 'what does "break a leg" mean exactly'),
        ("what does my_function return here", "what does my_func return here"),
        ("is python a compiled language", "is python not a compiled language"),
        ("how long does it take to run 10 km", "how long does it take to run 10 miles"),
    ],
)
def test_the_guard_turns_near_misses_into_misses(tmp_path: Path, stored: str, asked: str) -> None:
    guarded = cache(tmp_path / "on", threshold=0.3)
    unguarded = cache(tmp_path / "off", threshold=0.3, guard=False)
    for semantic in (guarded, unguarded):
        semantic.add(T, P, stored, "key-1", expires_at=None)
    assert unguarded.lookup(T, P, asked, now=NOW) == "key-1"  # the embedding alone is fooled
    assert guarded.lookup(T, P, asked, now=NOW) is None


def test_a_paraphrase_with_the_same_details_passes_the_guard(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=0.5)
    semantic.add(T, P, "What is the capital of France?", "key-1", expires_at=None)
    assert semantic.lookup(T, P, "Tell me the capital of France", now=NOW) == "key-1"


def test_the_guard_looks_past_a_conflicting_best_candidate(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=0.3)
    semantic.add(T, P, "what is the capital city of Germany", "germany", expires_at=None)
    semantic.add(T, P, "capital of France", "france", expires_at=None)
    # The Germany entry is the closer embedding, but it names another country.
    assert semantic.lookup(T, P, "what is the capital city of France", now=NOW) == "france"


# -- hard walls -------------------------------------------------------------------------------


def test_an_identical_text_in_another_tenant_never_hits(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add("tenant-a", P, "What is our refund policy?", "key-a", expires_at=None)
    assert semantic.lookup("tenant-b", P, "What is our refund policy?", now=NOW) is None
    assert semantic.lookup("tenant-a", P, "What is our refund policy?", now=NOW) == "key-a"


def test_an_identical_text_in_another_partition_never_hits(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add(T, "system-prompt-1", "Summarise this", "key-1", expires_at=None)
    assert semantic.lookup(T, "system-prompt-2", "Summarise this", now=NOW) is None


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(min_size=1, max_size=80).filter(lambda s: s.strip()),
    tenant=st.text(max_size=20),
    other=st.text(max_size=20),
)
def test_a_stored_text_is_found_by_itself_and_only_in_its_tenant(
    text: str, tenant: str, other: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        semantic = cache(Path(directory), threshold=1.0)
        semantic.add(tenant, P, text, "key", expires_at=None)
        assert semantic.lookup(tenant, P, text, now=NOW) == "key"
        if other != tenant:
            assert semantic.lookup(other, P, text, now=NOW) is None


# -- expiry, eviction, forgetting -------------------------------------------------------------


def test_an_entry_is_served_until_it_expires_and_never_after(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add(T, P, "short lived question", "key-1", expires_at=NOW + 60)
    assert semantic.lookup(T, P, "short lived question", now=NOW + 59.9) == "key-1"
    assert semantic.lookup(T, P, "short lived question", now=NOW + 60) is None
    assert cache(tmp_path).lookup(T, P, "short lived question", now=NOW + 61) is None


def test_an_expired_best_match_gives_way_to_a_live_one(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=0.5)
    semantic.add(T, P, "how do I make cold brew coffee", "old", expires_at=NOW)
    semantic.add(T, P, "how do I make cold brew coffee at home", "live", expires_at=None)
    assert semantic.lookup(T, P, "how do I make cold brew coffee", now=NOW + 1) == "live"


def test_an_already_expired_entry_is_not_stored(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add(T, P, "stale question", "key-1", expires_at=NOW - 1, now=NOW)
    assert semantic.stats()["entries"] == 0


def test_a_partition_keeps_only_its_newest_max_entries(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=1.0, max_entries=3)
    for i in range(4):
        semantic.add(T, P, f"question {i}", f"key-{i}", expires_at=None)
    assert semantic.lookup(T, P, "question 0", now=NOW) is None
    assert [semantic.lookup(T, P, f"question {i}", now=NOW) for i in (1, 2, 3)] == [
        "key-1",
        "key-2",
        "key-3",
    ]
    reopened = cache(tmp_path, threshold=1.0, max_entries=3)
    assert reopened.lookup(T, P, "question 0", now=NOW) is None
    assert reopened.lookup(T, P, "question 3", now=NOW) == "key-3"


def test_compaction_keeps_the_newest_entries_and_drops_expired_ones(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=1.0, max_entries=10)
    for i in range(400):
        expires = NOW - 1 if i == 399 else None
        semantic.add(T, P, f"question {i}", f"key-{i}", expires_at=expires, now=NOW - 2)
    semantic.add(T, P, "question 400", "key-400", expires_at=None, now=NOW)
    assert files(semantic.directory, ".npz")  # the journal was folded into a snapshot
    reopened = cache(tmp_path, threshold=1.0, max_entries=10)
    assert reopened.lookup(T, P, "question 391", now=NOW) == "key-391"
    assert reopened.lookup(T, P, "question 390", now=NOW) is None
    assert reopened.lookup(T, P, "question 399", now=NOW) is None
    assert reopened.stats()["entries"] <= 10


def test_adding_a_key_again_replaces_its_entry(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=1.0)
    semantic.add(T, P, "first wording", "key-1", expires_at=None)
    semantic.add(T, P, "second wording", "key-1", expires_at=None)
    assert semantic.lookup(T, P, "first wording", now=NOW) is None
    assert semantic.lookup(T, P, "second wording", now=NOW) == "key-1"
    assert semantic.stats()["entries"] == 1


def test_a_forgotten_entry_is_never_served_again(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add(T, P, "what is the boiling point of water", "key-1", expires_at=None)
    semantic.forget(T, P, "key-1")
    assert semantic.lookup(T, P, "what is the boiling point of water", now=NOW) is None
    assert cache(tmp_path).lookup(T, P, "what is the boiling point of water", now=NOW) is None


def test_forgetting_an_unknown_key_writes_nothing(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.forget(T, P, "never-stored")
    assert files(semantic.directory, ".log") == []


# -- persistence and processes -----------------------------------------------------------------


def test_two_instances_on_one_directory_see_each_others_writes(tmp_path: Path) -> None:
    first, second = cache(tmp_path), cache(tmp_path)
    assert first.lookup(T, P, "how tall is mount everest", now=NOW) is None
    second.add(T, P, "how tall is mount everest", "everest", expires_at=None)
    assert first.lookup(T, P, "how tall is mount everest", now=NOW) == "everest"
    first.forget(T, P, "everest")
    assert second.lookup(T, P, "how tall is mount everest", now=NOW) is None
    first.add(T, P, "how deep is the mariana trench", "trench", expires_at=None)
    assert second.lookup(T, P, "how deep is the mariana trench", now=NOW) == "trench"


def test_another_process_sees_entries_and_adds_its_own(tmp_path: Path) -> None:
    parent = cache(tmp_path)
    parent.add(T, P, "what is the speed of light", "light", expires_at=None)
    child = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from costguard.cache._embedders import FakeEmbedder
        from costguard.cache._semantic import SemanticCache
        semantic = SemanticCache(0.6, embedder=FakeEmbedder(), directory=Path(sys.argv[1]))
        found = semantic.lookup({T!r}, {P!r}, "what is the speed of light", now={NOW!r})
        semantic.add({T!r}, {P!r}, "what is the speed of sound", "sound", expires_at=None)
        print(found)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "light"
    assert parent.lookup(T, P, "what is the speed of sound", now=NOW) == "sound"


def test_files_are_owner_only_and_never_pickled(tmp_path: Path) -> None:
    semantic = cache(tmp_path, max_entries=10)
    for i in range(300):
        semantic.add(T, P, f"question {i}", f"key-{i}", expires_at=None)
    for path in [*files(semantic.directory, ".log"), *files(semantic.directory, ".npz")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [snapshot] = files(semantic.directory, ".npz")
    with np.load(snapshot, allow_pickle=False) as archive:
        assert {archive[name].dtype.kind for name in archive.files} <= {"f", "u"}


# -- damage -----------------------------------------------------------------------------------


def test_a_corrupt_journal_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    cache(tmp_path).add(T, P, "what is the speed of light", "light", expires_at=None)
    semantic = cache(tmp_path)
    [journal] = files(semantic.directory, ".log")
    data = bytearray(journal.read_bytes())
    data[40] ^= 0xFF
    journal.write_bytes(bytes(data))
    with pytest.warns(CostGuardWarning, match="corrupt"):
        assert semantic.lookup(T, P, "what is the speed of light", now=NOW) is None


def test_a_corrupt_snapshot_is_a_miss_with_a_warning_and_the_next_add_recovers(
    tmp_path: Path,
) -> None:
    semantic = cache(tmp_path, threshold=1.0, max_entries=10)
    for i in range(300):
        semantic.add(T, P, f"question {i}", f"key-{i}", expires_at=None)
    [snapshot] = files(semantic.directory, ".npz")
    snapshot.write_bytes(b"this is not a numpy archive")
    reader = cache(tmp_path, threshold=1.0, max_entries=10)
    with pytest.warns(CostGuardWarning):
        assert reader.lookup(T, P, "question 299", now=NOW) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader.add(T, P, "a fresh question", "fresh", expires_at=None)
        assert cache(tmp_path, threshold=1.0).lookup(T, P, "a fresh question", now=NOW) == "fresh"


def test_a_pickled_snapshot_is_refused_as_corrupt(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=1.0, max_entries=10)
    for i in range(300):
        semantic.add(T, P, f"question {i}", f"key-{i}", expires_at=None)
    [snapshot] = files(semantic.directory, ".npz")
    with open(snapshot, "wb") as handle:
        np.savez(
            handle,
            vectors=np.zeros((1, 256), np.float32),
            expires=np.zeros(1),
            meta=np.array([{"evil": True}], dtype=object),
        )
    with pytest.warns(CostGuardWarning):
        assert cache(tmp_path, threshold=1.0).lookup(T, P, "question 299", now=NOW) is None


def test_a_torn_last_record_is_ignored_and_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    semantic = cache(tmp_path, threshold=1.0)
    semantic.add(T, P, "kept question", "kept", expires_at=None)
    semantic.add(T, P, "torn question", "torn", expires_at=None)
    [journal] = files(semantic.directory, ".log")
    journal.write_bytes(journal.read_bytes()[:-7])  # the writer died mid-append
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = cache(tmp_path, threshold=1.0)
        assert reader.lookup(T, P, "kept question", now=NOW) == "kept"
        assert reader.lookup(T, P, "torn question", now=NOW) is None
        reader.add(T, P, "next question", "next", expires_at=None)
        assert cache(tmp_path, threshold=1.0).lookup(T, P, "next question", now=NOW) == "next"


# -- dimensions ---------------------------------------------------------------------------------


def test_an_embedder_of_another_size_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    cache(tmp_path).add(T, P, "some question", "key-1", expires_at=None)
    with pytest.raises(ConfigurationError, match=r"256.*128"):
        cache(tmp_path, embedder=FakeEmbedder(dimensions=128))


def test_an_embedder_returning_other_than_it_declares_is_refused(tmp_path: Path) -> None:
    semantic = cache(tmp_path, embedder=FixedEmbedder(width=128, declared=256))
    with pytest.raises(ConfigurationError, match=r"256.*128"):
        semantic.add(T, P, "some question", "key-1", expires_at=None)


def test_an_undeclared_size_is_checked_against_the_directory_on_first_embed(
    tmp_path: Path,
) -> None:
    first = SemanticCache(0.5, embedder=FixedEmbedder(width=64, declared=None), directory=tmp_path)
    first.add(T, P, "some question", "key-1", expires_at=None)
    second = SemanticCache(0.5, embedder=FixedEmbedder(width=32, declared=None), directory=tmp_path)
    with pytest.raises(ConfigurationError, match=r"64.*32"):
        second.lookup(T, P, "some question", now=NOW)


def test_each_embedder_keeps_its_own_vectors(tmp_path: Path) -> None:
    cache(tmp_path).add(T, P, "some question", "key-1", expires_at=None)
    other = SemanticCache(0.5, embedder=FixedEmbedder(width=256, declared=256), directory=tmp_path)
    assert other.lookup(T, P, "some question", now=NOW) is None


# -- async ----------------------------------------------------------------------------------------


def test_async_add_and_lookup_work_inside_asyncio_run(tmp_path: Path) -> None:
    semantic = cache(tmp_path)

    async def scenario() -> tuple[str | None, str | None]:
        await semantic.aadd(T, P, "what is the speed of light", "light", expires_at=None)
        hit = await semantic.alookup(T, P, "what is the speed of light", now=NOW)
        other = await semantic.alookup("tenant-b", P, "what is the speed of light", now=NOW)
        return hit, other

    assert asyncio.run(scenario()) == ("light", None)


# -- maintenance ----------------------------------------------------------------------------------


def test_clear_removes_one_tenant_or_all_and_counts_entries(tmp_path: Path) -> None:
    semantic = cache(tmp_path)
    semantic.add("a", P, "question one", "k1", expires_at=None)
    semantic.add("a", "other", "question two", "k2", expires_at=None)
    semantic.add("b", P, "question three", "k3", expires_at=None)
    assert semantic.stats() | {"bytes": 0} == {
        "entries": 3,
        "partitions": 3,
        "tenants": 2,
        "bytes": 0,
    }
    assert semantic.stats()["bytes"] > 0
    assert semantic.clear("a") == 2
    assert semantic.lookup("a", P, "question one", now=NOW) is None
    assert semantic.lookup("b", P, "question three", now=NOW) == "k3"
    assert semantic.clear() == 1
    assert semantic.stats()["entries"] == 0


def test_another_instance_stops_serving_what_clear_removed(tmp_path: Path) -> None:
    first, second = cache(tmp_path), cache(tmp_path)
    first.add(T, P, "question one", "k1", expires_at=None)
    assert second.lookup(T, P, "question one", now=NOW) == "k1"
    first.clear(T)
    assert second.lookup(T, P, "question one", now=NOW) is None


# -- embedders ------------------------------------------------------------------------------------


def test_the_fake_embedder_is_deterministic_and_normalised() -> None:
    vectors = FakeEmbedder().embed(["Hello world", "hello WORLD", "something else"])
    assert vectors.shape == (3, 256)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(vectors[0], vectors[1])
    assert np.array_equal(
        vectors, FakeEmbedder().embed(["Hello world", "hello WORLD", "something else"])
    )


def test_the_openai_embedder_returns_one_row_per_text() -> None:
    fake = FakeProvider()
    embedder = OpenAIEmbedder(fake.openai())
    vectors = embedder.embed(["first text", "second text"])
    assert vectors.shape == (2, 1536)
    assert vectors.dtype == np.float32
    assert embedder.dimensions == 1536
    [request] = fake.requests
    assert request.json["model"] == "text-embedding-3-small"
    assert request.json["encoding_format"] == "float"


def test_the_openai_embedder_asks_for_shorter_vectors_when_told() -> None:
    fake = FakeProvider()
    vectors = OpenAIEmbedder(fake.openai(), dimensions=256).embed(["a text"])
    assert vectors.shape == (1, 256)
    assert fake.requests[0].json["dimensions"] == 256


def test_the_openai_embedder_awaits_an_async_client_and_threads_a_sync_one() -> None:
    fake = FakeProvider()
    async_vectors = asyncio.run(OpenAIEmbedder(fake.async_openai()).aembed(["a", "b", "c"]))
    sync_vectors = asyncio.run(OpenAIEmbedder(fake.openai()).aembed(["a", "b", "c"]))
    assert async_vectors.shape == sync_vectors.shape == (3, 1536)
    assert np.allclose(async_vectors, sync_vectors)


def test_the_openai_embedder_refuses_sync_use_of_an_async_client() -> None:
    with pytest.raises(ConfigurationError, match="AsyncOpenAI"):
        OpenAIEmbedder(FakeProvider().async_openai()).embed(["a"])


def test_the_openai_embedder_refuses_a_non_openai_client() -> None:
    with pytest.raises(ConfigurationError, match=r"openai\.OpenAI"):
        OpenAIEmbedder(FakeProvider().anthropic())  # type: ignore[arg-type]


def test_a_semantic_cache_works_end_to_end_on_openai_embeddings(tmp_path: Path) -> None:
    semantic = SemanticCache(
        0.95, embedder=OpenAIEmbedder(FakeProvider().openai()), directory=tmp_path
    )
    semantic.add(T, P, "What is the capital of France?", "paris", expires_at=None)
    assert semantic.lookup(T, P, "what is the capital of france", now=NOW) == "paris"
    assert json.loads((semantic.directory / "index.json").read_text())["dimensions"] == 1536
    assert os.listdir(tmp_path) == [semantic.directory.name]


def test_concurrent_writers_in_two_processes_and_two_threads_lose_nothing(tmp_path: Path) -> None:
    writer = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from costguard.cache._embedders import FakeEmbedder
        from costguard.cache._semantic import SemanticCache
        semantic = SemanticCache(
            1.0, embedder=FakeEmbedder(), directory=Path(sys.argv[1]), max_entries=10_000
        )
        for i in range(300):
            semantic.add({T!r}, {P!r}, f"child question {{i}}", f"child-{{i}}", expires_at=None)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path)])
    semantic = cache(tmp_path, threshold=1.0, max_entries=10_000)

    def add(prefix: str) -> None:
        for i in range(300):
            semantic.add(T, P, f"{prefix} question {i}", f"{prefix}-{i}", expires_at=None)

    threads = [threading.Thread(target=add, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert child.wait(timeout=120) == 0
    reader = cache(tmp_path, threshold=1.0, max_entries=10_000)
    assert reader.stats()["entries"] == 900
    for prefix in ("left", "right", "child"):
        assert reader.lookup(T, P, f"{prefix} question 299", now=NOW) == f"{prefix}-299"
        assert reader.lookup(T, P, f"{prefix} question 0", now=NOW) == f"{prefix}-0"


def test_a_failing_disk_write_warns_instead_of_failing_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    semantic = cache(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(semantic._index, "add", refuse)
    with pytest.warns(CostGuardWarning, match="read-only"):
        semantic.add(T, P, "a question", "key-1", expires_at=None)
