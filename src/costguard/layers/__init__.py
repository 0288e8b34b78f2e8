"""The guard's built-in layers (see :mod:`costguard._chain` for the protocol)."""

from __future__ import annotations

from .budget import BudgetLayer
from .cache import CacheLayer
from .ledger import LedgerLayer

__all__ = ["BudgetLayer", "CacheLayer", "LedgerLayer"]
