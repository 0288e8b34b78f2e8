"""The guard's built-in layers (see :mod:`costguard._chain` for the protocol)."""

from __future__ import annotations

from .ledger import LedgerLayer

__all__ = ["LedgerLayer"]
