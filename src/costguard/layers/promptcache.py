"""Provider prompt caching (being written): Anthropic ``cache_control`` breakpoints placed where
they pay off, OpenAI ``prompt_cache_key`` from the scope."""

from __future__ import annotations

from dataclasses import dataclass

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from ..pricing import PriceTable

__all__ = ["PromptCacheLayer", "PromptCaching"]


@dataclass(frozen=True, slots=True)
class PromptCaching:
    """How costguard uses the providers' prompt caches (placeholder)."""

    mode: str = "auto"


class PromptCacheLayer:
    """Placeholder: passes calls through unchanged."""

    __slots__ = ("policy", "prices")

    def __init__(self, policy: PromptCaching | None, prices: PriceTable) -> None:
        self.policy = policy
        self.prices = prices

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        return call_next(call)

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        return await call_next(call)
