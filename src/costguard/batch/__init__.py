"""The providers' batch APIs, priced and durable: ``guard.batch``, ``guard.defer``,
``guard.flush_deferred`` and ``guard.resolve``, and for async clients ``guard.abatch``,
``guard.adefer``, ``guard.aflush_deferred`` and ``guard.aresolve`` (one engine, two drivers).

Requests go through the OpenAI Batch API (chat completions, responses, embeddings) or Anthropic
Message Batches at half price, are answered from the exact cache when it can, reserve their
worst case against the guard's budgets, and become one ledger row each (at batch rates, linked
to the provider's batch id). The deferred queue lives in the ledger database, so queued,
submitted and finished requests survive the process. See docs/batch.md.
"""

from __future__ import annotations

from ._types import (
    ANTHROPIC_LIMITS,
    OPENAI_LIMITS,
    BatchHandle,
    BatchItemError,
    BatchLimits,
    BatchNotReadyError,
    BatchOptions,
    BatchProgress,
    FlushReport,
)

__all__ = [
    "ANTHROPIC_LIMITS",
    "OPENAI_LIMITS",
    "BatchHandle",
    "BatchItemError",
    "BatchLimits",
    "BatchNotReadyError",
    "BatchOptions",
    "BatchProgress",
    "FlushReport",
]
