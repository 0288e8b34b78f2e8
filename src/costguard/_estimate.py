"""Up-front, offline cost estimates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._call import Call
from ._errors import InvalidRequestError
from ._tokens import count_tokens, counting_model
from ._usage import Usage
from .cache._keys import canonical
from .pricing import PriceTable, compute_cost

__all__ = ["estimate_cost", "prompt_tokens", "worst_case_cost"]


def estimate_cost(
    model: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    max_tokens: int = 0,
    tools: Sequence[Mapping[str, Any]] | None = None,
    system: str | Sequence[Mapping[str, Any]] | None = None,
    prices: PriceTable | None = None,
) -> Decimal:
    """Worst-case USD cost of one call: the counted prompt at the input rate plus ``max_tokens``
    of output at the output rate (no prompt-cache discount assumed).

    Raises :class:`~costguard.UnknownModelPriceError` when the model has no price.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise InvalidRequestError(
            f"max_tokens must be a non-negative integer, got {max_tokens!r}", field="max_tokens"
        )
    table = prices or PriceTable.default()
    price = table.require(model)
    prompt = _count(model, price.provider, messages, tools=tools, system=system)
    return compute_cost(price, Usage(input_tokens=prompt, output_tokens=max_tokens)).usd


def _count(
    model: str,
    provider: str,
    messages: Any,
    *,
    tools: Any = None,
    system: Any = None,
) -> int:
    """Prompt tokens, counting a model whose tokenizer we cannot tell (a custom name) as its
    provider's current models count."""
    return count_tokens(counting_model(model, provider), messages, tools=tools, system=system)


def prompt_tokens(call: Call, provider: str) -> int:
    """The prompt of ``call`` counted offline: messages or input, system prompt or
    instructions, and tools. Input that is not chat messages (embedding batches, Responses
    items without a role) is counted as its JSON text: an over-estimate, never an under-one."""
    op = call.operation
    model = call.model or ""
    params = call.params
    value = params.get(op.messages_param) if op.messages_param else params.get("input")
    system = params.get("system") if "system" in op.params else params.get("instructions")
    tools = params.get("tools")
    if not isinstance(system, str | list):
        system = None
    if not isinstance(tools, list):
        tools = None
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    try:
        return _count(model, provider, value, tools=tools, system=system)
    except InvalidRequestError:
        text = json.dumps(canonical([value, system, tools]), ensure_ascii=False)
        return _count(model, provider, text)


def worst_case_cost(call: Call, prices: PriceTable) -> Decimal:
    """The most ``call`` can cost: its counted prompt at the dearest input rate that could
    apply (a prompt-cache write when the request can cause one), plus its whole output allowance
    (the output limit sent, else the model's maximum output) at the output rate.

    Raises :class:`~costguard.UnknownModelPriceError` for an unpriced model: a budget never
    lets a call through as $0.
    """
    model = call.model or ""
    price = prices.require(model)
    prompt = prompt_tokens(call, price.provider)
    tier = call.params.get("service_tier")
    rates = price.rates_for(
        prompt_tokens=prompt, service_tier=tier if isinstance(tier, str) else None
    )
    if call.operation.output_limit_params:
        output = call.max_tokens or price.max_output_tokens or price.context_window or prompt
    else:
        output = 0  # embeddings
    input_rate = rates.input
    writes = price.provider == "openai" or "cache_control" in json.dumps(
        canonical(dict(call.params))
    )
    if writes:
        input_rate = max(input_rate, rates.cache_write_5m, rates.cache_write_1h)
    return (prompt * input_rate + output * rates.output) / 1_000_000
