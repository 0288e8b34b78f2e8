"""OpenTelemetry spans and metrics for guarded calls (being written)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._call import Call, Outcome
from ._chain import AsyncHandler, Handler
from .pricing import PriceTable

__all__ = ["OTel", "OTelLayer"]


@dataclass(frozen=True)
class OTel:
    """Where spans and metrics go (placeholder)."""

    tracer_provider: Any = None
    meter_provider: Any = None


class OTelLayer:
    """Placeholder: passes calls through unchanged."""

    def __init__(self, otel: OTel, prices: PriceTable) -> None:
        self.otel = otel
        self.prices = prices

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        return call_next(call)

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        return await call_next(call)
