"""costguard: drop-in cost control for the openai and anthropic SDKs.

>>> import openai, costguard
>>> guard = costguard.CostGuardClient()
>>> client = guard.wrap(openai.OpenAI())      # still an openai.OpenAI
"""

from __future__ import annotations

from ._call import Call, ClientInfo, Outcome
from ._chain import AsyncHandler, Handler, Layer
from ._client import CostGuardClient, wrap
from ._errors import (
    ConfigurationError,
    CostGuardError,
    CostGuardWarning,
    InvalidRequestError,
    LedgerError,
    PricingError,
    UnknownModelPriceError,
)
from ._estimate import estimate_cost
from ._scope import Scope, ScopeManager, current_scope
from ._tokens import acount_tokens_via_provider, count_tokens, count_tokens_via_provider
from ._usage import Usage
from .ledger import CallRecord, Ledger, SummaryRow
from .pricing import Cost, ModelPrice, PriceTable, Rates

__all__ = [
    "AsyncHandler",
    "Call",
    "CallRecord",
    "ClientInfo",
    "ConfigurationError",
    "Cost",
    "CostGuardClient",
    "CostGuardError",
    "CostGuardWarning",
    "Handler",
    "InvalidRequestError",
    "Layer",
    "Ledger",
    "LedgerError",
    "ModelPrice",
    "Outcome",
    "PriceTable",
    "PricingError",
    "Rates",
    "Scope",
    "ScopeManager",
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
