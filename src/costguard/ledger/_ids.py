"""Time-sortable record ids (ULIDs).

An id is 128 bits: a 48-bit Unix timestamp in milliseconds followed by 80 random bits, written
as 26 characters of Crockford base32. Ids therefore sort lexicographically by creation time.
Within one process they are also strictly increasing: a second id in the same millisecond (or
after the system clock stepped back) is the previous id plus one.
"""

from __future__ import annotations

import os
import random
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_RANDOM_BITS = 80
_MAX_MS = (1 << 48) - 1


class _MonotonicIds:
    """The per-process state that keeps ids strictly increasing."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # A forked child must not continue its parent's sequence (or its random stream), or
        # both would mint the same ids in the same millisecond.
        self._lock = threading.Lock()
        self._last = 0
        # Ids need uniqueness, not secrecy: a generator seeded from the OS is enough, and
        # avoids a getrandom() system call per id.
        self._random = random.Random(os.urandom(16))

    def next(self, now_ms: int | None) -> int:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if not 0 <= ms <= _MAX_MS:
            raise ValueError(f"now_ms must be between 0 and 2**48 - 1, got {ms}")
        with self._lock:
            last_ms = self._last >> _RANDOM_BITS
            if ms == last_ms or (now_ms is None and ms < last_ms):
                value = self._last + 1
            else:
                value = (ms << _RANDOM_BITS) | self._random.getrandbits(_RANDOM_BITS)
            if value >> 128:
                raise OverflowError("no more ids in this millisecond")
            self._last = value
            return value


_ids = _MonotonicIds()
if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_ids.reset)


def new_id(now_ms: int | None = None) -> str:
    """Return a new 26-character id that sorts after every id this process made before.

    ``now_ms`` overrides the clock (milliseconds since the Unix epoch); ids made with an
    explicit earlier time sort by that time, not after previous ids.
    """
    value = _ids.next(now_ms)
    chars = [""] * 26
    for i in range(25, -1, -1):
        chars[i] = _ALPHABET[value & 31]
        value >>= 5
    return "".join(chars)
