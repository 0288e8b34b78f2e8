"""Spend control: budgets with reservations, per-user rate limits, output caps."""

from __future__ import annotations

from ._budget import Budget, BudgetAlert, BudgetStatus
from ._cap import Cap
from ._ratelimit import RateLimits

__all__ = ["Budget", "BudgetAlert", "BudgetStatus", "Cap", "RateLimits"]
