"""costguard: drop-in cost control for the openai and anthropic SDKs.

>>> import openai, costguard
>>> guard = costguard.CostGuardClient()
>>> client = guard.wrap(openai.OpenAI())      # still an openai.OpenAI
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._call import Call, ClientInfo, Outcome
from ._chain import AsyncHandler, Handler, Layer
from ._client import CostGuardClient, wrap
from ._errors import (
    BudgetExceededError,
    ConfigurationError,
    CostGuardError,
    CostGuardWarning,
    FallbackAttempt,
    FallbackExhaustedError,
    InvalidRequestError,
    LedgerError,
    PricingError,
    RateLimitedError,
    UnknownModelPriceError,
)
from ._estimate import estimate_cost
from ._otel import OTel
from ._scope import Scope, ScopeManager, current_scope
from ._tokens import acount_tokens_via_provider, count_tokens, count_tokens_via_provider
from ._usage import Usage
from .cache import ExactCache
from .layers.promptcache import PromptCaching
from .ledger import CallRecord, Ledger, SummaryRow
from .pricing import Cost, ModelPrice, PriceTable, Rates

if TYPE_CHECKING:
    from .batch import BatchHandle, BatchItemError, BatchNotReadyError, BatchOptions, FlushReport
    from .cache import Embedder, FakeEmbedder, OpenAIEmbedder, SemanticCache
    from .resilience import Retry
    from .routing import Cascade, ComplexityRouter, Router
    from .spend import Budget, BudgetAlert, BudgetStatus, Cap, RateLimits

__all__ = [
    "AsyncHandler",
    "BatchHandle",
    "BatchItemError",
    "BatchNotReadyError",
    "BatchOptions",
    "Budget",
    "BudgetAlert",
    "BudgetExceededError",
    "BudgetStatus",
    "Call",
    "CallRecord",
    "Cap",
    "Cascade",
    "ClientInfo",
    "ComplexityRouter",
    "ConfigurationError",
    "Cost",
    "CostGuardClient",
    "CostGuardError",
    "CostGuardWarning",
    "Embedder",
    "ExactCache",
    "FakeEmbedder",
    "FallbackAttempt",
    "FallbackExhaustedError",
    "FlushReport",
    "Handler",
    "InvalidRequestError",
    "Layer",
    "Ledger",
    "LedgerError",
    "ModelPrice",
    "OTel",
    "OpenAIEmbedder",
    "Outcome",
    "PriceTable",
    "PricingError",
    "PromptCaching",
    "RateLimitedError",
    "RateLimits",
    "Rates",
    "Retry",
    "Router",
    "Scope",
    "ScopeManager",
    "SemanticCache",
    "SummaryRow",
    "UnknownModelPriceError",
    "Usage",
    "acount_tokens_via_provider",
    "count_tokens",
    "count_tokens_via_provider",
    "current_scope",
    "estimate_cost",
    "wrap",
]

# A library stays quiet unless the application configures logging.
logging.getLogger("costguard").addHandler(logging.NullHandler())

# Features that need more than the core (numpy, tenacity, ...) load on first use, so that
# `import costguard` stays light.
_LAZY = {
    "BatchHandle": "batch",
    "BatchItemError": "batch",
    "BatchNotReadyError": "batch",
    "BatchOptions": "batch",
    "Budget": "spend",
    "BudgetAlert": "spend",
    "BudgetStatus": "spend",
    "Cap": "spend",
    "Cascade": "routing",
    "ComplexityRouter": "routing",
    "Embedder": "cache",
    "FakeEmbedder": "cache",
    "FlushReport": "batch",
    "OpenAIEmbedder": "cache",
    "RateLimits": "spend",
    "Retry": "resilience",
    "Router": "routing",
    "SemanticCache": "cache",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
