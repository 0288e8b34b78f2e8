"""Resilience policies: costguard's own retries of failed provider calls (see docs/retries.md)."""

from __future__ import annotations

from ._retry import Retry, attempts_made

__all__ = ["Retry", "attempts_made"]
