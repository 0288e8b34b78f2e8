"""Provider prompt caching: Anthropic breakpoints where they pay, OpenAI prompt_cache_key."""

from __future__ import annotations

import asyncio
import copy
import typing
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costguard
from _helpers import Clock
from costguard._call import Call, ClientInfo, Outcome
from costguard._scope import Scope, ScopeManager
from costguard.layers import promptcache
from costguard.layers.promptcache import (
    MAX_BREAKPOINTS,
    PromptCacheLayer,
    PromptCaching,
    breakpoint_saving,
    min_cacheable_tokens,
    model_family,
)
from costguard.providers import operations_for
from costguard.testing import FakeProvider

TABLE = costguard.PriceTable.default()
MILLION = Decimal(1_000_000)
SONNET = "claude-sonnet-4-6"  # 1024-token minimum
HAIKU = "claude-haiku-4-5"  # 4096-token minimum
LONG_SYSTEM = "You are a careful support agent for Acme Cloud. " * 250  # ~2,800 Claude tokens
SHORT_SYSTEM = "You are terse."
TOOLS = [
    {
        "name": "lookup_order",
        "description": "Find an order by its id.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
    }
]
ANTHROPIC_OPS = {op.name: op for op in operations_for("anthropic")}
OPENAI_OPS = {op.name: op for op in operations_for("openai")}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def turns(*texts: str) -> list[dict[str, Any]]:
    """Alternating user / assistant messages, starting with the user."""
    return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]


def marks(value: Any) -> list[Mapping[str, Any]]:
    """Every cache_control mark inside ``value`` (request JSON), in order."""
    found: list[Mapping[str, Any]] = []
    if isinstance(value, Mapping):
        if isinstance(value.get("cache_control"), Mapping):
            found.append(value["cache_control"])
        for key, item in value.items():
            if key != "cache_control":
                found += marks(item)
    elif isinstance(value, list):
        for item in value:
            found += marks(item)
    return found


def cost(usage: costguard.Usage, rates: costguard.Rates) -> Decimal:
    """What ``usage`` costs at ``rates``, computed here, independently of the pricing code."""
    return (
        usage.input_tokens * rates.input
        + usage.cache_read_tokens * rates.cache_read
        + usage.cache_write_5m_tokens * rates.cache_write_5m
        + usage.cache_write_1h_tokens * rates.cache_write_1h
        + usage.output_tokens * rates.output
    ) / MILLION


def call_for(op_name: str, params: Mapping[str, Any], scope: Scope | None = None) -> Call:
    op = {**ANTHROPIC_OPS, **OPENAI_OPS}[op_name]
    return Call(
        op,
        params,
        lambda **kwargs: None,
        ClientInfo(op.provider, "https://api.example", False),
        scope or Scope(),
    )


@pytest.fixture
def make_guard(tmp_path: Path) -> Iterator[Any]:
    guards: list[costguard.CostGuardClient] = []

    def make(**kwargs: Any) -> costguard.CostGuardClient:
        guard = costguard.CostGuardClient(
            ledger=tmp_path / f"ledger{len(guards)}.db", cache=None, **kwargs
        )
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.close()


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("sometimes", "mode"),
        (True, "mode"),
        (PromptCaching, "mode"),  # the class, not an instance
    ],
)
def test_a_bad_guard_setting_is_a_configuration_error(setting: Any, problem: str) -> None:
    """An unknown prompt_caching= value raises ConfigurationError naming the mode."""
    with pytest.raises(costguard.ConfigurationError, match=problem):
        costguard.CostGuardClient(ledger=":memory:", cache=None, prompt_caching=setting)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"mode": "on"}, "mode"),
        ({"ttl": "10m"}, "ttl"),
        ({"ttl": 300}, "ttl"),
        ({"expected_reads": -1}, "expected_reads"),
        ({"expected_reads": "many"}, "expected_reads"),
        ({"expected_reads": float("nan")}, "expected_reads"),
        ({"expected_reads": float("inf")}, "expected_reads"),
        ({"expected_reads": True}, "expected_reads"),
    ],
)
def test_a_bad_policy_is_a_configuration_error(kwargs: dict[str, Any], problem: str) -> None:
    """PromptCaching refuses an unknown mode or ttl and a negative or non-numeric read count."""
    with pytest.raises(costguard.ConfigurationError, match=problem):
        PromptCaching(**kwargs)


def test_expected_reads_are_kept_exactly() -> None:
    """expected_reads given as float, int or str is stored as the exact Decimal it reads as."""
    assert PromptCaching(expected_reads=0.3).expected_reads == Decimal("0.3")
    assert PromptCaching(expected_reads="2.5").reads == Decimal("2.5")
    assert PromptCaching(expected_reads=0).reads == 0


def test_an_unknown_scope_setting_is_a_configuration_error(make_guard: Any) -> None:
    """A scope's prompt_caching other than auto / off raises ConfigurationError where the
    scope is made, by guard.scope or by hand."""
    guard = make_guard()
    with pytest.raises(costguard.ConfigurationError, match="always"):
        guard.scope(prompt_caching="always")
    with pytest.raises(costguard.ConfigurationError, match="always"):
        ScopeManager(Scope(prompt_caching="always"))


def test_the_model_table_resolves_snapshots_and_cloud_ids() -> None:
    """Dated, Bedrock and Vertex names find their family; an unknown family gets 4096."""
    assert model_family("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert model_family("us.anthropic.claude-3-5-haiku-20241022-v1:0") == "claude-3-5-haiku"
    assert model_family("claude-3-5-sonnet-v2@20241022") == "claude-3-5-sonnet"
    assert min_cacheable_tokens("claude-3-haiku-20240307") == 2048
    assert min_cacheable_tokens("claude-opus-4-5-20251101") == 4096
    assert min_cacheable_tokens("claude-opus-4-20250514") == 1024
    assert min_cacheable_tokens("claude-someday-9") == promptcache.DEFAULT_MIN_CACHEABLE_TOKENS


def test_the_cacheable_block_types_match_the_sdk() -> None:
    """The content blocks given breakpoints are exactly those the SDK lets carry cache_control."""
    sdk = set()
    for block in typing.get_args(anthropic.types.ContentBlockParam):
        hints = typing.get_type_hints(block)
        if "cache_control" in hints:
            sdk.update(str(kind) for kind in typing.get_args(hints["type"]))
    assert sdk == set(promptcache._CACHEABLE_BLOCKS)


# -- Anthropic: where breakpoints go ---------------------------------------------------


def test_breakpoints_close_the_system_prompt_and_the_earlier_turns(make_guard: Any) -> None:
    """With auto, the system prompt and the turns before the last user message get 5m
    breakpoints; the last user message and short tools do not; the caller's params are kept."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    messages = turns("Where is order 42?", "It shipped on Monday.", "And order 43?")
    tools = copy.deepcopy(TOOLS)
    before = copy.deepcopy((messages, tools))
    claude.messages.create(
        model=SONNET, max_tokens=50, system=LONG_SYSTEM, tools=tools, messages=messages
    )
    body = fake.requests[-1].json
    mark = {"type": "ephemeral", "ttl": "5m"}
    assert body["system"] == [{"type": "text", "text": LONG_SYSTEM, "cache_control": mark}]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "It shipped on Monday.", "cache_control": mark}
    ]
    assert body["messages"][2]["content"] == "And order 43?"
    assert "cache_control" not in body["tools"][0]  # tools alone are under 1024 tokens
    assert (messages, tools) == before


def test_a_short_prompt_gets_no_breakpoint(make_guard: Any) -> None:
    """A stable prefix under the model's minimum is sent as it was given."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(
        model=SONNET, max_tokens=10, system=SHORT_SYSTEM, messages=turns("a", "b", "c")
    )
    assert marks(fake.requests[-1].json) == []
    assert fake.requests[-1].json["system"] == SHORT_SYSTEM


def test_the_minimum_length_depends_on_the_model_family(make_guard: Any) -> None:
    """A ~2,800-token system prompt is cached for Sonnet 4.6 (1024) but not Haiku 4.5 (4096)."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    for model in (SONNET, HAIKU):
        claude.messages.create(
            model=model, max_tokens=10, system=LONG_SYSTEM, messages=[user("hi")]
        )
    sonnet, haiku = (marks(r.json) for r in fake.requests)
    assert len(sonnet) == 1 and haiku == []


@pytest.mark.parametrize(
    ("ttl", "reads", "placed"),
    [
        ("5m", "0.27", False),  # 0.27 * 0.9 < 0.25 premium
        ("5m", "0.28", True),
        ("1h", "1", False),  # 0.9 < 1.0 premium
        ("1h", "1.12", True),
        ("5m", "0", False),
    ],
)
def test_a_breakpoint_is_placed_only_when_the_reads_pay_for_the_write(
    make_guard: Any, ttl: str, reads: str, placed: bool
) -> None:
    """Expected reads must save more than the write premium of the chosen TTL."""
    guard = make_guard(prompt_caching=PromptCaching(ttl=ttl, expected_reads=reads))
    fake = FakeProvider()
    guard.wrap(fake.anthropic()).messages.create(
        model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("hi")]
    )
    assert marks(fake.requests[-1].json) == ([{"type": "ephemeral", "ttl": ttl}] if placed else [])


def test_the_callers_breakpoints_are_kept_and_only_later_ones_added(make_guard: Any) -> None:
    """A caller's breakpoint is never moved or changed; costguard adds only after it."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    messages = turns("Question one. " * 50, "Answer one. " * 50, "Question two?")
    tools = copy.deepcopy(TOOLS)
    guard.wrap(fake.anthropic()).messages.create(
        model=SONNET, max_tokens=10, system=system, tools=tools, messages=messages
    )
    body = fake.requests[-1].json
    assert body["system"] == system
    assert "cache_control" not in body["tools"][0]  # before the caller's: not added
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert len(marks(body)) == 2


def test_four_breakpoints_of_the_caller_leave_no_room(make_guard: Any) -> None:
    """With the caller's 4 breakpoints (a top-level one counts) nothing is added."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    mark = {"type": "ephemeral"}
    system = [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": mark},
        {"type": "text", "text": LONG_SYSTEM, "cache_control": mark},
    ]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "one", "cache_control": mark}]},
        {"role": "assistant", "content": "Answer one. " * 300},
        user("two"),
    ]
    claude.messages.create(
        model=SONNET, max_tokens=10, system=system, messages=messages, cache_control=mark
    )
    assert len(marks(fake.requests[-1].json)) == 4  # the top-level one included
    assert fake.requests[-1].json["messages"][1]["content"] == "Answer one. " * 300


def test_a_top_level_cache_control_takes_one_of_the_four(make_guard: Any) -> None:
    """Automatic caching uses one slot: with 2 caller breakpoints and it, only 1 is added."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    mark = {"type": "ephemeral"}
    tools = [{**TOOLS[0], "cache_control": mark}]
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": mark}]
    messages = turns("Question one. " * 50, "Answer one. " * 50, "Question two?")
    guard.wrap(fake.anthropic()).messages.create(
        model=SONNET,
        max_tokens=10,
        tools=tools,
        system=system,
        messages=messages,
        cache_control=mark,
    )
    body = fake.requests[-1].json
    assert len(marks(body)) == 4 and body["cache_control"] == mark
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}


def test_after_a_5m_breakpoint_of_the_caller_only_5m_ones_are_added(make_guard: Any) -> None:
    """Anthropic wants 1h entries before 5m ones, so a 1h policy places 5m after a 5m mark."""
    guard = make_guard(prompt_caching=PromptCaching(ttl="1h", expected_reads=5))
    fake = FakeProvider()
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    messages = turns("Question one. " * 50, "Answer one. " * 50, "Question two?")
    response = guard.wrap(fake.anthropic()).messages.create(
        model=SONNET, max_tokens=10, system=system, messages=messages
    )
    added = fake.requests[-1].json["messages"][1]["content"][0]["cache_control"]
    assert added == {"type": "ephemeral", "ttl": "5m"}
    assert response.usage.cache_creation_input_tokens > 0  # the fake accepted the order


def test_before_a_1h_top_level_cache_control_only_1h_ones_are_added(make_guard: Any) -> None:
    """A top-level 1h cache_control comes last, so breakpoints before it are 1h ones."""
    guard = make_guard(prompt_caching=PromptCaching(expected_reads=3))
    fake = FakeProvider()
    automatic = {"type": "ephemeral", "ttl": "1h"}
    guard.wrap(fake.anthropic()).messages.create(
        model=SONNET,
        max_tokens=10,
        system=LONG_SYSTEM,
        messages=[user("hi")],
        cache_control=automatic,
    )
    body = fake.requests[-1].json
    assert body["system"][0]["cache_control"] == automatic


def test_an_unpriced_model_gets_no_breakpoints(make_guard: Any) -> None:
    """Without a price there is no way to tell whether a breakpoint pays: none is placed."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    with pytest.warns(costguard.CostGuardWarning, match="claude-private"):
        guard.wrap(fake.anthropic()).messages.create(
            model="claude-private", max_tokens=10, system=LONG_SYSTEM, messages=[user("hi")]
        )
    assert marks(fake.requests[-1].json) == []


def test_sdk_objects_in_the_history_are_left_alone(make_guard: Any) -> None:
    """An assistant turn holding the SDK's own content blocks is sent unchanged; an earlier
    plain turn carries the breakpoint instead."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    first = claude.messages.create(
        model=SONNET, max_tokens=20, system=SHORT_SYSTEM, messages=[user("Tell me. " * 400)]
    )
    history = [
        user("Tell me. " * 400),
        {"role": "assistant", "content": first.content},
        user("More?"),
    ]
    claude.messages.create(model=SONNET, max_tokens=20, system=SHORT_SYSTEM, messages=history)
    body = fake.requests[-1].json
    assert "cache_control" not in body["messages"][1]["content"][0]
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}


def test_messages_stream_and_async_clients_get_breakpoints_too(make_guard: Any) -> None:
    """messages.stream(...) and an AsyncAnthropic client are prepared like messages.create."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    with guard.wrap(fake.anthropic()).messages.stream(
        model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("one")]
    ) as stream:
        stream.get_final_message()

    async def main() -> None:
        await guard.wrap(fake.async_anthropic()).messages.create(
            model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("two")]
        )

    asyncio.run(main())
    assert [len(marks(r.json)) for r in fake.requests] == [1, 1]
    streamed, plain = guard.ledger.records()
    assert streamed.usage.cache_write_5m_tokens > 0 and streamed.stream
    assert plain.usage.cache_read_tokens == streamed.usage.cache_write_5m_tokens


# -- Anthropic: what the ledger records ------------------------------------------------


def test_a_cached_prefix_is_priced_exactly_write_then_read(make_guard: Any) -> None:
    """The first call pays the 5m write rate on the prefix, the second reads it at the read
    rate; both rows cost exactly their usage at the table's rates."""
    guard = make_guard(prompt_caching="auto")
    claude = guard.wrap(FakeProvider().anthropic())
    for question in ("Where is order 42?", "Where is order 43?"):
        claude.messages.create(
            model=SONNET, max_tokens=30, system=LONG_SYSTEM, messages=[user(question)]
        )
    first, second = guard.ledger.records()
    rates = TABLE.require(SONNET).base
    prefix = first.usage.cache_write_5m_tokens
    assert prefix > 1024 and first.usage.cache_read_tokens == 0
    assert (second.usage.cache_read_tokens, second.usage.cache_write_5m_tokens) == (prefix, 0)
    assert first.usage.cache_write_1h_tokens == second.usage.cache_write_1h_tokens == 0
    for row in (first, second):
        assert row.cost_usd == cost(row.usage, rates)
    uncached = first.usage.input_tokens + prefix
    assert first.cost_usd - cost(costguard.Usage(uncached, output_tokens=30), rates) == (
        prefix * (rates.cache_write_5m - rates.input) / MILLION
    )
    assert second.usage.input_tokens == first.usage.input_tokens
    assert (
        first.cost_usd - second.cost_usd
        == prefix * (rates.cache_write_5m - rates.cache_read) / MILLION
        + (first.usage.output_tokens - second.usage.output_tokens) * rates.output / MILLION
    )


def test_1h_writes_are_priced_at_the_1h_rate(make_guard: Any) -> None:
    """With ttl="1h" the write is reported as a 1-hour write and priced at that rate."""
    guard = make_guard(prompt_caching=PromptCaching(ttl="1h", expected_reads=4))
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(model=SONNET, max_tokens=30, system=LONG_SYSTEM, messages=[user("a")])
    [row] = guard.ledger.records()
    assert row.usage.cache_write_1h_tokens > 1024 and row.usage.cache_write_5m_tokens == 0
    assert row.raw_usage is not None
    assert row.raw_usage["cache_creation"]["ephemeral_1h_input_tokens"] == (
        row.usage.cache_write_1h_tokens
    )
    assert row.cost_usd == cost(row.usage, TABLE.require(SONNET).base)


def test_a_growing_conversation_reads_what_the_last_turn_wrote(make_guard: Any) -> None:
    """Turn 2 reads the prefix turn 1 wrote and writes only the new turns."""
    guard = make_guard(prompt_caching="auto")
    claude = guard.wrap(FakeProvider().anthropic())
    history = turns("Tell me about caching. " * 100, "Caching stores prefixes. " * 100, "Why?")
    claude.messages.create(model=SONNET, max_tokens=20, system=LONG_SYSTEM, messages=history)
    longer = [*history, {"role": "assistant", "content": "Because it saves money."}, user("How?")]
    claude.messages.create(model=SONNET, max_tokens=20, system=LONG_SYSTEM, messages=longer)
    first, second = guard.ledger.records()
    assert second.usage.cache_read_tokens == first.usage.cache_write_5m_tokens
    assert 0 < second.usage.cache_write_5m_tokens < 40


def test_the_budget_reserves_the_write_premium(make_guard: Any) -> None:
    """A budget's worst case for a call with breakpoints prices the prompt at the dearest
    write rate; without prompt caching, at the input rate."""
    worst: list[Decimal] = []
    for setting in ("auto", None):
        guard = make_guard(
            prompt_caching=setting, budgets=[costguard.Budget("0.000001", period="day")]
        )
        fake = FakeProvider()
        with pytest.raises(costguard.BudgetExceededError) as caught:
            guard.wrap(fake.anthropic()).messages.create(
                model=SONNET, max_tokens=100, system=LONG_SYSTEM, messages=[user("hi")]
            )
        assert fake.requests == []
        worst.append(caught.value.worst_case)
    rates = TABLE.require(SONNET).base
    prompt = costguard.count_tokens(SONNET, [user("hi")], system=LONG_SYSTEM)
    assert worst == [
        (prompt * rates.cache_write_1h + 100 * rates.output) / MILLION,
        (prompt * rates.input + 100 * rates.output) / MILLION,
    ]


# -- scopes and the fast path ----------------------------------------------------------


def test_a_scope_can_turn_prompt_caching_off(make_guard: Any) -> None:
    """Inside prompt_caching="off" nothing is added, though the guard has it on."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    client = guard.wrap(fake.openai())
    with guard.scope(tenant="acme", prompt_caching="off"):
        claude.messages.create(
            model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("hi")]
        )
        client.chat.completions.create(model="gpt-4o", messages=[user("hi")])
    assert marks(fake.requests[0].json) == []
    assert "prompt_cache_key" not in fake.requests[1].json


def test_a_scope_can_turn_prompt_caching_on_with_defaults(make_guard: Any) -> None:
    """A scope's "auto" enables prompt caching in a guard without it: 5m, one expected read."""
    guard = make_guard()
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("a")])
    with guard.scope(prompt_caching="auto"):
        claude.messages.create(
            model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("b")]
        )
    assert marks(fake.requests[0].json) == []
    assert marks(fake.requests[1].json) == [{"type": "ephemeral", "ttl": "5m"}]


def test_a_scope_opting_in_uses_the_guards_off_policy_settings(make_guard: Any) -> None:
    """With PromptCaching(mode="off", ttl="1h", ...) only "auto" scopes cache, at 1h."""
    guard = make_guard(prompt_caching=PromptCaching("off", ttl="1h", expected_reads=3))
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    claude.messages.create(model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("a")])
    with guard.scope(prompt_caching="auto"):
        claude.messages.create(
            model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("b")]
        )
    assert marks(fake.requests[0].json) == []
    assert marks(fake.requests[1].json) == [{"type": "ephemeral", "ttl": "1h"}]


def test_when_off_the_layer_passes_the_same_call_on() -> None:
    """Without a policy or a scope setting the very same Call object goes inwards."""
    seen: list[Call] = []

    def inner(call: Call) -> Outcome:
        seen.append(call)
        return Outcome(None)

    params = {"model": SONNET, "max_tokens": 5, "system": LONG_SYSTEM, "messages": [user("a")]}
    off = call_for("messages.create", params)
    PromptCacheLayer(None, TABLE).handle(off, inner)
    PromptCacheLayer(PromptCaching("off"), TABLE).handle(off, inner)
    embedding = call_for("embeddings.create", {"model": "text-embedding-3-small", "input": "x"})
    PromptCacheLayer(PromptCaching(), TABLE).handle(embedding, inner)
    assert seen[0] is off and seen[1] is off and seen[2] is embedding


def test_the_layer_refuses_a_policy_of_the_wrong_type() -> None:
    """PromptCacheLayer takes a PromptCaching or None."""
    with pytest.raises(costguard.ConfigurationError, match="PromptCaching"):
        PromptCacheLayer("auto", TABLE)  # type: ignore[arg-type]  # the mistake under test


# -- OpenAI ----------------------------------------------------------------------------


def test_prompt_cache_key_comes_from_the_tenant_else_the_feature(make_guard: Any) -> None:
    """chat and responses calls get costguard:tenant:<t>, else costguard:feature:<f>, else
    nothing; embeddings never get one."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tenant="acme", feature="support"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[user("a")])
        client.embeddings.create(model="text-embedding-3-small", input="a")
    with guard.scope(feature="support"):
        client.responses.create(model="gpt-4o-mini", input="a")
    client.chat.completions.create(model="gpt-4o-mini", messages=[user("a")])
    keys = [r.json.get("prompt_cache_key") for r in fake.requests]
    assert keys == ["costguard:tenant:acme", None, "costguard:feature:support", None]


def test_the_callers_prompt_cache_key_is_kept(make_guard: Any) -> None:
    """A prompt_cache_key the caller set (also through extra_body) is never replaced."""
    guard = make_guard(prompt_caching="auto")
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(tenant="acme"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[user("a")], prompt_cache_key="mine"
        )
        client.responses.create(
            model="gpt-4o-mini", input="a", extra_body={"prompt_cache_key": "theirs"}
        )
    assert [r.json["prompt_cache_key"] for r in fake.requests] == ["mine", "theirs"]


@pytest.mark.parametrize(
    "tenant", ["sk-proj-" + "a1" * 24, "acme " * 20, "tenant/with/slashes", "my_api_key_holder"]
)
def test_long_or_secret_looking_names_are_hashed(tenant: str) -> None:
    """A tenant that is long, unusual or looks like a secret never appears in the key."""
    key = promptcache.prompt_cache_key(Scope(tenant=tenant))
    assert key is not None and key.startswith("costguard:tenant#")
    assert tenant not in key and len(key) <= 64
    assert key == promptcache.prompt_cache_key(Scope(tenant=tenant, feature="other"))


def test_only_the_cache_key_is_added_to_openai_requests(make_guard: Any) -> None:
    """Everything else in the request is as the caller gave it."""
    bodies = []
    for setting in ("auto", None):
        guard = make_guard(prompt_caching=setting)
        fake = FakeProvider()
        with guard.scope(tenant="acme"):
            guard.wrap(fake.openai()).chat.completions.create(
                model="gpt-4o", messages=[user("a")], temperature=0.2, max_completion_tokens=9
            )
        bodies.append(fake.requests[-1].json)
    cached, plain = bodies
    assert cached.pop("prompt_cache_key") == "costguard:tenant:acme"
    assert cached == plain


def test_a_repeated_openai_prefix_is_read_from_the_cache_and_priced(make_guard: Any) -> None:
    """The second call with the same long prefix and key reports cached tokens, billed at the
    cached-input rate; prompt_tokens still include them."""
    guard = make_guard(prompt_caching="auto")
    client = guard.wrap(FakeProvider().openai())
    system = {"role": "system", "content": LONG_SYSTEM}
    with guard.scope(tenant="acme"):
        for question in ("a?", "b?"):
            client.chat.completions.create(model="gpt-4o", messages=[system, user(question)])
    first, second = guard.ledger.records()
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens >= 1024 and second.usage.cache_read_tokens % 128 == 0
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    for row in (first, second):
        assert row.cost_usd == cost(row.usage, TABLE.require("gpt-4o").base)


# -- the fake's prompt caches ----------------------------------------------------------


def test_the_fake_anthropic_cache_writes_then_reads_a_marked_prefix() -> None:
    """Through the bare SDK: the first marked request writes its prefix (with the 5m/1h split),
    an identical prefix then reads it, and input_tokens excludes both."""
    fake = FakeProvider()
    claude = fake.anthropic()
    system = [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    plain = claude.messages.create(
        model=SONNET, max_tokens=10, system=LONG_SYSTEM, messages=[user("q")]
    )
    first = claude.messages.create(model=SONNET, max_tokens=10, system=system, messages=[user("q")])
    again = claude.messages.create(model=SONNET, max_tokens=10, system=system, messages=[user("r")])
    total = plain.usage.input_tokens
    written = first.usage.cache_creation_input_tokens
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == written > 0
    assert first.usage.input_tokens + written == total
    assert again.usage.cache_read_input_tokens == written
    assert again.usage.cache_creation_input_tokens == 0
    assert again.usage.input_tokens == total - written


def test_the_fake_anthropic_cache_is_per_model_and_per_fake() -> None:
    """Another model, or another FakeProvider, does not read a prefix written here."""
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]

    def send(fake: FakeProvider, model: str) -> anthropic.types.Usage:
        return (
            fake.anthropic()
            .messages.create(model=model, max_tokens=5, system=system, messages=[user("q")])
            .usage
        )

    fake = FakeProvider()
    first, other, again = (send(fake, m) for m in (SONNET, "claude-opus-4-8", SONNET))
    elsewhere = send(FakeProvider(), SONNET)
    assert first.cache_creation_input_tokens == other.cache_creation_input_tokens
    assert first.cache_read_input_tokens == other.cache_read_input_tokens == 0
    assert again.cache_read_input_tokens == first.cache_creation_input_tokens > 0
    assert elsewhere.cache_read_input_tokens == 0


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"cache_control": {"type": "ephemeral"}}, "maximum of 4"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                ]
            },
            "empty text",
        ),
    ],
)
def test_the_fake_anthropic_api_refuses_what_the_api_refuses(
    extra: dict[str, Any], problem: str
) -> None:
    """More than 4 breakpoints, or one on an empty text block, is a 400 as the API sends it."""
    mark = {"type": "ephemeral"}
    system = [{"type": "text", "text": f"part {i}", "cache_control": mark} for i in range(4)]
    params: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 5,
        "system": system,
        "messages": [user("q")],
    }
    if "messages" in extra:
        params["system"] = "plain"
    params.update(extra)
    with pytest.raises(anthropic.BadRequestError, match=problem):
        FakeProvider().anthropic().messages.create(**params)


def test_the_fake_anthropic_api_refuses_a_1h_breakpoint_after_a_5m_one() -> None:
    """A 1h entry after a 5m entry is a 400."""
    system = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        FakeProvider().anthropic().messages.create(
            model=SONNET, max_tokens=5, system=system, messages=[user("q")]
        )


def test_the_fake_openai_cache_is_keyed_by_prompt_cache_key() -> None:
    """A long prefix is read back only under the same prompt_cache_key; a short one never."""
    client = FakeProvider().openai()
    long = [{"role": "system", "content": LONG_SYSTEM}]

    def cached(messages: list[dict[str, Any]], **kwargs: Any) -> int:
        usage = client.chat.completions.create(model="gpt-4o", messages=messages, **kwargs).usage
        assert usage is not None and usage.prompt_tokens_details is not None
        return usage.prompt_tokens_details.cached_tokens or 0

    assert cached([*long, user("a")], prompt_cache_key="k1") == 0
    assert cached([*long, user("b")], prompt_cache_key="k2") == 0
    assert cached([*long, user("c")], prompt_cache_key="k1") >= 1024
    assert cached([user("short"), user("x")]) == 0
    assert cached([user("short"), user("y")]) == 0


@pytest.mark.parametrize(("ttl", "seconds"), [("5m", 300.0), ("1h", 3600.0)])
def test_the_fake_anthropic_cache_expires_after_its_ttl_and_each_read_refreshes_it(
    ttl: str, seconds: float
) -> None:
    """An entry is read within its TTL of its last use, each read starting the TTL again;
    once it has gone unused for the whole TTL it is a miss, and the prefix is written again."""
    clock = Clock(0.0)
    claude = FakeProvider(clock=clock).anthropic()
    system = [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": ttl}}
    ]

    def send_at(now: float) -> anthropic.types.Usage:
        clock.now = now
        return claude.messages.create(
            model=SONNET, max_tokens=5, system=system, messages=[user("q")]
        ).usage

    written = send_at(0).cache_creation_input_tokens
    assert written > 0
    assert send_at(seconds - 1).cache_read_input_tokens == written
    # Later than the TTL after the write, but within it of the read just made.
    assert send_at(2 * seconds - 2).cache_read_input_tokens == written
    expired = send_at(3 * seconds - 2)
    assert expired.cache_read_input_tokens == 0
    assert expired.cache_creation_input_tokens == written
    assert send_at(3 * seconds).cache_read_input_tokens == written


def test_a_5m_fake_anthropic_entry_is_gone_when_a_1h_one_is_still_read() -> None:
    """Six minutes after both were written, the 1-hour prefix is read and the 5-minute one is
    written again."""
    clock = Clock(0.0)
    claude = FakeProvider(clock=clock).anthropic()

    def send(text: str, ttl: str) -> anthropic.types.Usage:
        system = [
            {"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}
        ]
        return claude.messages.create(
            model=SONNET, max_tokens=5, system=system, messages=[user("q")]
        ).usage

    short, long = send(LONG_SYSTEM, "5m"), send("Another preamble. " + LONG_SYSTEM, "1h")
    assert short.cache_creation is not None and long.cache_creation is not None
    assert short.cache_creation.ephemeral_5m_input_tokens > 0
    assert long.cache_creation.ephemeral_1h_input_tokens > 0
    clock.now = 360
    assert send(LONG_SYSTEM, "5m").cache_read_input_tokens == 0
    assert send("Another preamble. " + LONG_SYSTEM, "1h").cache_read_input_tokens > 0


@pytest.mark.parametrize(
    ("options", "seconds"), [({}, 300.0), ({"prompt_cache_options": {"ttl": "30m"}}, 1800.0)]
)
def test_the_fake_openai_cache_forgets_a_prefix_left_unused(
    options: dict[str, Any], seconds: float
) -> None:
    """A prefix is read while requests use it less than 5 minutes apart (or the minimum
    lifetime prompt_cache_options.ttl asks for), each use starting that time again; after it
    has gone unused that long it is a miss, and is cached again."""
    clock = Clock(0.0)
    client = FakeProvider(clock=clock).openai()
    system = {"role": "system", "content": LONG_SYSTEM}

    def cached_at(now: float, question: str) -> int:
        clock.now = now
        usage = client.chat.completions.create(
            model="gpt-4o", messages=[system, user(question)], prompt_cache_key="k", **options
        ).usage
        assert usage is not None and usage.prompt_tokens_details is not None
        return usage.prompt_tokens_details.cached_tokens or 0

    assert cached_at(0, "a") == 0
    assert cached_at(seconds - 1, "b") >= 1024
    assert cached_at(2 * seconds - 2, "c") >= 1024
    assert cached_at(3 * seconds - 2, "d") == 0
    assert cached_at(3 * seconds, "e") >= 1024


# -- properties ------------------------------------------------------------------------

MODELS = [SONNET, HAIKU, "claude-opus-4-8", "claude-opus-4-5"]
WORDS = st.integers(min_value=1, max_value=3000).map(lambda n: " ".join(["lorem"] * n))
MARK = st.sampled_from(
    [None, None, None, {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}]
)


@st.composite
def text_block(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": draw(WORDS)}
    mark = draw(MARK)
    if mark is not None:
        block["cache_control"] = mark
    return block


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    params: dict[str, Any] = {"model": draw(st.sampled_from(MODELS)), "max_tokens": 10}
    tools = []
    for i in range(draw(st.integers(0, 2))):
        tool = {"name": f"t{i}", "description": draw(WORDS), "input_schema": {"type": "object"}}
        mark = draw(MARK)
        if mark is not None:
            tool["cache_control"] = mark
        tools.append(tool)
    if tools:
        params["tools"] = tools
    system = draw(st.one_of(st.none(), WORDS, st.lists(text_block(), min_size=1, max_size=2)))
    if system is not None:
        params["system"] = system
    messages = []
    for i in range(draw(st.integers(0, 4)) * 2 + 1):
        role = ("user", "assistant")[i % 2]
        content = draw(st.one_of(WORDS, st.lists(text_block(), min_size=1, max_size=2)))
        messages.append({"role": role, "content": content})
    params["messages"] = messages
    automatic = draw(MARK)
    if automatic is not None:
        params["cache_control"] = automatic
    return params


def blocks_of(params: Mapping[str, Any]) -> list[tuple[tuple[int, int, int], Any]]:
    """Every block of a request in prompt order, a string counting as one text block."""
    found: list[tuple[tuple[int, int, int], Any]] = []
    for i, tool in enumerate(params.get("tools", [])):
        found.append(((0, i, 0), tool))
    system = params.get("system")
    for j, block in enumerate([system] if isinstance(system, str) else system or []):
        found.append(((1, j, 0), block))
    for m, message in enumerate(params["messages"]):
        content = message["content"]
        for k, block in enumerate([content] if isinstance(content, str) else content):
            found.append(((2, m, k), block))
    return found


def mark_of(block: Any) -> Any:
    if isinstance(block, str):
        return None
    return block.get("cache_control")


def prefix_tokens(params: Mapping[str, Any], upto: tuple[int, int, int]) -> int:
    """Tokens of the prompt up to and including ``upto``, markers removed."""
    tools, system, messages = [], [], []
    for (section, m, _), block in blocks_of(params):
        if (section, m, _) > upto:
            break
        plain = (
            block
            if isinstance(block, str)
            else {k: v for k, v in block.items() if k != "cache_control"}
        )
        if section == 0:
            tools.append(plain)
        elif section == 1:
            system.append(plain if isinstance(plain, dict) else {"type": "text", "text": plain})
        else:
            if not messages or messages[-1][0] != m:
                messages.append((m, params["messages"][m]["role"], []))
            messages[-1][2].append(
                plain if isinstance(plain, dict) else {"type": "text", "text": plain}
            )
    return costguard.count_tokens(
        params["model"],
        [{"role": role, "content": content} for _, role, content in messages],
        tools=tools or None,
        system=system or None,
    )


def accepted(params: Mapping[str, Any]) -> bool:
    """Whether the fake Anthropic API (which refuses what the API refuses) takes ``params``."""
    try:
        FakeProvider().anthropic().messages.create(**params)
    except anthropic.BadRequestError:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=anthropic_requests(),
    ttl=st.sampled_from(["5m", "1h"]),
    reads=st.decimals(min_value=0, max_value=4, places=2),
)
def test_breakpoint_placement_properties(params: dict[str, Any], ttl: str, reads: Decimal) -> None:
    """Whatever the request: the caller's params are not mutated, the API still accepts it,
    the caller's breakpoints are kept as they were, costguard's come after them, at most 4 in
    all, each only where its prefix reaches the model's minimum and its saving is positive."""
    original = copy.deepcopy(params)
    layer = PromptCacheLayer(PromptCaching(ttl=ttl, expected_reads=reads), TABLE)
    sent = layer.prepare(call_for("messages.create", params)).params
    assert params == original
    assert accepted(sent) or not accepted(original)
    before, after = blocks_of(original), blocks_of(sent)
    assert [spot for spot, _ in before] == [spot for spot, _ in after]
    theirs = [spot for spot, block in before if mark_of(block) is not None]
    ours = []
    for (spot, old), (_, new) in zip(before, after, strict=True):
        if mark_of(old) is not None:
            assert mark_of(new) is mark_of(old) or mark_of(new) == mark_of(old)
        elif mark_of(new) is not None:
            ours.append((spot, mark_of(new)))
    automatic = isinstance(original.get("cache_control"), Mapping)
    if not ours:
        return
    assert all(spot > max(theirs, default=(-1, -1, -1)) for spot, _ in ours)
    assert len(theirs) + automatic + len(ours) <= MAX_BREAKPOINTS
    rates = TABLE.require(params["model"]).base
    for spot, mark in ours:
        tokens = prefix_tokens(sent, spot)
        assert tokens >= min_cacheable_tokens(params["model"])
        assert breakpoint_saving(tokens, rates, mark["ttl"], reads) > 0
        assert mark == {"type": "ephemeral", "ttl": mark["ttl"]}


@given(
    tokens=st.integers(min_value=1, max_value=10**7),
    reads=st.decimals(min_value=0, max_value=50, places=3),
    ttl=st.sampled_from(["5m", "1h"]),
    model=st.sampled_from(MODELS),
)
def test_saving_is_positive_exactly_when_reads_outweigh_the_premium(
    tokens: int, reads: Decimal, ttl: str, model: str
) -> None:
    """breakpoint_saving > 0 iff reads * (input - read) > write - input, and it grows with
    the expected reads and scales with the prefix."""
    rates = TABLE.require(model).base
    write = rates.cache_write_1h if ttl == "1h" else rates.cache_write_5m
    saving = breakpoint_saving(tokens, rates, ttl, reads)
    assert (saving > 0) == (reads * (rates.input - rates.cache_read) > write - rates.input)
    assert breakpoint_saving(tokens, rates, ttl, reads + 1) > saving
    assert saving == tokens * breakpoint_saving(1, rates, ttl, reads)


def test_reset_forgets_the_fakes_simulated_prompt_cache(make_guard: Any) -> None:
    """After FakeProvider.reset(), a prefix cached before is written again, not read."""
    fake = FakeProvider()
    claude = make_guard(prompt_caching="auto").wrap(fake.anthropic())
    system = "You are a meticulous assistant. " * 400

    def send() -> Any:
        return claude.messages.create(
            model=SONNET, max_tokens=10, system=system, messages=[user("hi")]
        ).usage

    first, second = send(), send()
    fake.reset()
    third = send()
    assert first.cache_creation_input_tokens > 0 and second.cache_read_input_tokens > 0
    assert third.cache_creation_input_tokens > 0 and not third.cache_read_input_tokens


def test_planning_many_distinct_long_prompts_keeps_the_token_memo_within_its_budget(
    make_guard: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many distinct long prompts are counted (here to plan breakpoints), the memo of
    token counts holds no more text than its byte budget, and its counts stay exact."""
    from costguard import _tokens

    memo = _tokens._Memo(100_000)
    monkeypatch.setattr(_tokens, "_MEMO", memo)
    fake = FakeProvider()
    claude = make_guard(prompt_caching="auto").wrap(fake.anthropic())
    systems = [f"Manual {i}: refunds take {i} days. " * 800 for i in range(8)]  # ~30k chars
    for system in systems:
        claude.messages.create(model=SONNET, max_tokens=10, system=system, messages=[user("hi")])
    assert 0 < memo.held <= 100_000
    assert all(marks(r.json) for r in fake.requests)
    cl100k = _tokens.encoding_for_model("gpt-4")
    for system in systems:  # remembered or not, a count is the encoder's own
        assert costguard.count_tokens("gpt-4", system) == len(cl100k.encode_ordinary(system))
