"""The guard's built-in layers (see :mod:`costguard._chain` for the protocol).

Each lives in its own module (``costguard.layers.ledger``, ``.cache``, ``.budget``, ``.cap``,
``.ratelimit``, ``.route``, ``.retry``); the optional ones load only when configured.
"""

from __future__ import annotations

from .cache import CacheLayer
from .ledger import LedgerLayer

__all__ = ["CacheLayer", "LedgerLayer"]
