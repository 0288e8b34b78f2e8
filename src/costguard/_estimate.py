"""Up-front, offline cost estimates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._errors import InvalidRequestError
from ._tokens import count_tokens
from ._usage import Usage
from .pricing import PriceTable, compute_cost

__all__ = ["estimate_cost"]


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
    try:
        prompt = count_tokens(model, messages, tools=tools, system=system)
    except InvalidRequestError as exc:
        if exc.field != "model":
            raise
        # A model we price but whose tokenizer we cannot tell (a custom name): count it as its
        # provider's current models count.
        stand_in = "claude-sonnet-4-6" if price.provider == "anthropic" else "gpt-4o"
        prompt = count_tokens(stand_in, messages, tools=tools, system=system)
    return compute_cost(price, Usage(input_tokens=prompt, output_tokens=max_tokens)).usd
