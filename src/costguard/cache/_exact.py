"""The exact cache: answers stored on disk as JSON bytes, found again by their request's key.

Storage is a :mod:`diskcache` cache with ``JSONBytesDisk`` (:func:`json_bytes_disk`), a disk
that stores bytes and only bytes. diskcache's default disk pickles, and unpickles any row
marked "pickle" on read even behind a JSON disk (CVE-2025-69872); this disk refuses to write
such rows and treats reading one (or any row it cannot decode) as a miss with a
:class:`~costguard.CostGuardWarning`. Nothing is ever unpickled.

A cache failure never fails a call: an unwritable or full directory, a corrupt row, a locked
database all become a warning and a miss, and the call goes to the provider.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import secrets
import sqlite3
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError, CostGuardWarning
from .._paths import default_cache_dir

__all__ = ["ExactCache", "json_bytes_disk"]

Entry = dict[str, Any]

_MEMO_ENTRIES = 1024


class _Refused(Exception):
    """A stored row costguard will not decode (pickled, text, or not ours)."""


@functools.cache
def json_bytes_disk() -> type:
    """``JSONBytesDisk``: a diskcache disk for ``str`` keys and ``bytes`` values only, so
    nothing is ever pickled. Built on first use: importing diskcache takes ~30 ms."""
    import diskcache

    raw_modes = (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY)

    class JSONBytesDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no types
        def put(self, key: Any) -> tuple[Any, bool]:
            if type(key) is not str:
                raise TypeError(f"cache keys are str, not {type(key).__name__}")
            return key, True

        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                raise _Refused("a pickled key")
            return key

        def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
            if type(value) is not bytes:
                raise TypeError(f"cache values are bytes, not {type(value).__name__}")
            return super().store(value, read, key=key)

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            if mode not in raw_modes or read:
                raise _Refused(f"a row stored in mode {mode}")
            return super().fetch(mode, filename, value, read)

    return JSONBytesDisk


class ExactCache:
    """Exact-match response cache on local disk.

    :param directory: where to keep it (default: ``exact`` in costguard's cache directory,
        ``$COSTGUARD_HOME/cache`` or the platform's user cache dir); created owner-only.
    :param ttl: seconds an entry may be served (default: no expiry); ``scope(ttl=...)``
        overrides it per call.
    :param size_limit: bytes on disk before the least recently stored entries are evicted.
    :param share_across_keys: partition by the scope's tenant only, so that clients with
        different API keys and no tenant share entries. Default: never share across keys.
    :param clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        ttl: float | None = None,
        size_limit: int = 1 << 30,
        share_across_keys: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = check_ttl(ttl)
        if isinstance(size_limit, bool) or not isinstance(size_limit, int) or size_limit <= 0:
            raise ConfigurationError(
                f"size_limit must be a positive number of bytes, got {size_limit!r}"
            )
        self.size_limit = size_limit
        self.share_across_keys = share_across_keys
        self._directory = Path(directory) if directory is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._store: Any = None  # a diskcache.Cache once opened
        self._key_secret: bytes | None = None
        self._probe: sqlite3.Connection | None = None
        self._memo: OrderedDict[str, Entry] = OrderedDict()
        self._memo_version: int | None = None
        self._memo_lock = threading.Lock()
        self._broken = False

    @property
    def directory(self) -> Path:
        if self._directory is None:
            self._directory = default_cache_dir() / "exact"
        return self._directory

    def _open(self) -> Any:
        if self._store is not None or self._broken:
            return self._store
        with self._lock:
            if self._store is None and not self._broken:
                try:
                    self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                    import diskcache

                    self._store = diskcache.Cache(
                        str(self.directory),
                        disk=json_bytes_disk(),
                        size_limit=self.size_limit,
                        eviction_policy="least-recently-stored",  # reads never write
                        tag_index=True,
                    )
                    self._probe = sqlite3.connect(
                        self.directory / "cache.db",
                        timeout=0,
                        isolation_level=None,
                        check_same_thread=False,  # used under self._memo_lock
                    )
                except (OSError, sqlite3.Error) as exc:
                    self._broken = True
                    _warn(
                        f"costguard's cache at {self.directory} is unusable, caching is off: {exc}"
                    )
        return self._store

    # -- the event loop's fast path -------------------------------------------------------
    #
    # An async lookup must not block the event loop on disk I/O, so it reads in a worker
    # thread; waking one costs ~60-150 us. Entries this process has already read are kept in a
    # small memo, trusted only while SQLite's `PRAGMA data_version` is unchanged: that value
    # lives in the WAL's shared memory and moves whenever any other connection (another
    # process, a worker thread writing, `costguard cache clear`) commits. The probe connection
    # never waits for a lock (busy timeout 0): if it cannot answer at once, the memo is unused.

    def version(self) -> int | None:
        """The store's change counter as this process's probe sees it (None: unknown)."""
        probe = self._probe
        if probe is None:
            return None
        try:
            with self._memo_lock:
                return int(probe.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    def recall(self, key: str) -> Entry | None:
        """A memoised entry, if nothing changed in the store since it was read."""
        version = self.version()
        if version is None:
            return None
        with self._memo_lock:
            if version != self._memo_version:
                self._memo.clear()
                self._memo_version = version
                return None
            entry = self._memo.get(key)
        if entry is None:
            return None
        expires = entry.get("expires")
        return None if expires is not None and expires <= self._clock() else entry

    def remember(self, key: str, entry: Entry, seen: int | None) -> None:
        """Memoise ``entry``, read while the store was at version ``seen``."""
        if seen is None or self.version() != seen:
            return
        with self._memo_lock:
            if self._memo_version != seen:
                self._memo.clear()
                self._memo_version = seen
            self._memo[key] = entry
            self._memo.move_to_end(key)
            while len(self._memo) > _MEMO_ENTRIES:
                self._memo.popitem(last=False)

    def partition_for_key(self, api_key: str) -> str | None:
        """The partition of a client with ``api_key`` and no tenant: ``k:`` and a keyed hash
        (HMAC-SHA256 with a random secret kept owner-only in the cache directory, so every
        process using this cache agrees, and the key itself is never stored)."""
        secret = self._secret()
        if secret is None:
            return None
        return "k:" + hmac.new(secret, api_key.encode(), hashlib.sha256).hexdigest()[:24]

    def _secret(self) -> bytes | None:
        if self._key_secret is None and self._open() is not None:
            path = self.directory / "partition.secret"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            except OSError:
                return None
            else:
                with os.fdopen(fd, "w") as file:
                    file.write(secrets.token_hex(32))
            try:
                text = path.read_text().strip()
                self._key_secret = bytes.fromhex(text) if len(text) == 64 else None
            except (OSError, ValueError):
                return None
        return self._key_secret

    def get(self, key: str) -> Entry | None:
        """The live entry under ``key``, or None (missing, expired, or unreadable)."""
        store = self._open()
        if store is None:
            return None
        try:
            raw = store.get(key)
        except _Refused as exc:
            _warn(f"costguard ignored a cache row it will not decode ({exc}); removing it")
            self._discard(store, key)
            return None
        except (OSError, sqlite3.Error) as exc:
            _warn(f"costguard could not read its cache: {exc}")
            return None
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            expires = entry.get("expires")
        except (ValueError, AttributeError):
            _warn("costguard ignored a cache row that is not its JSON; removing it")
            self._discard(store, key)
            return None
        if expires is not None and expires <= self._clock():
            return None
        return entry  # type: ignore[no-any-return]

    def set(self, key: str, entry: Mapping[str, Any], *, tag: str, ttl: float | None) -> None:
        """Store ``entry`` (JSON data) under ``key``; failures become a warning."""
        store = self._open()
        if store is None:
            return
        now = self._clock()
        document = {**entry, "stored": now, "expires": None if ttl is None else now + ttl}
        try:
            store.set(
                key, json.dumps(document, separators=(",", ":")).encode(), expire=ttl, tag=tag
            )
        except (OSError, sqlite3.Error) as exc:
            _warn(f"costguard could not write its cache (is the disk full?): {exc}")

    def clear(self, tag: str | None = None) -> int:
        """Remove every entry, or only those of one partition tag; returns how many."""
        store = self._open()
        if store is None:
            return 0
        return int(store.clear() if tag is None else store.evict(tag))

    def stats(self) -> dict[str, Any]:
        store = self._open()
        if store is None:
            return {"directory": str(self.directory), "entries": 0, "bytes": 0, "usable": False}
        return {
            "directory": str(self.directory),
            "entries": len(store),
            "bytes": int(store.volume()),
            "size_limit": self.size_limit,
            "usable": True,
        }

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
        if self._store is not None:
            self._store.close()

    @staticmethod
    def _discard(store: Any, key: str) -> None:
        with contextlib.suppress(Exception):  # best effort: the row stays a miss either way
            store.delete(key)

    def __repr__(self) -> str:
        return f"ExactCache({str(self._directory or 'default')!r}, ttl={self.ttl})"


def check_ttl(ttl: float | None, name: str = "ttl") -> float | None:
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


def _warn(message: str) -> None:
    warnings.warn(message, CostGuardWarning, stacklevel=3)
