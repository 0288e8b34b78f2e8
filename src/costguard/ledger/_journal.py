"""Write-behind with a journal: cheap, durable ledger writes.

A guarded call must not wait for a SQLite transaction (tens of microseconds, and a stall of
milliseconds at every WAL checkpoint). So ``Ledger.write`` appends the row, as one JSON line, to
this process's journal file with a single ``os.write`` and returns: from then on the row survives
the process being killed, because the bytes are in the kernel. A background thread commits
journalled rows to SQLite in batches and empties the journal once all of it is committed.

Each journal is ``<ledger>-pending/<pid>-<random>.jsonl``, held under an exclusive ``flock`` for
as long as its writer lives. When a ledger is opened, every journal whose lock can be taken
belongs to a writer that died: its rows are committed (``INSERT OR IGNORE``, so rows the writer
had already committed are not doubled) and the file is removed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

if sys.platform != "win32":
    import fcntl

__all__ = ["JOURNALS_SUPPORTED", "Journal", "recover_journals"]

#: Journals need POSIX ``flock``; elsewhere the ledger commits each row synchronously.
JOURNALS_SUPPORTED = sys.platform != "win32"

logger = logging.getLogger("costguard")

Commit = Callable[[Sequence[bytes]], None]  # rows as JSON-array lines, without newlines

#: Once a row is pending, the writer thread commits within this long, or at once when this
#: many rows wait (or on flush/close). With nothing pending it sleeps.
_INTERVAL_S = 0.05
_BATCH = 256


def journal_dir(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + "-pending")  # not "-journal": SQLite uses that


class Journal:
    """This process's journal for one ledger, and the thread that drains it into SQLite."""

    def __init__(self, ledger_path: Path, commit: Commit) -> None:
        directory = journal_dir(ledger_path)
        directory.mkdir(mode=0o700, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Locked before it gets the name recovery looks for, so no one takes it for an orphan.
        claiming = directory / f"{name}.new"
        self._fd = os.open(claiming, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = directory / f"{name}.jsonl"
        os.rename(claiming, self.path)
        self._commit = commit
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._has_work = threading.Event()  # rows are pending: start a batch
        self._urgent = threading.Event()  # commit the batch now, without waiting to fill it
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="costguard-ledger", daemon=True)
        self._thread.start()

    def append(self, line: bytes) -> None:
        """Make ``line`` (one row, a JSON array) durable now and queue it for SQLite."""
        with self._lock:
            if self._closing:
                raise ValueError("the ledger is closed")
            os.write(self._fd, line + b"\n")
            if not self._pending:
                self._has_work.set()
            self._pending.append(line)
            if len(self._pending) >= _BATCH:
                self._urgent.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every row appended so far is committed to SQLite; False on timeout."""
        with self._lock:
            self._urgent.set()
            return self._idle.wait_for(lambda: not self._pending and not self._in_flight, timeout)

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._has_work.set()
        self._urgent.set()
        self._thread.join()
        with self._lock:
            if not self._pending:  # everything committed: the journal has nothing to keep
                self.path.unlink(missing_ok=True)
            os.close(self._fd)  # releases the lock; leftovers are recovered on the next open

    def _run(self) -> None:
        while True:
            self._has_work.wait()  # idle: asleep, no polling
            self._urgent.wait(_INTERVAL_S)  # let a batch gather, unless asked to hurry
            with self._lock:
                self._has_work.clear()
                self._urgent.clear()
                batch, self._pending = self._pending, []
                self._in_flight = len(batch)
                closing = self._closing
            if batch:
                try:
                    self._commit(batch)
                except Exception:
                    logger.exception(
                        "costguard could not commit %d ledger rows; will retry", len(batch)
                    )
                    with self._lock:
                        self._pending[:0] = batch
                        self._in_flight = 0
                        self._has_work.set()  # retried after the batching interval
                        self._idle.notify_all()
                    if closing:
                        return  # the rows stay in the journal for the next open
                    continue
            with self._lock:
                self._in_flight = 0
                if not self._pending:
                    os.ftruncate(self._fd, 0)  # all committed; appends restart at offset 0
                self._idle.notify_all()
                if closing and not self._pending:
                    return


def recover_journals(ledger_path: Path, commit: Commit) -> int:
    """Commit the rows of journals left by dead writers, then remove them. Returns the count."""
    directory = journal_dir(ledger_path)
    if not JOURNALS_SUPPORTED or not directory.is_dir():
        return 0
    recovered = 0
    for path in sorted(directory.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # its owner closed cleanly meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            lines = _read_lines(path)
            if lines:
                commit(lines)
                recovered += len(lines)
            os.unlink(path)
        except (OSError, sqlite3.Error) as exc:
            logger.warning("costguard could not recover ledger journal %s: %s", path, exc)
        finally:
            os.close(fd)
    return recovered


def _read_lines(path: Path) -> list[bytes]:
    lines: list[bytes] = []
    with open(path, "rb") as file:
        for line in file:
            if not line.endswith(b"\n"):
                break  # a torn last line: its write() never returned, so it was never acknowledged
            try:
                row = json.loads(line)
            except ValueError:
                logger.warning("costguard skipped an unreadable line in ledger journal %s", path)
                continue
            if isinstance(row, list):
                lines.append(line.rstrip(b"\n"))
    return lines
