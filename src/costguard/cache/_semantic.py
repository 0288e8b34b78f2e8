"""The semantic cache: find a stored prompt close enough to a new one, and refuse near-misses.

It stores no answers: it maps (tenant, partition, prompt text) to the *entry key* of an answer
held by the exact cache. The cache layer computes the partition (a hash of everything but the
last user turn), looks the exact key up first, and asks this cache only on an exact miss.
See docs/semantic-cache.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigurationError, CostGuardWarning
from .._paths import default_cache_dir
from ._embedders import Embedder, embedder_name
from ._guard import conflicts
from ._index import PartitionIndex, make_private_dir, search

__all__ = ["DEFAULT_THRESHOLD", "SemanticCache"]

# Cosine similarity. Chosen by scripts/eval_semantic.py on benchmarks/data/semantic_pairs.jsonl
# with all-MiniLM-L6-v2 and the guard on: the most permissive threshold with >= 99% precision.
DEFAULT_THRESHOLD = 0.88

_TOP_CANDIDATES = 5  # how many candidates above the threshold the guard may look at


def _default_embedder() -> Embedder:
    try:
        from ._minilm import MiniLMEmbedder
    except ImportError as exc:  # numpy is there (we are running); the module itself is not
        raise ConfigurationError(
            "SemanticCache() needs an embedder: install the local one with "
            "pip install 'costguard[local]', or pass embedder=OpenAIEmbedder(client)"
        ) from exc
    return MiniLMEmbedder()


def _warn_unwritable(exc: OSError) -> None:
    warnings.warn(
        f"costguard could not write to the semantic cache: {exc}", CostGuardWarning, stacklevel=4
    )


def _slug(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "embedder"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _check_time(name: str, value: object, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TypeError(f"{name} must be unix seconds as a number, got {value!r}")
    return float(value)


class SemanticCache:
    """Similar-prompt lookup for the cache layer, with a guard against near-misses.

    ``threshold`` is a **cosine similarity** between the embeddings of two prompts, in
    ``(0, 1]``: a stored prompt is a candidate only if its similarity to the new one is at
    least ``threshold``. **Higher is stricter**; ``1.0`` serves only prompts whose embeddings
    are identical. It is not a distance. The default, :data:`DEFAULT_THRESHOLD`, is the most
    permissive value that kept precision at or above 99% (with the guard) on costguard's
    labelled evaluation set with all-MiniLM-L6-v2; see docs/semantic-cache.md before changing
    it or the embedder.

    Hard walls: ``tenant`` and ``partition`` are never embedded or compared, they select the
    only entries a lookup may see. An identical text in another tenant or partition never hits.

    ``guard`` (on by default) rejects a candidate whose text differs in a detail embeddings
    blur (numbers, units, quoted text, code identifiers, names, target language, negation,
    opposites: see ``costguard.cache._guard.conflicts``); the best five candidates above the
    threshold are tried, best first.

    ``embedder`` defaults to the local all-MiniLM-L6-v2 (the ``[local]`` extra); without it
    construction raises :class:`~costguard.ConfigurationError`. Each embedder keeps its own
    sub-directory of ``directory`` (default ``<costguard cache dir>/semantic``, created
    owner-only): vectors from different models are never compared, and the directory records
    its vectors' dimension, so an embedder of another size fails loudly instead of matching
    garbage.

    ``max_entries`` bounds each partition (oldest dropped first). Texts that are empty or
    longer than ``max_chars`` characters are neither looked up nor stored: an embedder reads a
    bounded prefix (all-MiniLM-L6-v2: 256 tokens, roughly 1,000 characters of English), and two
    long prompts that differ only past it would embed identically.

    Methods never read the clock: ``now`` (unix seconds) is passed in, so tests and the layer
    share one clock.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        embedder: Embedder | None = None,
        directory: str | os.PathLike[str] | None = None,
        max_entries: int = 100_000,
        guard: bool = True,
        max_chars: int = 1000,
    ) -> None:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not (0.0 < threshold <= 1.0)  # also rejects NaN
        ):
            raise ConfigurationError(
                f"threshold is a cosine similarity in (0, 1] (higher = stricter), got {threshold!r}"
            )
        for name, value in (("max_entries", max_entries), ("max_chars", max_chars)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        self.threshold = float(threshold)
        self.guard = bool(guard)
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.embedder: Embedder = embedder if embedder is not None else _default_embedder()
        for method in ("embed", "aembed"):
            if not callable(getattr(self.embedder, method, None)):
                raise ConfigurationError(
                    f"embedder {self.embedder!r} has no {method}() method (see costguard.Embedder)"
                )
        self._name = embedder_name(self.embedder)
        base = Path(directory) if directory is not None else default_cache_dir() / "semantic"
        self.directory = base / _slug(self._name)
        try:
            make_private_dir(base)
            make_private_dir(self.directory)
        except OSError as exc:
            raise ConfigurationError(f"cannot create the semantic cache at {base}: {exc}") from exc
        self._index = PartitionIndex(self.directory, max_entries=max_entries)
        self._dimensions: int | None = None  # as recorded in index.json, once read or written
        self._dim_lock = threading.Lock()
        declared = getattr(self.embedder, "dimensions", None)
        stored = self._read_dimensions()
        if isinstance(declared, int) and stored is not None and declared != stored:
            raise self._dimension_error(stored, declared)

    def __repr__(self) -> str:
        return (
            f"SemanticCache(threshold={self.threshold}, embedder={self.embedder!r}, "
            f"directory={str(self.directory)!r}, max_entries={self.max_entries}, "
            f"guard={self.guard})"
        )

    # -- dimensions and vectors (one path for sync and async) ---------------------------------

    def _dimension_error(self, stored: int, got: int) -> ConfigurationError:
        return ConfigurationError(
            f"the semantic cache at {self.directory} holds {stored}-dimensional vectors, but "
            f"embedder {self._name!r} gives {got}-dimensional ones; use another directory, "
            "or clear() this one and delete its index.json"
        )

    def _read_dimensions(self) -> int | None:
        if self._dimensions is not None:
            return self._dimensions
        path = self.directory / "index.json"
        try:
            data = json.loads(path.read_text("utf-8"))
            value = data["dimensions"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"unreadable semantic cache metadata {path}: {exc}") from exc
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"bad dimensions in {path}: {value!r}")
        self._dimensions = value
        return value

    def _record_dimensions(self, dim: int) -> int:
        """The directory's dimension, recording ``dim`` if it has none yet (atomically)."""
        with self._dim_lock:
            stored = self._read_dimensions()
            if stored is not None:
                return stored
            path = self.directory / "index.json"
            temporary = path.with_name(f"index.json.{os.getpid()}.{threading.get_ident()}.tmp")
            body = {"version": 1, "dimensions": dim, "embedder": self._name}
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle)
            try:
                os.link(temporary, path)  # fails if another process recorded one first
            except FileExistsError:
                pass
            finally:
                os.unlink(temporary)
            recorded = self._read_dimensions()
            assert recorded is not None
            return recorded

    def _unit_vector(self, raw: object, *, recording: bool) -> NDArray[np.float32]:
        """The embedder's output for one text as a float32 unit vector, checked."""
        array = np.asarray(raw, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != 1 or array.shape[1] < 1:
            raise ConfigurationError(
                f"embedder {self._name!r} returned shape {array.shape} for one text; "
                "expected (1, dimensions)"
            )
        dim = int(array.shape[1])
        declared = getattr(self.embedder, "dimensions", None)
        if isinstance(declared, int) and declared != dim:
            raise ConfigurationError(
                f"embedder {self._name!r} declares {declared} dimensions but returned {dim}"
            )
        stored = self._record_dimensions(dim) if recording else self._read_dimensions()
        if stored is not None and stored != dim:
            raise self._dimension_error(stored, dim)
        vector: NDArray[np.float32] = np.array(array[0], dtype=np.float32)
        if not np.all(np.isfinite(vector)):
            raise ConfigurationError(f"embedder {self._name!r} returned NaN or infinite values")
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vector /= np.float32(norm)
        return vector

    # -- shared decisions ----------------------------------------------------------------------

    def _eligible(self, tenant: object, partition: object, text: object) -> bool:
        _check_str("tenant", tenant)
        _check_str("partition", partition)
        checked = _check_str("text", text)
        return bool(checked.strip()) and len(checked) <= self.max_chars

    def _accept(self, text: str) -> Callable[[str], bool] | None:
        if not self.guard:
            return None
        return lambda stored: conflicts(text, stored) is None

    def _search(
        self, tenant: str, partition: str, text: str, raw: object, now: float
    ) -> str | None:
        vector = self._unit_vector(raw, recording=False)
        view = self._index.view(tenant, partition)
        if view is None:
            return None
        if view.vectors.shape[1] != vector.shape[0]:
            return None  # a partition written with other vectors: unreachable via index.json
        return search(
            view,
            vector,
            threshold=self.threshold,
            now=now,
            accept=self._accept(text),
            top=_TOP_CANDIDATES,
        )

    def _has_entries(self, tenant: str, partition: str) -> bool:
        return self._index.view(tenant, partition) is not None

    def _store(
        self,
        tenant: str,
        partition: str,
        text: str,
        entry_key: str,
        raw: object,
        expires_at: float | None,
        now: float | None,
    ) -> None:
        vector = self._unit_vector(raw, recording=True)
        try:
            self._index.add(tenant, partition, vector, entry_key, text, expires_at, now)
        except OSError as exc:
            _warn_unwritable(exc)

    def _prepare_add(
        self,
        tenant: object,
        partition: object,
        text: object,
        entry_key: object,
        expires_at: object,
        now: object,
    ) -> tuple[float | None, float | None] | None:
        """Validated (expires_at, now), or None when nothing should be stored."""
        eligible = self._eligible(tenant, partition, text)
        _check_str("entry_key", entry_key)
        expires = _check_time("expires_at", expires_at, optional=True)
        at = _check_time("now", now, optional=True)
        if not eligible:
            return None
        if expires is not None and at is not None and expires <= at:
            return None  # already expired
        return expires, at

    # -- public API ----------------------------------------------------------------------------

    def lookup(self, tenant: str, partition: str, text: str, *, now: float) -> str | None:
        """The entry key of the closest stored prompt in this tenant and partition, or None.

        A stored prompt qualifies if its cosine similarity to ``text`` is at least the
        threshold, it has not expired at ``now`` (unix seconds; served while ``now <
        expires_at``) and the guard finds no conflicting detail. Embeds ``text`` only if the
        partition holds entries.
        """
        at = _check_time("now", now, optional=False)
        assert at is not None
        if not self._eligible(tenant, partition, text) or not self._has_entries(tenant, partition):
            return None
        return self._search(tenant, partition, text, self.embedder.embed([text]), at)

    async def alookup(self, tenant: str, partition: str, text: str, *, now: float) -> str | None:
        """:meth:`lookup` for async code: embeds with ``aembed``; files and math off the loop."""
        at = _check_time("now", now, optional=False)
        assert at is not None
        if not self._eligible(tenant, partition, text):
            return None
        if not await asyncio.to_thread(self._has_entries, tenant, partition):
            return None
        raw = await self.embedder.aembed([text])
        return await asyncio.to_thread(self._search, tenant, partition, text, raw, at)

    def add(
        self,
        tenant: str,
        partition: str,
        text: str,
        entry_key: str,
        *,
        expires_at: float | None,
        now: float | None = None,
    ) -> None:
        """Remember that ``text`` (in this tenant and partition) is answered by ``entry_key``.

        ``expires_at`` (unix seconds, or None for never) should match the exact entry's TTL.
        Pass ``now`` to let this write also drop expired entries when it compacts the
        partition (without it, expired entries are still never served). Adding a key again
        replaces its earlier entry. Empty and over-long texts are ignored.
        """
        prepared = self._prepare_add(tenant, partition, text, entry_key, expires_at, now)
        if prepared is None:
            return
        raw = self.embedder.embed([text])
        self._store(tenant, partition, text, entry_key, raw, *prepared)

    async def aadd(
        self,
        tenant: str,
        partition: str,
        text: str,
        entry_key: str,
        *,
        expires_at: float | None,
        now: float | None = None,
    ) -> None:
        """:meth:`add` for async code: embeds with ``aembed``; file I/O off the loop."""
        prepared = self._prepare_add(tenant, partition, text, entry_key, expires_at, now)
        if prepared is None:
            return
        raw = await self.embedder.aembed([text])
        await asyncio.to_thread(self._store, tenant, partition, text, entry_key, raw, *prepared)

    def forget(self, tenant: str, partition: str, entry_key: str) -> None:
        """Stop serving ``entry_key`` in this partition (its exact entry is gone)."""
        _check_str("tenant", tenant)
        _check_str("partition", partition)
        _check_str("entry_key", entry_key)
        try:
            self._index.forget(tenant, partition, entry_key)
        except OSError as exc:
            _warn_unwritable(exc)

    def clear(self, tenant: str | None = None) -> int:
        """Delete one tenant's entries (every tenant's if None); returns how many were held."""
        if tenant is not None:
            _check_str("tenant", tenant)
        return self._index.clear(tenant)

    def stats(self) -> dict[str, int]:
        """``entries`` (live, expired ones included until pruned), ``partitions``, ``tenants``
        and ``bytes`` on disk, for this embedder's directory."""
        return self._index.stats()
