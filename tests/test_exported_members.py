"""The public API is exactly what __all__ says, sorted, and every name resolves."""

from __future__ import annotations

import costguard
import costguard.testing


def test_all_is_sorted_and_every_name_exists() -> None:
    """costguard.__all__ is sorted and each entry is an attribute of the package."""
    assert costguard.__all__ == sorted(costguard.__all__)
    for name in costguard.__all__:
        assert hasattr(costguard, name), name


def test_public_names_are_pinned() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert costguard.__all__ == [
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


def test_importing_costguard_imports_neither_sdk_nor_tiktoken() -> None:
    """`import costguard` stays cheap: SDKs, tiktoken, numpy, tenacity, diskcache load on use."""
    import subprocess
    import sys

    code = (
        "import sys, costguard; heavy = ('openai', 'anthropic', 'tiktoken', 'httpx2', "
        "'numpy', 'tenacity', 'diskcache'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
