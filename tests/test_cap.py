"""Cap and CapLayer: output limits filled in and lowered, cost ceilings, long prompts."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costguard
from costguard._call import Call, ClientInfo, Outcome
from costguard._errors import BudgetExceededError
from costguard._scope import Scope
from costguard.layers.cap import CapLayer
from costguard.providers import Operation, operations_for
from costguard.spend import Cap
from costguard.testing import FakeProvider

TABLE = costguard.PriceTable.default()
OPS: dict[str, Operation] = {
    op.name: op for provider in ("openai", "anthropic") for op in operations_for(provider)
}
HI = [{"role": "user", "content": "hi"}]
MILLION = Decimal(1_000_000)

MakeGuard = Callable[..., costguard.CostGuardClient]


@pytest.fixture
def make_guard(tmp_path: Path) -> Iterator[MakeGuard]:
    guards: list[costguard.CostGuardClient] = []

    def make(cap: Cap, prices: costguard.PriceTable = TABLE) -> costguard.CostGuardClient:
        guard = costguard.CostGuardClient(
            ledger=tmp_path / f"l{len(guards)}.db",
            prices=prices,
            cache=None,
            layers=[CapLayer(cap, prices)],
        )
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.close()


def call_for(op_name: str, params: Mapping[str, Any], *, feature: str | None = None) -> Call:
    op = OPS[op_name]
    return Call(
        op,
        params,
        lambda **kwargs: None,
        ClientInfo(op.provider, "https://api.example", False),
        Scope(feature=feature),
    )


def planned(cap: Cap, op_name: str, params: Mapping[str, Any], **kw: Any) -> Mapping[str, Any]:
    call = call_for(op_name, params, feature=kw.get("feature"))
    price = kw["price"] if "price" in kw else TABLE.get(str(params["model"]))
    return cap.plan(call, price)


def sent_limit(op_name: str, params: Mapping[str, Any]) -> int | None:
    return call_for(op_name, params).max_tokens


# -- filling in and lowering the output limit, in each API's own parameter ---------------


def test_openai_chat_without_a_limit_gets_max_completion_tokens(make_guard: MakeGuard) -> None:
    """An OpenAI chat call with no output limit is sent with max_completion_tokens = the cap."""
    guard = make_guard(Cap(100))
    fake = FakeProvider()
    guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o-mini", messages=HI)
    body = fake.requests[-1].json
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    row = guard.ledger.records()[-1]
    assert (row.requested_max_tokens, row.sent_max_tokens) == (None, 100)


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_openai_chat_lowers_the_parameter_the_caller_set(make_guard: MakeGuard, name: str) -> None:
    """A higher max_tokens or max_completion_tokens is lowered in place; the other is not added."""
    guard = make_guard(Cap(100))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, **{name: 5000})
    body = fake.requests[-1].json
    assert body[name] == 100
    assert {"max_tokens", "max_completion_tokens"} & body.keys() == {name}
    row = guard.ledger.records()[-1]
    assert (row.requested_max_tokens, row.sent_max_tokens) == (5000, 100)


def test_a_limit_below_the_cap_is_never_raised(make_guard: MakeGuard) -> None:
    """A caller's limit under the cap is sent exactly as given, in every API."""
    guard = make_guard(Cap(100))
    fake = FakeProvider()
    openai_client, claude = guard.wrap(fake.openai()), guard.wrap(fake.anthropic())
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=7)
    assert fake.requests[-1].json["max_tokens"] == 7
    openai_client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=20)
    assert fake.requests[-1].json["max_output_tokens"] == 20
    claude.messages.create(model="claude-haiku-4-5", messages=HI, max_tokens=9)
    assert fake.requests[-1].json["max_tokens"] == 9
    assert [r.sent_max_tokens for r in guard.ledger.records()] == [7, 20, 9]


def test_an_unchanged_call_is_passed_on_as_the_same_object() -> None:
    """When the cap changes nothing, CapLayer hands the very same Call inwards."""
    layer = CapLayer(Cap(100), TABLE)
    call = call_for("chat.completions.create", {"model": "gpt-4o-mini", "messages": HI, "n": 1})
    call = call.replace(params={**call.params, "max_tokens": 50})
    seen: list[Call] = []

    def record(inner: Call) -> Outcome:
        seen.append(inner)
        return Outcome(response=None)

    layer.handle(call, record)
    assert seen == [call] and seen[0] is call


def test_responses_api_uses_max_output_tokens(make_guard: MakeGuard) -> None:
    """The Responses API gets max_output_tokens filled in, and lowered when higher."""
    guard = make_guard(Cap(100))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.responses.create(model="gpt-4o-mini", input="hi")
    assert fake.requests[-1].json["max_output_tokens"] == 100
    client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=4000)
    assert fake.requests[-1].json["max_output_tokens"] == 100
    assert [r.sent_max_tokens for r in guard.ledger.records()] == [100, 100]


def test_responses_api_never_gets_less_than_its_minimum_of_16() -> None:
    """A cap under 16 sends 16 to the Responses API (which refuses less), never above the
    caller's own smaller value."""
    params = {"model": "gpt-4o-mini", "input": "hi"}
    assert sent_limit("responses.create", planned(Cap(5), "responses.create", params)) == 16
    own = {**params, "max_output_tokens": 10}
    assert planned(Cap(5), "responses.create", own) is own


def test_anthropic_max_tokens_is_lowered(make_guard: MakeGuard) -> None:
    """An Anthropic max_tokens above the cap is lowered to it."""
    guard = make_guard(Cap(100))
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(model="claude-haiku-4-5", messages=HI, max_tokens=8000)
    assert fake.requests[-1].json["max_tokens"] == 100
    row = guard.ledger.records()[-1]
    assert (row.requested_max_tokens, row.sent_max_tokens) == (8000, 100)


def test_anthropic_message_stream_helper_is_capped(make_guard: MakeGuard) -> None:
    """messages.stream() sends the capped max_tokens too."""
    guard = make_guard(Cap(100))
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    with claude.messages.stream(model="claude-haiku-4-5", messages=HI, max_tokens=8000) as s:
        s.get_final_message()
    assert fake.requests[-1].json["max_tokens"] == 100
    assert guard.ledger.records()[-1].sent_max_tokens == 100


def test_embeddings_pass_through_untouched() -> None:
    """Embeddings have no output limit: their parameters are returned as they came."""
    cap = Cap(5, max_cost_usd="0.0000001", max_input_tokens=1)
    params = {"model": "text-embedding-3-small", "input": "hello " * 100}
    assert planned(cap, "embeddings.create", params) is params


def test_thinking_budget_that_no_longer_fits_is_refused() -> None:
    """Lowering Anthropic max_tokens to or below thinking.budget_tokens is refused up front."""
    params = {
        "model": "claude-sonnet-4-6",
        "messages": HI,
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    with pytest.raises(costguard.InvalidRequestError, match="budget_tokens") as caught:
        planned(Cap(1024), "messages.create", params)
    assert caught.value.field == "thinking.budget_tokens"
    assert planned(Cap(4096), "messages.create", params)["max_tokens"] == 4096


# -- per feature ------------------------------------------------------------------------


def test_per_feature_cap_applies_inside_that_feature(make_guard: MakeGuard) -> None:
    """Calls in a listed feature get its cap; other features and no feature get the default."""
    guard = make_guard(Cap(1024, per_feature={"classify": 5}))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(feature="classify"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    with guard.scope(feature="chat"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    sent = [r.json["max_completion_tokens"] for r in fake.requests]
    assert sent == [5, 1024, 1024]
    assert [r.feature for r in guard.ledger.records()] == ["classify", "chat", None]


def test_a_none_per_feature_value_lifts_the_default() -> None:
    """per_feature={"essay": None} means no cap for that feature, whatever the default."""
    cap = Cap(100, per_feature={"essay": None})
    params = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 3000}
    assert planned(cap, "chat.completions.create", params, feature="essay") is params
    assert cap.limit_for("essay") is None and cap.limit_for("other") == 100


# -- the model's own maximum --------------------------------------------------------------


def test_model_maximum_bounds_the_limit() -> None:
    """No limit above the model's max output is sent, whether the caller's or the cap's."""
    most = TABLE.require("gpt-4o-mini").max_output_tokens
    assert most is not None
    asked = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": most * 4}
    assert planned(Cap(), "chat.completions.create", asked)["max_tokens"] == most
    bare = {"model": "gpt-4o-mini", "messages": HI}
    filled = planned(Cap(10**9), "chat.completions.create", bare)
    assert filled["max_completion_tokens"] == most
    assert planned(Cap(), "chat.completions.create", bare) is bare  # nothing to fill in


# -- max_cost_usd -----------------------------------------------------------------------


def test_max_cost_picks_the_largest_output_limit_that_fits(make_guard: MakeGuard) -> None:
    """The limit sent is the largest L with prompt cost + L output tokens <= max_cost_usd."""
    ceiling = Decimal("0.001")
    guard = make_guard(Cap(max_cost_usd=ceiling))
    fake = FakeProvider()
    guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o", messages=HI)
    sent = fake.requests[-1].json["max_completion_tokens"]

    prompt = costguard.count_tokens("gpt-4o", HI)
    rates = TABLE.require("gpt-4o").rates_for(prompt_tokens=prompt)

    def worst(limit: int) -> Decimal:
        return (prompt * rates.input + limit * rates.output) / MILLION

    assert worst(sent) <= ceiling < worst(sent + 1)
    assert sent == (ceiling * MILLION - prompt * rates.input) // rates.output
    assert guard.ledger.records()[-1].sent_max_tokens == sent


def test_max_cost_counts_the_anthropic_system_prompt_and_tools() -> None:
    """The prompt priced for the ceiling includes Anthropic's system prompt and tools."""
    tools = [{"name": "lookup", "description": "Look a word up.", "input_schema": {}}]
    params = {
        "model": "claude-haiku-4-5",
        "messages": HI,
        "system": "You are a careful assistant. " * 20,
        "tools": tools,
        "max_tokens": 64_000,
    }
    ceiling = Decimal("0.002")
    prompt = costguard.count_tokens("claude-haiku-4-5", HI, system=params["system"], tools=tools)
    rates = TABLE.require("claude-haiku-4-5").rates_for(prompt_tokens=prompt)
    expected = (ceiling * MILLION - prompt * rates.input) // rates.output
    assert planned(Cap(max_cost_usd=ceiling), "messages.create", params)["max_tokens"] == expected


def test_max_cost_counts_responses_instructions() -> None:
    """The Responses API's instructions are priced as a system message."""
    params = {"model": "gpt-4o", "input": "hi", "instructions": "Answer in French. " * 30}
    ceiling = Decimal("0.001")
    messages = [{"role": "user", "content": "hi"}]
    prompt = costguard.count_tokens("gpt-4o", messages, system=params["instructions"])
    rates = TABLE.require("gpt-4o").base
    expected = (ceiling * MILLION - prompt * rates.input) // rates.output
    result = planned(Cap(max_cost_usd=ceiling), "responses.create", params)
    assert result["max_output_tokens"] == expected


def test_max_cost_uses_long_context_rates_for_a_long_prompt() -> None:
    """A prompt over a long-context threshold is priced at the long-context rates."""
    table = TABLE.override(
        "gpt-4o-mini",
        input="1",
        output="2",
        long_context=[{"above": 5, "base": {"input": "10", "output": "20"}}],
    )
    price = table.require("gpt-4o-mini")
    prompt = costguard.count_tokens("gpt-4o-mini", HI)
    assert prompt > 5
    ceiling = Decimal("0.01")
    params = {"model": "gpt-4o-mini", "messages": HI}
    sent = planned(Cap(max_cost_usd=ceiling), "chat.completions.create", params, price=price)
    expected = (ceiling * MILLION - prompt * Decimal(10)) // Decimal(20)
    assert sent["max_completion_tokens"] == expected


def test_max_cost_pays_for_every_choice_when_n_is_above_one() -> None:
    """With n choices the output allowance is shared: each choice may write the limit."""
    ceiling = Decimal("0.001")
    one = {"model": "gpt-4o", "messages": HI}
    three = {**one, "n": 3}
    prompt = costguard.count_tokens("gpt-4o", HI)
    rates = TABLE.require("gpt-4o").base
    expected = (ceiling * MILLION - prompt * rates.input) // (3 * rates.output)
    cap = Cap(max_cost_usd=ceiling)
    assert planned(cap, "chat.completions.create", three)["max_completion_tokens"] == expected
    assert planned(cap, "chat.completions.create", one)["max_completion_tokens"] > expected


def test_one_output_token_over_the_ceiling_is_refused_before_sending(
    make_guard: MakeGuard,
) -> None:
    """A ceiling exactly worth the prompt plus one token sends 1; a picodollar less refuses."""
    prompt = costguard.count_tokens("gpt-4o", HI)
    rates = TABLE.require("gpt-4o").base
    exact = (prompt * rates.input + rates.output) / MILLION
    params = {"model": "gpt-4o", "messages": HI}
    fits = planned(Cap(max_cost_usd=exact), "chat.completions.create", params)
    assert fits["max_completion_tokens"] == 1

    short = exact - Decimal("1e-12")
    guard = make_guard(Cap(max_cost_usd=short))
    fake = FakeProvider()
    with pytest.raises(BudgetExceededError, match="max_cost_usd") as caught:
        guard.wrap(fake.openai()).chat.completions.create(**params)
    error = caught.value
    assert (error.budget, error.key, error.limit) == ("max_cost_usd", None, short)
    assert (error.spent, error.reserved, error.worst_case) == (0, 0, exact)
    assert fake.requests == []


def test_a_prompt_that_alone_costs_more_than_the_ceiling_is_refused() -> None:
    """When the input alone exceeds max_cost_usd the call is refused with BudgetExceededError."""
    long_prompt = [{"role": "user", "content": "word " * 5000}]
    params = {"model": "gpt-4o", "messages": long_prompt, "max_tokens": 10}
    with pytest.raises(BudgetExceededError) as caught:
        planned(Cap(max_cost_usd="0.001"), "chat.completions.create", params)
    prompt = costguard.count_tokens("gpt-4o", long_prompt)
    rates = TABLE.require("gpt-4o").base
    assert caught.value.worst_case == (prompt * rates.input + rates.output) / MILLION
    assert caught.value.worst_case > Decimal("0.001")


def test_max_cost_for_an_unpriced_model_is_refused_never_free(make_guard: MakeGuard) -> None:
    """With max_cost_usd set, a model without a price raises UnknownModelPriceError unsent."""
    guard = make_guard(Cap(max_cost_usd="0.01"))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with (
        pytest.warns(costguard.CostGuardWarning, match="my-finetune"),
        pytest.raises(costguard.UnknownModelPriceError, match="my-finetune"),
    ):
        client.chat.completions.create(model="my-finetune", messages=HI)
    assert fake.requests == []


def test_a_priced_custom_model_is_counted_as_its_provider_counts() -> None:
    """A priced model whose tokenizer costguard cannot tell is counted like gpt-4o."""
    price = TABLE.override("acme-chat", input="2.5", output="10", provider="openai").require(
        "acme-chat"
    )
    ceiling = Decimal("0.001")
    prompt = costguard.count_tokens("gpt-4o", HI)
    expected = (ceiling * MILLION - prompt * Decimal("2.5")) // Decimal(10)
    params = {"model": "acme-chat", "messages": HI}
    sent = planned(Cap(max_cost_usd=ceiling), "chat.completions.create", params, price=price)
    assert sent["max_completion_tokens"] == expected


# -- long prompts -----------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You are terse."}
CHAT_HISTORY: list[dict[str, Any]] = [
    SYSTEM,
    {"role": "user", "content": "First question. " + "alpha " * 60},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "alpha"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "result " * 40},
    {"role": "assistant", "content": "Answer one. " * 20},
    {"role": "user", "content": "Second question. " + "beta " * 60},
    {"role": "assistant", "content": "Answer two. " * 20},
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": "Third question."},
]
CALL_AT, RESULT_AT = 2, 3


def chat_count(messages: list[Any]) -> int:
    return costguard.count_tokens("gpt-4o-mini", messages)


def test_long_input_is_refused_by_default_naming_the_limit_and_size(
    make_guard: MakeGuard,
) -> None:
    """Over max_input_tokens, on_long_input="refuse" raises InvalidRequestError, nothing sent."""
    guard = make_guard(Cap(max_input_tokens=50))
    fake = FakeProvider()
    with pytest.raises(costguard.InvalidRequestError) as caught:
        guard.wrap(fake.openai()).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT_HISTORY
        )
    message = str(caught.value)
    assert "max_input_tokens=50" in message
    assert f"{chat_count(CHAT_HISTORY):,} tokens" in message
    assert caught.value.field == "messages"
    assert fake.requests == []


def test_trim_drops_the_oldest_turn_only_as_far_as_needed(make_guard: MakeGuard) -> None:
    """Trimming drops the first turn (its tool call and result with it) and nothing more."""
    expected = [SYSTEM, *CHAT_HISTORY[5:]]
    guard = make_guard(Cap(max_input_tokens=chat_count(expected), on_long_input="trim"))
    fake = FakeProvider()
    guard.wrap(fake.openai()).chat.completions.create(model="gpt-4o-mini", messages=CHAT_HISTORY)
    assert fake.requests[-1].json["messages"] == expected


@given(st.integers(min_value=0, max_value=400))
def test_trim_keeps_system_messages_the_last_user_turn_and_tool_pairs(slack: int) -> None:
    """For any limit that the system messages and last user turn fit, the trimmed prompt
    fits, keeps them, drops only the oldest messages, and keeps tool call and result together.
    """
    required = [SYSTEM, CHAT_HISTORY[7], CHAT_HISTORY[8]]
    limit = chat_count(required) + slack
    params = {"model": "gpt-4o-mini", "messages": CHAT_HISTORY}
    cap = Cap(max_input_tokens=limit, on_long_input="trim")
    sent = list(planned(cap, "chat.completions.create", params)["messages"])
    assert chat_count(sent) <= limit
    assert all(m in sent for m in required)
    assert (CHAT_HISTORY[CALL_AT] in sent) == (CHAT_HISTORY[RESULT_AT] in sent)
    dropped = [i for i, m in enumerate(CHAT_HISTORY) if m not in sent]
    assert dropped == list(range(1, 1 + len(dropped)))  # the oldest, after the system message


def test_trim_refuses_when_system_and_last_user_turn_alone_are_too_long() -> None:
    """If even the system messages and the last user turn exceed the limit, trim refuses."""
    required = chat_count([SYSTEM, CHAT_HISTORY[7], CHAT_HISTORY[8]])
    cap = Cap(max_input_tokens=required - 1, on_long_input="trim")
    params = {"model": "gpt-4o-mini", "messages": CHAT_HISTORY}
    with pytest.raises(costguard.InvalidRequestError, match=r"max_input_tokens.*last user turn"):
        planned(cap, "chat.completions.create", params)


CLAUDE_SYSTEM = "You are terse."
CLAUDE_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "First question. " + "alpha " * 60},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "alpha"}},
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "res " * 40}],
    },
    {"role": "assistant", "content": "Answer one. " * 20},
    {"role": "user", "content": "Second question. " + "beta " * 60},
    {"role": "assistant", "content": "Answer two. " * 20},
    {"role": "user", "content": "Third question."},
]


def claude_count(messages: list[Any]) -> int:
    return costguard.count_tokens("claude-haiku-4-5", messages, system=CLAUDE_SYSTEM)


@given(st.integers(min_value=0, max_value=400))
def test_anthropic_trim_never_separates_tool_use_from_tool_result(slack: int) -> None:
    """Anthropic trimming keeps tool_use and tool_result together and starts on a user turn."""
    limit = claude_count(CLAUDE_HISTORY[-1:]) + slack
    params = {
        "model": "claude-haiku-4-5",
        "system": CLAUDE_SYSTEM,
        "messages": CLAUDE_HISTORY,
        "max_tokens": 100,
    }
    cap = Cap(max_input_tokens=limit, on_long_input="trim")
    sent = list(planned(cap, "messages.create", params)["messages"])
    assert claude_count(sent) <= limit
    assert sent[-1] == CLAUDE_HISTORY[-1] and sent[0]["role"] == "user"
    assert (CLAUDE_HISTORY[1] in sent) == (CLAUDE_HISTORY[2] in sent)
    assert sent == CLAUDE_HISTORY[len(CLAUDE_HISTORY) - len(sent) :]


def test_anthropic_trim_through_an_async_client(make_guard: MakeGuard) -> None:
    """An async Anthropic client sends the trimmed conversation and the capped max_tokens."""
    expected = CLAUDE_HISTORY[4:]
    guard = make_guard(Cap(50, max_input_tokens=claude_count(expected), on_long_input="trim"))
    fake = FakeProvider()
    claude = guard.wrap(fake.async_anthropic())

    async def main() -> None:
        await claude.messages.create(
            model="claude-haiku-4-5",
            system=CLAUDE_SYSTEM,
            messages=CLAUDE_HISTORY,
            max_tokens=1000,
        )

    asyncio.run(main())
    body = fake.requests[-1].json
    assert body["messages"] == expected and body["max_tokens"] == 50
    assert guard.ledger.records()[-1].sent_max_tokens == 50


def test_responses_trim_keeps_function_call_with_its_output() -> None:
    """Responses input items sharing a call_id are dropped together with their turn."""
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "First question. " + "alpha " * 60},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "res " * 40},
        {"role": "assistant", "content": "Answer one. " * 20},
        {"role": "user", "content": "Second question."},
    ]
    roled = [{**i, "role": "user"} if "role" not in i else i for i in items]
    last = costguard.count_tokens("gpt-4o-mini", roled[-1:], system="Be kind.")
    params = {"model": "gpt-4o-mini", "input": items, "instructions": "Be kind."}
    cap = Cap(max_input_tokens=last, on_long_input="trim")
    assert planned(cap, "responses.create", params)["input"] == items[-1:]


def test_a_call_and_its_result_stay_together_even_with_a_turn_between_them() -> None:
    """Items sharing a call_id are one unit even when a user turn sits between them."""
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "First question. " + "alpha " * 60},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        {"role": "user", "content": "Also this."},
        {"type": "function_call_output", "call_id": "call_1", "output": "res " * 40},
        {"role": "assistant", "content": "Answer one. " * 20},
        {"role": "user", "content": "Second question."},
    ]
    roled = [{**i, "role": "user"} if "role" not in i else i for i in items]
    split_off = costguard.count_tokens("gpt-4o-mini", roled[2:])  # would orphan the output
    params = {"model": "gpt-4o-mini", "input": items}
    cap = Cap(max_input_tokens=split_off, on_long_input="trim")
    assert planned(cap, "responses.create", params)["input"] == items[-1:]


def test_sdk_message_objects_are_counted_and_kept(make_guard: MakeGuard) -> None:
    """A previous answer sent back as an SDK object is counted and survives trimming intact."""
    guard = make_guard(Cap(max_input_tokens=10_000, on_long_input="trim"))
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    first = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    messages = [*HI, first.choices[0].message, {"role": "user", "content": "more"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert [m["role"] for m in fake.requests[-1].json["messages"]] == ["user", "assistant", "user"]


# -- construction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"default": 0}, "default"),
        ({"default": -3}, "default"),
        ({"default": 2.5}, "default"),
        ({"default": True}, "default"),
        ({"default": "100"}, "default"),
        ({"per_feature": {"classify": 0}}, "per_feature['classify']"),
        ({"per_feature": {"classify": False}}, "per_feature['classify']"),
        ({"per_feature": {3: 5}}, "per_feature"),
        ({"per_feature": [("classify", 5)]}, "per_feature"),
        ({"max_input_tokens": 0}, "max_input_tokens"),
        ({"max_input_tokens": 1.0}, "max_input_tokens"),
        ({"max_cost_usd": 0}, "max_cost_usd"),
        ({"max_cost_usd": "-0.01"}, "max_cost_usd"),
        ({"max_cost_usd": float("nan")}, "max_cost_usd"),
        ({"max_cost_usd": Decimal("NaN")}, "max_cost_usd"),
        ({"max_cost_usd": float("inf")}, "max_cost_usd"),
        ({"max_cost_usd": "Infinity"}, "max_cost_usd"),
        ({"max_cost_usd": "cheap"}, "max_cost_usd"),
        ({"max_cost_usd": True}, "max_cost_usd"),
        ({"max_cost_usd": [1]}, "max_cost_usd"),
        ({"on_long_input": "drop"}, "on_long_input"),
    ],
)
def test_bad_construction_values_raise_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    """A bad limit, ceiling or on_long_input raises ConfigurationError naming the field."""
    with pytest.raises(costguard.ConfigurationError, match=re.escape(field)):
        Cap(**kwargs)


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        (0.1, Decimal("0.1")),
        ("0.05", Decimal("0.05")),
        (2, Decimal(2)),
        (Decimal("0.003"), Decimal("0.003")),
    ],
)
def test_max_cost_usd_is_held_as_an_exact_decimal(given_value: Any, expected: Decimal) -> None:
    """max_cost_usd accepts str, int, Decimal and float (via its shortest decimal form)."""
    assert Cap(max_cost_usd=given_value).max_cost_usd == expected


def test_cap_layer_wants_a_cap() -> None:
    """CapLayer refuses anything but a Cap."""
    with pytest.raises(costguard.ConfigurationError):
        CapLayer({"default": 5}, TABLE)  # type: ignore[arg-type]  # the mistake under test


# -- async ------------------------------------------------------------------------------


def test_async_openai_calls_are_capped_and_refused_like_sync_ones(make_guard: MakeGuard) -> None:
    """An async OpenAI client gets the same filled-in limit and the same refusal."""
    guard = make_guard(Cap(64, per_feature={"tiny": 3}, max_cost_usd="0.0001"))
    fake = FakeProvider()
    client = guard.wrap(fake.async_openai())
    long_prompt = [{"role": "user", "content": "word " * 2000}]

    async def main() -> None:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        with guard.scope(feature="tiny"):
            await client.responses.create(model="gpt-4o-mini", input="hi")
        with pytest.raises(BudgetExceededError):
            await client.chat.completions.create(model="gpt-4o", messages=long_prompt)

    asyncio.run(main())
    assert [r.json.get("max_completion_tokens") for r in fake.requests[:1]] == [64]
    assert fake.requests[1].json["max_output_tokens"] == 16
    assert len(fake.requests) == 2
    assert [r.sent_max_tokens for r in guard.ledger.records()][:2] == [64, 16]


# -- properties -------------------------------------------------------------------------

LIMIT_OPS = {
    "chat.completions.create": ("max_completion_tokens", "max_tokens"),
    "responses.create": ("max_output_tokens",),
    "messages.create": ("max_tokens",),
}
BASE_PRICE = TABLE.require("gpt-4o-mini")


@given(
    op_name=st.sampled_from(sorted(LIMIT_OPS)),
    which=st.integers(min_value=0, max_value=1),
    asked=st.none() | st.integers(min_value=1, max_value=10**7),
    cap=st.none() | st.integers(min_value=1, max_value=10**7),
    model_max=st.none() | st.integers(min_value=1, max_value=10**7),
    ceiling=st.none() | st.decimals(min_value="0.000001", max_value="10", places=6),
)
def test_the_sent_limit_never_exceeds_any_bound(
    op_name: str,
    which: int,
    asked: int | None,
    cap: int | None,
    model_max: int | None,
    ceiling: Decimal | None,
) -> None:
    """The limit sent is >= 1 and at most the caller's, the cap (16 for the Responses API's
    floor), the model's maximum and what the ceiling pays for; it is never raised."""
    names = LIMIT_OPS[op_name]
    if op_name == "messages.create" and asked is None:
        asked = 4096  # Anthropic always carries max_tokens
    params: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HI, "input": "hi"}
    params.pop("input" if op_name != "responses.create" else "messages")
    if asked is not None:
        params[names[which % len(names)]] = asked
    price = dataclasses.replace(BASE_PRICE, max_output_tokens=model_max)
    policy = Cap(cap, max_cost_usd=ceiling)
    try:
        result = planned(policy, op_name, params, price=price)
    except BudgetExceededError as refused:
        assert ceiling is not None and refused.worst_case > ceiling
        return
    sent = sent_limit(op_name, result)
    if sent is None:
        assert asked is None and cap is None
        return
    floor = 16 if op_name == "responses.create" else 1
    assert sent >= 1
    assert asked is None or sent <= asked
    assert cap is None or sent <= max(cap, floor)
    assert model_max is None or sent <= model_max
    if ceiling is not None:
        prompt = costguard.count_tokens("gpt-4o-mini", HI)
        rates = price.rates_for(prompt_tokens=prompt)
        assert (prompt * rates.input + sent * rates.output) / MILLION <= ceiling
