"""Embedders: turn prompt texts into vectors for the semantic cache.

An embedder is any object with ``dimensions``, ``embed`` and ``aembed`` (see :class:`Embedder`).
Three ship with costguard:

- ``MiniLMEmbedder`` (``costguard.cache._minilm``, the ``[local]`` extra): all-MiniLM-L6-v2
  on numpy, offline, 384 dimensions; the default of :class:`~costguard.SemanticCache`.
- :class:`OpenAIEmbedder`: OpenAI's embeddings endpoint through a client you pass.
- :class:`FakeEmbedder`: hashed words, deterministic, for tests only.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigurationError

if TYPE_CHECKING:
    import openai

__all__ = ["Embedder", "FakeEmbedder", "OpenAIEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """What the semantic cache needs from an embedding model.

    - ``dimensions``: the length of every vector this embedder returns, or ``None`` if it is
      only known after the first call. The semantic cache checks every batch against it, and
      against the dimension its directory was created with, and raises
      :class:`~costguard.ConfigurationError` naming both on a mismatch.
    - ``embed(texts)``: one row per text, in order: an array of shape ``(len(texts), d)``
      (anything ``numpy.asarray`` turns into that shape is accepted). Rows need not be
      normalised; the cache normalises them and compares by cosine similarity. Must not
      return NaN or infinities. Called with at least one text.
    - ``aembed(texts)``: the same, awaitable; must not block the event loop (run blocking work
      in a thread, e.g. with ``asyncio.to_thread``).

    Optionally, a ``name`` string attribute identifies the model (e.g.
    ``"openai-text-embedding-3-small"``). The cache keeps each embedder's vectors in their own
    sub-directory, because vectors from different models are not comparable; without a
    ``name`` the class's qualified name is used.
    """

    @property
    def dimensions(self) -> int | None: ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...

    async def aembed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


def embedder_name(embedder: object) -> str:
    """The embedder's ``name``, else its class's qualified name."""
    name = getattr(embedder, "name", None)
    if isinstance(name, str) and name:
        return name
    cls = type(embedder)
    return f"{cls.__module__}.{cls.__qualname__}"


_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """A deterministic stand-in embedder for tests: useless for real similarity.

    Each lowercased word adds +1 or -1 at a few hashed positions, and the sum is normalised,
    so the cosine similarity of two texts is roughly the share of words they have in common:
    word order, synonyms and meaning are ignored. ``"capital of France"`` and ``"France capital
    of"`` embed identically. Use it to exercise the cache's plumbing, never to choose a
    threshold.
    """

    name = "fake"

    def __init__(self, dimensions: int = 256) -> None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ConfigurationError(
                f"FakeEmbedder dimensions must be a positive int, got {dimensions!r}"
            )
        self._dimensions = dimensions
        self.calls = 0  # how many times embed/aembed ran, for tests that count them

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _vector(self, text: str) -> NDArray[np.float32]:
        vector = np.zeros(self._dimensions, dtype=np.float32)
        for word in _WORD.findall(text.lower()) or [""]:
            digest = hashlib.blake2b(word.encode(), digest_size=16).digest()
            for k in range(3):
                chunk = int.from_bytes(digest[4 * k : 4 * k + 4], "little")
                vector[chunk % self._dimensions] += 1.0 if chunk >> 31 else -1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), self._dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._vector(text)
        return out

    async def aembed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)  # pure and fast: no need to leave the loop

    def __repr__(self) -> str:
        return f"FakeEmbedder(dimensions={self._dimensions})"


_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_OPENAI_BATCH = 2048  # the endpoint's limit on inputs per request


class OpenAIEmbedder:
    """Embeddings from OpenAI's ``/embeddings`` endpoint, through a client you pass.

    ``client`` is an ``openai.OpenAI`` or an ``openai.AsyncOpenAI`` (or the Azure twins).
    With a sync client, :meth:`embed` calls it directly and :meth:`aembed` runs it in a
    thread; with an async client only :meth:`aembed` works (use the semantic cache's
    ``alookup`` / ``aadd``), and :meth:`embed` raises :class:`~costguard.ConfigurationError`.

    Pass a client wrapped by a :class:`~costguard.CostGuardClient` and every embedding call
    is priced and recorded in its ledger like any other call (and counts against budgets).

    ``dimensions`` asks the ``text-embedding-3-*`` models for shorter vectors; ``None`` takes
    the model's native size.
    """

    def __init__(
        self,
        client: openai.OpenAI | openai.AsyncOpenAI,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
    ) -> None:
        import openai

        if not isinstance(client, openai.OpenAI | openai.AsyncOpenAI):
            raise ConfigurationError(
                f"OpenAIEmbedder needs an openai.OpenAI or openai.AsyncOpenAI client, "
                f"got {type(client).__name__}"
            )
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise ConfigurationError(
                f"dimensions must be a positive int or None, got {dimensions!r}"
            )
        self._sync_client = client if isinstance(client, openai.OpenAI) else None
        self._async_client = client if isinstance(client, openai.AsyncOpenAI) else None
        self.model = model
        self._requested = dimensions
        self._dimensions = dimensions or _OPENAI_DIMENSIONS.get(model)
        self.name = f"openai-{model}"

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    def _kwargs(self, batch: Sequence[str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "input": list(batch),
            "encoding_format": "float",
        }
        if self._requested is not None:
            kwargs["dimensions"] = self._requested
        return kwargs

    def _rows(self, response: Any, expected: int) -> list[list[float]]:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != expected:
            raise ConfigurationError(
                f"the embeddings endpoint returned {len(data)} vectors for {expected} inputs"
            )
        return [list(item.embedding) for item in data]

    def _finish(self, rows: list[list[float]]) -> NDArray[np.float32]:
        if not rows:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        out = np.asarray(rows, dtype=np.float32)
        if self._dimensions is None:
            self._dimensions = int(out.shape[1])
        return out

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        client = self._sync_client
        if client is None:
            raise ConfigurationError(
                "OpenAIEmbedder got an AsyncOpenAI client: embed() cannot call it; use the "
                "semantic cache's alookup()/aadd(), or give the embedder an openai.OpenAI client"
            )
        rows: list[list[float]] = []
        for start in range(0, len(texts), _OPENAI_BATCH):
            batch = texts[start : start + _OPENAI_BATCH]
            response = client.embeddings.create(**self._kwargs(batch))
            rows.extend(self._rows(response, len(batch)))
        return self._finish(rows)

    async def aembed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        client = self._async_client
        if client is None:
            return await asyncio.to_thread(self.embed, texts)
        rows: list[list[float]] = []
        for start in range(0, len(texts), _OPENAI_BATCH):
            batch = texts[start : start + _OPENAI_BATCH]
            response = await client.embeddings.create(**self._kwargs(batch))
            rows.extend(self._rows(response, len(batch)))
        return self._finish(rows)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, dimensions={self._requested!r})"
