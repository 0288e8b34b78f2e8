"""estimate_cost: a worst-case price before the call, from offline token counts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costguard

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three prime numbers."},
]


def test_estimate_is_counted_prompt_plus_max_output_at_list_prices() -> None:
    """The estimate equals count_tokens at the input rate plus max_tokens at the output rate."""
    price = costguard.PriceTable.default().require("gpt-4o")
    prompt = costguard.count_tokens("gpt-4o", MESSAGES)
    expected = (prompt * price.base.input + 100 * price.base.output) / 1_000_000
    assert costguard.estimate_cost("gpt-4o", MESSAGES, max_tokens=100) == expected


@given(st.integers(min_value=0, max_value=100_000), st.integers(min_value=0, max_value=100_000))
def test_estimate_never_decreases_as_max_tokens_grows(a: int, b: int) -> None:
    """A larger output allowance never gives a smaller estimate."""
    low, high = sorted((a, b))
    assert costguard.estimate_cost(
        "gpt-4o-mini", MESSAGES, max_tokens=low
    ) <= costguard.estimate_cost("gpt-4o-mini", MESSAGES, max_tokens=high)


def test_estimate_for_an_unknown_model_raises() -> None:
    """An unpriced model is an UnknownModelPriceError, never $0."""
    with pytest.raises(costguard.UnknownModelPriceError, match="my-model"):
        costguard.estimate_cost("my-model", MESSAGES, max_tokens=10)


def test_estimate_refuses_a_negative_max_tokens() -> None:
    """max_tokens below zero is an InvalidRequestError naming the field."""
    with pytest.raises(costguard.InvalidRequestError, match="max_tokens"):
        costguard.estimate_cost("gpt-4o", MESSAGES, max_tokens=-1)


def test_estimate_with_custom_prices() -> None:
    """A user price table is honoured."""
    prices = costguard.PriceTable.default().override(
        "house-model", input="1", output="2", provider="openai"
    )
    assert costguard.estimate_cost(
        "house-model", "x" * 0, max_tokens=1_000_000, prices=prices
    ) == Decimal(2)
