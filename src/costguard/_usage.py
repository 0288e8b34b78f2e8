"""Normalised token usage: one shape for every provider and operation."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Billed tokens of one call, split by the rate each is charged at.

    All counts are disjoint, so the cost is a plain sum of ``count * rate``:

    - ``input_tokens``: prompt tokens charged at the normal input rate (neither read from nor
      written to the provider's prompt cache).
    - ``cache_read_tokens``: prompt tokens served from the provider's prompt cache.
    - ``cache_write_5m_tokens`` / ``cache_write_1h_tokens``: prompt tokens written to the
      provider's prompt cache with a 5-minute / 1-hour lifetime (Anthropic).
    - ``output_tokens``: every generated token, reasoning included.
    - ``reasoning_tokens``: the part of ``output_tokens`` spent on hidden reasoning
      (informational; already inside ``output_tokens``).
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Every token of the prompt, whatever rate it was billed at."""
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )
