"""Computing a call's cost: rate selection, exact arithmetic, and its algebraic properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costguard import PricingError
from costguard._usage import Usage
from costguard.pricing import LongContextRates, ModelPrice, PriceTable, Rates, compute_cost

TABLE = PriceTable.default()
COUNTS = ["input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"]
COUNTS += ["output_tokens"]

# Small counts too, so prompts land on both sides of the long-context thresholds.
counts = st.integers(min_value=0, max_value=150_000) | st.integers(min_value=0, max_value=10**9)
usages = st.builds(
    Usage,
    input_tokens=counts,
    cache_read_tokens=counts,
    cache_write_5m_tokens=counts,
    cache_write_1h_tokens=counts,
    output_tokens=counts,
)
# Any valid rate: a whole number of millionths of a dollar per million tokens.
rate_values = st.integers(min_value=0, max_value=10**9).map(lambda n: Decimal(n).scaleb(-6))
rates = st.builds(Rates, rate_values, rate_values, rate_values, rate_values, rate_values)
flat_prices = st.builds(
    ModelPrice,
    model=st.just("m"),
    provider=st.just("openai"),
    mode=st.just("chat"),
    context_window=st.none(),
    max_output_tokens=st.none(),
    base=rates,
)
shipped = st.sampled_from([TABLE.require(name) for name in TABLE])


def test_gpt_4o_thousand_in_thousand_out_costs_one_and_a_quarter_cents() -> None:
    """gpt-4o at $2.50/$10 per 1M: 1000 input + 1000 output tokens cost exactly $0.0125."""
    cost = TABLE.cost("gpt-4o", Usage(input_tokens=1000, output_tokens=1000))
    assert cost is not None
    assert cost.usd == Decimal("0.0125")
    assert cost.picodollars == 12_500_000_000
    assert (cost.model, cost.version) == ("gpt-4o", TABLE.version)


def test_each_token_class_is_billed_at_its_own_rate() -> None:
    """Cached reads, 5m and 1h writes and output each pay their rate; the breakdown sums to usd."""
    usage = Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, reasoning_tokens=500)
    cost = TABLE.cost("claude-sonnet-4-5", usage)
    assert cost is not None
    assert cost.breakdown() == {
        "input": Decimal(3),
        "cache_read": Decimal("0.3"),
        "cache_write_5m": Decimal("3.75"),
        "cache_write_1h": Decimal(6),
        "output": Decimal(15),
    }
    assert sum(cost.breakdown().values()) == cost.usd == Decimal("28.05")


@pytest.mark.parametrize(
    ("tier", "batch", "input_rate", "output_rate"),
    [
        (None, False, "2.5", "15"),
        ("default", False, "2.5", "15"),
        ("auto", False, "2.5", "15"),
        ("standard", False, "2.5", "15"),
        ("scale", False, "2.5", "15"),
        ("flex", False, "1.25", "7.5"),
        ("FLEX", False, "1.25", "7.5"),
        ("priority", False, "5", "30"),
        (None, True, "1.25", "7.5"),
        ("priority", True, "1.25", "7.5"),
        ("batch", False, "1.25", "7.5"),
    ],
)
def test_service_tier_and_batch_pick_their_rates(
    tier: str | None, batch: bool, input_rate: str, output_rate: str
) -> None:
    """gpt-5.4: flex/priority use their rates, batch wins over a tier, others mean standard."""
    rates = TABLE.require("gpt-5.4").rates_for(prompt_tokens=1000, service_tier=tier, batch=batch)
    assert (rates.input, rates.output) == (Decimal(input_rate), Decimal(output_rate))


def test_a_tier_the_model_lacks_falls_back_to_standard_rates() -> None:
    """gpt-4o has no flex rates, so a flex request is priced at standard rates."""
    gpt4o = TABLE.require("gpt-4o")
    assert gpt4o.rates_for(prompt_tokens=10, service_tier="flex") == gpt4o.base


@pytest.mark.parametrize(
    ("tier", "batch", "input_rate", "output_rate"),
    [
        (None, False, "5", "22.5"),
        ("flex", False, "2.5", "11.25"),
        (None, True, "2.5", "11.25"),
        ("priority", False, "5", "30"),  # no long-context priority: the higher of 5/22.5, 5/30
    ],
)
def test_a_prompt_above_the_threshold_bills_the_whole_request_at_long_context_rates(
    tier: str | None, batch: bool, input_rate: str, output_rate: str
) -> None:
    """gpt-5.4 above 272k prompt tokens: the long-context rates (and their variants) apply."""
    price = TABLE.require("gpt-5.4")
    assert price.rates_for(prompt_tokens=272_000).input == Decimal("2.5")
    rates = price.rates_for(prompt_tokens=272_001, service_tier=tier, batch=batch)
    assert (rates.input, rates.output) == (Decimal(input_rate), Decimal(output_rate))
    usage = Usage(input_tokens=200_000, cache_read_tokens=72_001, output_tokens=1000)
    cost = compute_cost(price, usage, service_tier=tier, batch=batch)
    assert cost.rates == rates


def test_the_highest_threshold_exceeded_wins() -> None:
    """With several long-context tiers, the largest one below the prompt size applies."""
    one = Rates(Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal(1))
    two, three = (Rates(*(Decimal(n),) * 5) for n in (2, 3))
    price = ModelPrice(
        "m", "openai", "chat", None, None, one,
        long_context=(LongContextRates(2000, three), LongContextRates(1000, two)),
    )  # fmt: skip
    assert [price.rates_for(prompt_tokens=n).input for n in (1000, 1001, 2000, 2001)] == [
        1,
        2,
        2,
        3,
    ]


def test_anthropic_long_context_rates_apply_above_their_threshold() -> None:
    """claude-haiku-5-5 prices prompts above 100k at its above_100k rates, batch included."""
    price = TABLE.require("claude-haiku-5-5")
    assert price.rates_for(prompt_tokens=100_001).input == Decimal("0.5")
    assert price.rates_for(prompt_tokens=100_001, batch=True).cache_write_5m == Decimal("0.3125")


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_a_negative_or_non_integer_token_count_is_refused(bad: object) -> None:
    """compute_cost raises PricingError rather than pricing an impossible usage."""
    with pytest.raises(PricingError, match=r"usage\.output_tokens"):
        compute_cost(TABLE.require("gpt-4o"), Usage(output_tokens=bad))  # type: ignore[arg-type]


@given(price=flat_prices, a=usages, b=usages)
def test_cost_is_additive_across_calls_at_the_same_rates(
    price: ModelPrice, a: Usage, b: Usage
) -> None:
    """cost(a) + cost(b) == cost(a + b) exactly."""
    assert compute_cost(price, a).usd + compute_cost(price, b).usd == compute_cost(price, a + b).usd


@given(
    price=shipped,
    usage=usages,
    tier=st.sampled_from([None, "flex", "priority"]),
    batch=st.booleans(),
)
def test_every_cost_is_a_whole_number_of_picodollars(
    price: ModelPrice, usage: Usage, tier: str | None, batch: bool
) -> None:
    """Every cost from the shipped table is an exact multiple of 1e-12 USD."""
    cost = compute_cost(price, usage, service_tier=tier, batch=batch)
    assert cost.usd == Decimal(cost.picodollars).scaleb(-12)
    assert cost.usd.scaleb(12) % 1 == 0
    assert sum(cost.breakdown().values()) == cost.usd


@given(
    price=shipped,
    usage=usages,
    field=st.sampled_from(COUNTS),
    more=st.integers(min_value=1, max_value=10**6),
    tier=st.sampled_from([None, "flex", "priority"]),
    batch=st.booleans(),
)
def test_cost_never_decreases_when_a_token_count_grows(
    price: ModelPrice, usage: Usage, field: str, more: int, tier: str | None, batch: bool
) -> None:
    """For every shipped model, more tokens of any class never cost less (thresholds included)."""
    grown = Usage(**{f: getattr(usage, f) + (more if f == field else 0) for f in COUNTS})
    before = compute_cost(price, usage, service_tier=tier, batch=batch).usd
    assert compute_cost(price, grown, service_tier=tier, batch=batch).usd >= before


@pytest.mark.parametrize(
    ("tier", "batch"), [(None, False), ("flex", False), ("priority", False), (None, True)]
)
def test_crossing_a_long_context_threshold_never_lowers_any_rate(
    tier: str | None, batch: bool
) -> None:
    """For every shipped model and variant, one more prompt token past a threshold costs no less."""
    for name in TABLE:
        price = TABLE.require(name)
        for long in price.long_context:
            below = price.rates_for(prompt_tokens=long.above, service_tier=tier, batch=batch)
            above = price.rates_for(prompt_tokens=long.above + 1, service_tier=tier, batch=batch)
            for field in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h"):
                assert getattr(above, field) >= getattr(below, field), (name, field)
