"""The semantic cache's vector index: unit vectors per (tenant, partition), on disk and in memory.

Layout under the embedder's directory::

    <root>/index.json                      {"version": 1, "dimensions": d, "embedder": name}
    <root>/<sha(tenant)>/<sha(partition)>.log   append-only journal (every partition has one)
    <root>/<sha(tenant)>/<sha(partition)>.npz   snapshot, written when the journal is compacted

The journal starts with a 24-byte header (magic, generation, dimensions) followed by records
``b"CGR1" | u32 payload length | u32 crc32 | payload``; a payload is ``u32 json length | JSON |
float32 vector``. The JSON is ``{"k": entry key, "t": text, "e": expires_at or null}`` for an
add and ``{"f": entry key}`` for a forget. The snapshot is an uncompressed ``.npz`` of plain
arrays (``vectors`` float32 (n, d), ``expires`` float64 (n,), ``meta`` UTF-8 JSON bytes), read
with ``allow_pickle=False``. Nothing is ever pickled.

Concurrency: the journal file doubles as the partition's lock (``fcntl.flock``): writers hold
it exclusively, readers take it shared only when the files changed since they last looked
(``stat`` says so). Adds append one record; compaction writes a new snapshot to a temporary
file, ``os.replace``-s it in and then truncates the journal, bumping the generation so a
reader never mixes the two. A crash leaves at worst a torn last record (ignored, and cut off
by the next writer) or a journal older than its snapshot (ignored). Anything else unreadable
is a miss with a :class:`~costguard.CostGuardWarning`, never an exception.

Eviction keeps the newest ``max_entries`` entries per partition (replaying the journal gives
every process the same answer); expired and forgotten entries are never served and are dropped
when the journal is compacted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import threading
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from .._errors import CostGuardWarning

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-process use only
    fcntl = None  # type: ignore[assignment]  # checked before every use

__all__ = ["PartitionIndex", "Rows", "RowsView", "make_private_dir", "search"]

_LOG_HEADER = struct.Struct("<8sQI4x")
_LOG_MAGIC = b"CGSEMLOG"
_RECORD_HEADER = struct.Struct("<4sII")
_RECORD_MAGIC = b"CGR1"
_U32 = struct.Struct("<I")
_SNAPSHOT_VERSION = 1

# Compaction: fold the journal into the snapshot when it holds at least this many records and
# as many as the snapshot, or when dead rows (evicted, forgotten, expired) pass this floor and
# a quarter of the live ones.
_COMPACT_MIN_RECORDS = 1024
_COMPACT_MIN_GARBAGE = 256

_TOLERANCE = 1e-6  # float32 rounding: an identical text must meet threshold 1.0


class CorruptIndex(Exception):
    """A partition's files cannot be read (internal: becomes a warning and a miss)."""


# -- rows in memory ----------------------------------------------------------------------


class Rows:
    """One partition in memory: rows in insertion order, the live ones in ``[head, n)``.

    Rows are only appended or marked dead, never moved, so a search can work on arrays it
    took earlier while a writer appends (growing the arrays allocates new ones).
    """

    __slots__ = (
        "alive",
        "by_key",
        "dim",
        "expires",
        "head",
        "keys",
        "live",
        "n",
        "texts",
        "vectors",
    )

    def __init__(self, dim: int, capacity: int = 8) -> None:
        self.dim = dim
        capacity = max(capacity, 1)
        self.vectors: NDArray[np.float32] = np.zeros((capacity, dim), dtype=np.float32)
        self.expires: NDArray[np.float64] = np.zeros(capacity, dtype=np.float64)
        self.alive: NDArray[np.bool_] = np.zeros(capacity, dtype=np.bool_)
        self.keys: list[str] = []
        self.texts: list[str] = []
        self.by_key: dict[str, int] = {}
        self.n = 0
        self.head = 0
        self.live = 0

    @classmethod
    def from_arrays(
        cls,
        vectors: NDArray[np.float32],
        expires: NDArray[np.float64],
        keys: list[str],
        texts: list[str],
        max_entries: int,
    ) -> Rows:
        """Rows holding these entries (oldest first); the newest ``max_entries`` stay live.

        Takes ``vectors`` and ``expires`` over (without copying, when they are contiguous
        float32 / float64): the caller must not change them afterwards.
        """
        count, dim = vectors.shape
        rows = cls(dim, capacity=1)
        rows.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows.expires = np.ascontiguousarray(expires, dtype=np.float64)
        rows.alive = np.ones(count, dtype=np.bool_)
        rows.keys = list(keys)
        rows.texts = list(texts)
        rows.n = rows.live = count
        for row, key in enumerate(keys):
            previous = rows.by_key.get(key)
            if previous is not None:
                rows._kill(previous)
            rows.by_key[key] = row
        rows._evict(max_entries)
        return rows

    def _kill(self, row: int) -> None:
        if self.alive[row]:
            self.alive[row] = False
            self.live -= 1

    def _evict(self, max_entries: int) -> None:
        while self.live > max_entries:
            while not self.alive[self.head]:
                self.head += 1
            self._kill(self.head)
            key = self.keys[self.head]
            if self.by_key.get(key) == self.head:
                del self.by_key[key]
            self.head += 1
        while self.head < self.n and not self.alive[self.head]:
            self.head += 1

    def append(
        self, vector: NDArray[np.float32], key: str, text: str, expires: float, max_entries: int
    ) -> None:
        if self.n == len(self.vectors):
            self._grow()
        previous = self.by_key.get(key)
        if previous is not None:
            self._kill(previous)  # the newest entry for a key replaces the older one
        row = self.n
        self.vectors[row] = vector
        self.expires[row] = expires
        self.alive[row] = True
        self.keys.append(key)
        self.texts.append(text)
        self.by_key[key] = row
        self.n += 1
        self.live += 1
        self._evict(max_entries)

    def forget(self, key: str) -> bool:
        row = self.by_key.pop(key, None)
        if row is None:
            return False
        self._kill(row)
        while self.head < self.n and not self.alive[self.head]:
            self.head += 1
        return True

    def _grow(self) -> None:
        garbage = self.n - self.live
        if garbage > max(_COMPACT_MIN_GARBAGE, self.live // 4):
            self._repack(len(self.vectors))
            if self.n < len(self.vectors):
                return
        capacity = max(8, 2 * len(self.vectors))
        vectors = np.zeros((capacity, self.dim), dtype=np.float32)
        vectors[: self.n] = self.vectors[: self.n]
        expires = np.zeros(capacity, dtype=np.float64)
        expires[: self.n] = self.expires[: self.n]
        alive = np.zeros(capacity, dtype=np.bool_)
        alive[: self.n] = self.alive[: self.n]
        self.vectors, self.expires, self.alive = vectors, expires, alive

    def _repack(self, capacity: int) -> None:
        """Drop dead rows, into new arrays (searches holding the old ones are unaffected)."""
        keep = np.flatnonzero(self.alive[: self.n])
        vectors = np.zeros((max(capacity, len(keep) + 1), self.dim), dtype=np.float32)
        vectors[: len(keep)] = self.vectors[keep]
        expires = np.zeros(len(vectors), dtype=np.float64)
        expires[: len(keep)] = self.expires[keep]
        alive = np.zeros(len(vectors), dtype=np.bool_)
        alive[: len(keep)] = True
        self.keys = [self.keys[i] for i in keep]
        self.texts = [self.texts[i] for i in keep]
        self.by_key = {key: row for row, key in enumerate(self.keys)}
        self.vectors, self.expires, self.alive = vectors, expires, alive
        self.n = self.live = len(keep)
        self.head = 0

    def view(self) -> RowsView:
        """A consistent read-only view for :func:`search` (take it under the writer's lock)."""
        return RowsView(
            self.head, self.n, self.vectors, self.expires, self.alive, self.keys, self.texts
        )

    def live_rows(self, now: float | None) -> NDArray[np.intp]:
        """Indices of the live rows, oldest first; without the expired ones if ``now`` given."""
        mask = self.alive[self.head : self.n]
        if now is not None:
            mask = mask & (self.expires[self.head : self.n] > now)
        return np.flatnonzero(mask) + self.head

    def expired(self, now: float) -> int:
        window = slice(self.head, self.n)
        return int(np.count_nonzero(self.alive[window] & (self.expires[window] <= now)))


@dataclass(frozen=True, slots=True)
class RowsView:
    """Rows ``[head, n)`` of a partition, as they were when the view was taken."""

    head: int
    n: int
    vectors: NDArray[np.float32]
    expires: NDArray[np.float64]
    alive: NDArray[np.bool_]
    keys: list[str]
    texts: list[str]


def search(
    rows: RowsView,
    query: NDArray[np.float32],
    *,
    threshold: float,
    now: float,
    accept: Callable[[str], bool] | None = None,
    top: int = 5,
) -> str | None:
    """The key of the most similar live row at or above ``threshold`` that ``accept`` takes.

    One matrix-vector product over the partition; only the best ``top`` candidates above the
    threshold are offered to ``accept`` (the guard), best first, newest first among equals.
    """
    head, n = rows.head, rows.n
    vectors, expires, alive, keys, texts = (
        rows.vectors,
        rows.expires,
        rows.alive,
        rows.keys,
        rows.texts,
    )
    if n <= head:
        return None
    scores = vectors[head:n] @ query
    candidates = np.flatnonzero(scores >= np.float32(threshold - _TOLERANCE))
    if candidates.size == 0:
        return None
    rows_ = candidates + head
    usable = alive[rows_] & (expires[rows_] > now)
    candidates, rows_ = candidates[usable], rows_[usable]
    if candidates.size == 0:
        return None
    if candidates.size > top:
        best = np.argpartition(scores[candidates], -top)[-top:]
        candidates, rows_ = candidates[best], rows_[best]
    order = np.lexsort((-rows_, -scores[candidates]))
    for row in rows_[order]:
        index = int(row)
        if accept is None or accept(texts[index]):
            return keys[index]
    return None


# -- files ---------------------------------------------------------------------------------


def _digest(value: str, length: int) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with the leaf owner-only (0o700)."""
    existed = path.is_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not existed:
        os.chmod(path, 0o700)


@contextlib.contextmanager
def _locked(path: Path, *, exclusive: bool) -> Iterator[IO[bytes]]:
    """Open (creating) ``path`` and hold a flock on it; retries if it was replaced meanwhile.

    A writer (``exclusive``) re-creates the directory if a concurrent clear() removed it; a
    reader gets the FileNotFoundError.
    """
    for _ in range(50):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            if not exclusive:
                raise
            make_private_dir(path.parent)
            continue
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False  # cleared while we waited: open the new one
            if same:
                with open(fd, "r+b", closefd=False) as handle:
                    yield handle
                return
        finally:
            os.close(fd)
    raise OSError(f"could not lock {path}: it keeps being replaced")


def _encode_record(payload: dict[str, Any], vector: bytes) -> bytes:
    meta = json.dumps(payload, separators=(",", ":")).encode("ascii")  # \u-escapes: any str
    body = _U32.pack(len(meta)) + meta + vector
    return _RECORD_HEADER.pack(_RECORD_MAGIC, len(body), zlib.crc32(body)) + body


@dataclass
class _Records:
    ops: list[tuple[str, str, str, float, bytes]]  # (op, key, text, expires, vector bytes)
    end: int  # offset just past the last complete record


def _parse_records(data: bytes, start: int, dim: int) -> _Records:
    ops: list[tuple[str, str, str, float, bytes]] = []
    pos = 0
    size = len(data)
    vector_bytes = 4 * dim
    while pos + _RECORD_HEADER.size <= size:
        magic, length, crc = _RECORD_HEADER.unpack_from(data, pos)
        if magic != _RECORD_MAGIC:
            raise CorruptIndex(f"bad record marker at byte {start + pos}")
        body_start = pos + _RECORD_HEADER.size
        if body_start + length > size:
            break  # a torn last record: a writer died mid-append
        body = data[body_start : body_start + length]
        if zlib.crc32(body) != crc or length < _U32.size:
            raise CorruptIndex(f"bad record checksum at byte {start + pos}")
        (meta_length,) = _U32.unpack_from(body, 0)
        try:
            meta = json.loads(body[_U32.size : _U32.size + meta_length].decode("utf-8"))
        except ValueError as exc:
            raise CorruptIndex(f"bad record at byte {start + pos}: {exc}") from exc
        vector = body[_U32.size + meta_length :]
        if isinstance(meta, dict) and isinstance(meta.get("f"), str) and not vector:
            ops.append(("forget", meta["f"], "", 0.0, b""))
        elif (
            isinstance(meta, dict)
            and isinstance(meta.get("k"), str)
            and isinstance(meta.get("t"), str)
            and (meta.get("e") is None or isinstance(meta.get("e"), int | float))
            and len(vector) == vector_bytes
        ):
            expires = math.inf if meta["e"] is None else float(meta["e"])
            ops.append(("add", meta["k"], meta["t"], expires, vector))
        else:
            raise CorruptIndex(f"malformed record at byte {start + pos}")
        pos = body_start + length
    return _Records(ops, start + pos)


def _apply(rows: Rows, records: _Records, max_entries: int) -> None:
    for op, key, text, expires, vector in records.ops:
        if op == "add":
            rows.append(np.frombuffer(vector, dtype="<f4"), key, text, expires, max_entries)
        else:
            rows.forget(key)


@dataclass
class _Snapshot:
    generation: int
    dim: int
    vectors: NDArray[np.float32]
    expires: NDArray[np.float64]
    keys: list[str]
    texts: list[str]


def _load_snapshot(path: Path) -> _Snapshot | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            vectors = archive["vectors"]
            expires = archive["expires"]
            raw_meta = archive["meta"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as exc:
        raise CorruptIndex(f"unreadable snapshot: {exc}") from exc
    try:
        meta = json.loads(raw_meta.tobytes().decode("utf-8"))
    except (ValueError, AttributeError) as exc:
        raise CorruptIndex(f"unreadable snapshot metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise CorruptIndex("snapshot metadata is not an object")
    keys, texts = meta.get("keys"), meta.get("texts")
    generation, dim = meta.get("generation"), meta.get("dim")
    if (
        meta.get("version") != _SNAPSHOT_VERSION
        or not isinstance(generation, int)
        or not isinstance(dim, int)
        or vectors.dtype != np.float32
        or vectors.ndim != 2
        or vectors.shape[1] != dim
        or expires.dtype != np.float64
        or expires.shape != (vectors.shape[0],)
        or not isinstance(keys, list)
        or not isinstance(texts, list)
        or len(keys) != vectors.shape[0]
        or len(texts) != vectors.shape[0]
        or not all(isinstance(k, str) for k in keys)
        or not all(isinstance(t, str) for t in texts)
    ):
        raise CorruptIndex("snapshot arrays and metadata disagree")
    return _Snapshot(generation, dim, vectors, expires, keys, texts)


def _fresh_generation() -> int:
    """A random first generation, so a re-created journal never passes for the old one."""
    return int.from_bytes(os.urandom(4), "little") << 20


def _read_header(handle: IO[bytes]) -> tuple[int, int] | None:
    """(generation, dim) of a journal, None if it is still empty."""
    handle.seek(0)
    raw = handle.read(_LOG_HEADER.size)
    if not raw:
        return None
    if len(raw) < _LOG_HEADER.size:
        raise CorruptIndex("truncated journal header")
    magic, generation, dim = _LOG_HEADER.unpack(raw)
    if magic != _LOG_MAGIC or dim < 1:
        raise CorruptIndex("bad journal header")
    return generation, dim


# -- one partition: memory + disk ----------------------------------------------------------


@dataclass
class _Partition:
    log: Path
    snapshot: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: Rows | None = None
    snapshot_sig: tuple[int, int, int] | None = None
    snapshot_rows: int = 0
    log_sig: tuple[int, int, int] | None = None
    log_ino: int = -1
    log_generation: int = -1
    log_offset: int = 0
    log_records: int = 0
    snapshot_generation: int | None = None
    log_dim: int | None = None  # from the journal's header, None while it has none
    log_stale: bool = False  # the journal predates the snapshot: rewrite before appending
    corrupt: bool = False  # files unreadable as of the signatures above


class PartitionIndex:
    """All partitions of one embedder's directory: loading, searching, appending, compacting."""

    def __init__(self, root: Path, *, max_entries: int, max_loaded: int = 1024) -> None:
        self.root = root
        self.max_entries = max_entries
        self.max_loaded = max_loaded
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, str], _Partition] = OrderedDict()

    # paths and the loaded-partition LRU

    def _tenant_dir(self, tenant: str) -> Path:
        return self.root / _digest(tenant, 32)

    def _partition(self, tenant: str, partition: str) -> _Partition:
        key = (tenant, partition)
        with self._lock:
            part = self._loaded.get(key)
            if part is None:
                stem = self._tenant_dir(tenant) / _digest(partition, 40)
                part = _Partition(stem.with_suffix(".log"), stem.with_suffix(".npz"))
                self._loaded[key] = part
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            else:
                self._loaded.move_to_end(key)
            return part

    # reading

    def view(self, tenant: str, partition: str) -> RowsView | None:
        """The partition's rows, reloaded if another process changed its files; None if empty."""
        part = self._partition(tenant, partition)
        with part.lock:
            self._refresh(part)
            return part.rows.view() if part.rows is not None and part.rows.live else None

    def _refresh(self, part: _Partition) -> None:
        log_sig, snapshot_sig = _signature(part.log), _signature(part.snapshot)
        if log_sig == part.log_sig and snapshot_sig == part.snapshot_sig:
            return
        if log_sig is None and snapshot_sig is None:
            self._reset_memory(part)
            return
        try:
            with _locked(part.log, exclusive=False) as handle:
                self._load_locked(part, handle)
        except FileNotFoundError:
            self._reset_memory(part)  # cleared meanwhile
        except OSError as exc:
            self._reset_memory(part)
            part.log_sig, part.snapshot_sig = log_sig, snapshot_sig
            warnings.warn(
                f"costguard: cannot read semantic cache files {part.log.name}: {exc}; "
                "treating them as empty",
                CostGuardWarning,
                stacklevel=4,
            )

    def _reset_memory(self, part: _Partition) -> None:
        part.rows = None
        part.snapshot_sig = part.log_sig = None
        part.snapshot_rows = part.log_records = part.log_offset = 0
        part.log_ino = part.log_generation = -1
        part.snapshot_generation = part.log_dim = None
        part.log_stale = part.corrupt = False

    def _load_locked(self, part: _Partition, handle: IO[bytes], *, warn: bool = True) -> None:
        """Bring ``part`` up to date with its files; the caller holds the journal's lock."""
        if part.corrupt and (_signature(part.log), _signature(part.snapshot)) == (
            part.log_sig,
            part.snapshot_sig,
        ):
            return  # already reported, and unchanged since
        try:
            self._load_or_raise(part, handle)
        except CorruptIndex as exc:
            self._reset_memory(part)
            part.corrupt = True
            if not warn:
                return
            warnings.warn(
                f"costguard: the semantic cache partition {part.log.stem} is corrupt ({exc}); "
                "treating it as empty until it is next written",
                CostGuardWarning,
                stacklevel=5,
            )
        finally:
            part.log_sig = _signature(part.log)
            part.snapshot_sig = _signature(part.snapshot)

    def _load_or_raise(self, part: _Partition, handle: IO[bytes]) -> None:
        stat = os.fstat(handle.fileno())
        header = _read_header(handle)
        snapshot_sig = _signature(part.snapshot)
        incremental = (
            part.rows is not None
            and not part.corrupt
            and snapshot_sig == part.snapshot_sig
            and stat.st_ino == part.log_ino
            and header is not None
            and header[0] == part.log_generation
            and stat.st_size >= part.log_offset
        )
        if incremental:
            assert part.rows is not None
            if part.log_stale:
                return
            handle.seek(part.log_offset)
            records = _parse_records(handle.read(), part.log_offset, part.rows.dim)
            _apply(part.rows, records, self.max_entries)
            part.log_offset = records.end
            part.log_records += len(records.ops)
            return
        snapshot = _load_snapshot(part.snapshot)
        rows: Rows | None = None
        generation = 0
        if snapshot is not None:
            rows = Rows.from_arrays(
                snapshot.vectors, snapshot.expires, snapshot.keys, snapshot.texts, self.max_entries
            )
            generation = snapshot.generation
        part.log_stale = False
        part.log_records = 0
        part.log_offset = _LOG_HEADER.size
        if header is not None:
            log_generation, dim = header
            if rows is not None and dim != rows.dim:
                raise CorruptIndex("journal and snapshot dimensions differ")
            if snapshot is not None and log_generation < generation:
                part.log_stale = True  # folded into the snapshot by a compaction that crashed
            elif snapshot is not None and log_generation > generation:
                raise CorruptIndex("journal is newer than its snapshot")
            else:
                rows = rows if rows is not None else Rows(dim)
                handle.seek(_LOG_HEADER.size)
                records = _parse_records(handle.read(), _LOG_HEADER.size, dim)
                _apply(rows, records, self.max_entries)
                part.log_offset = records.end
                part.log_records = len(records.ops)
        part.rows = rows
        part.snapshot_rows = 0 if snapshot is None else len(snapshot.keys)
        part.snapshot_generation = None if snapshot is None else snapshot.generation
        part.log_ino = stat.st_ino
        part.log_generation = -1 if header is None else header[0]
        part.log_dim = None if header is None else header[1]
        part.corrupt = False

    # writing

    def add(
        self,
        tenant: str,
        partition: str,
        vector: NDArray[np.float32],
        key: str,
        text: str,
        expires_at: float | None,
        now: float | None,
    ) -> None:
        payload = {"k": key, "t": text, "e": expires_at}
        self._write(tenant, partition, payload, vector, now)

    def forget(self, tenant: str, partition: str, key: str) -> None:
        part = self._partition(tenant, partition)
        with part.lock:
            self._refresh(part)
            if part.rows is None or key not in part.rows.by_key:
                return  # nothing to forget: write nothing
        self._write(tenant, partition, {"f": key}, None, None)

    def _write(
        self,
        tenant: str,
        partition: str,
        payload: dict[str, Any],
        vector: NDArray[np.float32] | None,
        now: float | None,
    ) -> None:
        part = self._partition(tenant, partition)
        make_private_dir(part.log.parent)
        with part.lock, _locked(part.log, exclusive=True) as handle:
            self._load_locked(part, handle)
            if vector is not None:
                dim = int(vector.shape[0])
            elif part.rows is not None:
                dim = part.rows.dim
            else:
                return  # a forget for a partition emptied meanwhile
            if (
                part.corrupt
                or (part.rows is not None and part.rows.dim != dim)
                or part.log_dim not in (None, dim)
            ):
                self._reset_files(part, handle, dim)
                if vector is None:
                    return
            elif part.snapshot_generation is not None and (
                part.log_stale or part.log_generation < 0
            ):
                self._rewrite_header(part, handle, part.snapshot_generation, dim)
            elif part.log_generation < 0:
                self._rewrite_header(part, handle, _fresh_generation(), dim)
            handle.seek(0, os.SEEK_END)
            if handle.tell() > part.log_offset:
                handle.truncate(part.log_offset)  # a torn record from a crashed writer
            blob = b"" if vector is None else np.ascontiguousarray(vector, dtype="<f4").tobytes()
            record = _encode_record(payload, blob)
            handle.seek(part.log_offset)
            handle.write(record)
            handle.flush()
            part.log_offset += len(record)
            part.log_records += 1
            rows = part.rows if part.rows is not None else Rows(dim)
            part.rows = rows
            _apply(rows, _parse_records(record, 0, dim), self.max_entries)
            garbage = rows.n - rows.live + (rows.expired(now) if now is not None else 0)
            if part.log_records >= max(_COMPACT_MIN_RECORDS, part.snapshot_rows) or garbage > max(
                _COMPACT_MIN_GARBAGE, rows.live // 4
            ):
                self._compact(part, handle, now)
            part.log_sig = _signature(part.log)
            part.snapshot_sig = _signature(part.snapshot)

    def _rewrite_header(
        self, part: _Partition, handle: IO[bytes], generation: int, dim: int
    ) -> None:
        handle.seek(0)
        handle.truncate(0)
        handle.write(_LOG_HEADER.pack(_LOG_MAGIC, generation, dim))
        handle.flush()
        part.log_generation = generation
        part.log_dim = dim
        part.log_offset = _LOG_HEADER.size
        part.log_records = 0
        part.log_stale = False
        part.log_ino = os.fstat(handle.fileno()).st_ino

    def _reset_files(self, part: _Partition, handle: IO[bytes], dim: int) -> None:
        """Start the partition afresh (its files were corrupt)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part.snapshot)
        self._reset_memory(part)
        self._rewrite_header(part, handle, _fresh_generation(), dim)

    def _compact(self, part: _Partition, handle: IO[bytes], now: float | None) -> None:
        rows = part.rows
        assert rows is not None
        keep = rows.live_rows(now)
        generation = max(part.log_generation, part.snapshot_generation or 0) + 1
        keys = [rows.keys[i] for i in keep]
        texts = [rows.texts[i] for i in keep]
        meta = {
            "version": _SNAPSHOT_VERSION,
            "generation": generation,
            "dim": rows.dim,
            "keys": keys,
            "texts": texts,
        }
        vectors = np.ascontiguousarray(rows.vectors[keep])
        expires = np.ascontiguousarray(rows.expires[keep])
        encoded = json.dumps(meta, separators=(",", ":")).encode("ascii")
        temporary = part.snapshot.with_name(
            f"{part.snapshot.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        )
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as out:
                np.savez(
                    out,
                    vectors=vectors,
                    expires=expires,
                    meta=np.frombuffer(encoded, dtype=np.uint8),
                )
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, part.snapshot)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._rewrite_header(part, handle, generation, rows.dim)
        part.rows = Rows.from_arrays(vectors, expires, keys, texts, self.max_entries)
        part.snapshot_rows = len(keep)
        part.snapshot_generation = generation

    # maintenance

    def clear(self, tenant: str | None) -> int:
        """Delete a tenant's partitions (all if None); returns how many entries they held."""
        tenants = [self._tenant_dir(tenant)] if tenant is not None else self._tenant_dirs()
        removed = 0
        for directory in tenants:
            for log in sorted(directory.glob("*.log")):
                snapshot = log.with_suffix(".npz")
                part = _Partition(log, snapshot)
                try:
                    with _locked(log, exclusive=True) as handle:
                        self._load_locked(part, handle, warn=False)  # cleared anyway
                        removed += part.rows.live if part.rows is not None else 0
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(snapshot)
                        os.unlink(log)
                except OSError:
                    continue
            for leftover in directory.glob("*.npz*"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            with contextlib.suppress(OSError):
                directory.rmdir()
        with self._lock:
            drop = [k for k in self._loaded if tenant is None or k[0] == tenant]
            for k in drop:
                del self._loaded[k]
        return removed

    def _tenant_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir())

    def stats(self) -> dict[str, int]:
        entries = partitions = tenants = size = 0
        for directory in self._tenant_dirs():
            logs = sorted(directory.glob("*.log"))
            counted = 0
            for log in logs:
                part = _Partition(log, log.with_suffix(".npz"))
                try:
                    with _locked(log, exclusive=False) as handle:
                        self._load_locked(part, handle, warn=False)
                except OSError:
                    continue
                if part.rows is not None and part.rows.live:
                    entries += part.rows.live
                    counted += 1
            partitions += counted
            tenants += 1 if counted else 0
            for path in directory.iterdir():
                with contextlib.suppress(OSError):
                    size += path.stat().st_size
        with contextlib.suppress(OSError):
            size += (self.root / "index.json").stat().st_size
        return {"entries": entries, "partitions": partitions, "tenants": tenants, "bytes": size}
