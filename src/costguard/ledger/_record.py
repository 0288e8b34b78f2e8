"""One ledger row: what a guarded call cost, and everything needed to explain the price."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .._usage import Usage

__all__ = ["CallRecord", "from_pusd", "to_pusd"]

PUSD_PER_USD = 10**12
"""Money is stored as integer picodollars: exact, and summable by SQLite without rounding."""
_INT64 = 2**63


def to_pusd(usd: Decimal) -> int:
    """``usd`` as an exact integer number of picodollars.

    Raises ``ValueError`` if ``usd`` is not finite, is not a whole number of picodollars, or
    does not fit a signed 64-bit integer (about 9.2 million dollars).
    """
    if not usd.is_finite():
        raise ValueError(f"cost must be a finite amount, got {usd}")
    if not usd:
        return 0
    numerator, denominator = usd.as_integer_ratio()  # exact
    pusd, remainder = divmod(numerator * PUSD_PER_USD, denominator)
    if remainder:
        raise ValueError(f"cost {usd} is not a whole number of picodollars (1e-12 USD)")
    if not -_INT64 <= pusd < _INT64:
        raise ValueError(f"cost {usd} is too large for the ledger (limit about 9.2 million USD)")
    return pusd


def from_pusd(pusd: int) -> Decimal:
    """The exact Decimal amount of ``pusd`` picodollars, without trailing fractional zeros."""
    exponent = -12
    while exponent < 0 and pusd % 10 == 0:
        pusd //= 10
        exponent += 1
    return Decimal((int(pusd < 0), tuple(map(int, str(abs(pusd)))), exponent))


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A finished guarded call, as written to the ledger.

    ``ts`` must be timezone-aware and is normalised to UTC. ``cost_usd`` is ``None`` when no
    price was known, and must otherwise be a whole number of picodollars (``Ledger.write``
    refuses it if not). ``latency_ms`` is kept to the microsecond, the ledger's resolution,
    so a record read back from the ledger equals the record written.
    """

    id: str
    ts: datetime
    provider: str
    operation: str
    requested_model: str | None = None
    served_model: str | None = None
    usage: Usage = field(default_factory=Usage)
    raw_usage: Mapping[str, Any] | None = None
    cost_usd: Decimal | None = None
    saved_usd: Decimal = Decimal(0)
    rates: Mapping[str, str] | None = None
    price_version: str | None = None
    service_tier: str | None = None
    cache: str = "miss"
    latency_ms: float = 0.0
    attempts: int = 1
    status: str = "ok"
    error_type: str | None = None
    stream: bool = False
    feature: str | None = None
    user: str | None = None
    tenant: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    api_key_hash: str | None = None
    api_key_last4: str | None = None
    requested_max_tokens: int | None = None  # the output limit the caller asked for
    sent_max_tokens: int | None = None  # the output limit sent (after capping)
    route: str | None = None  # why another model served the call (routing, fallback)
    linked_to: str | None = None  # the row of an earlier attempt this call made (a cascade)
    batch_id: str | None = None  # the provider batch that carried this call (batch APIs)

    def __post_init__(self) -> None:
        if self.ts.tzinfo is not UTC:
            if self.ts.utcoffset() is None:
                raise ValueError(f"ts must be timezone-aware, got {self.ts!r}")
            object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        for name in ("cost_usd", "saved_usd"):
            value = getattr(self, name)
            if value is None and name == "cost_usd":
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, Decimal(value))
            elif not isinstance(value, Decimal):
                raise TypeError(f"{name} must be a Decimal (money is exact), got {value!r}")
            # Whole picodollars and 64-bit range are checked by to_pusd when written.
        latency = self.latency_ms
        if not (latency >= 0 and math.isfinite(latency)):
            raise ValueError(f"latency_ms must be a finite, non-negative number, got {latency}")
        object.__setattr__(self, "latency_ms", round(latency * 1000) / 1000)

    @property
    def priced(self) -> bool:
        """Whether a price was known for this call."""
        return self.cost_usd is not None
