"""Cascade: the cheap model first; the strong one only when the cheap answer does not pass."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import costguard
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "Summarise our refund policy."}]


def make(tmp_path: Path, **cascade: Any) -> costguard.CostGuardClient:
    return costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=None,
        cascade=costguard.Cascade(cheap="gpt-4o-mini", strong="gpt-4o", **cascade),
    )


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[costguard.CostGuardClient]:
    g = make(tmp_path)
    yield g
    g.close()


def test_a_good_cheap_answer_is_the_answer(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """A call for the strong model is answered by the cheap one when its answer passes."""
    client = guard.wrap(fake.openai())
    answer = client.chat.completions.create(model="gpt-4o", messages=HI)
    assert answer.model.startswith("gpt-4o-mini")
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini"]
    [row] = guard.ledger.records()
    assert (row.requested_model, row.route, row.linked_to) == ("gpt-4o", "cascade:cheap", None)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"text": ""}, "empty"),
        ({"text": "I can't help with that.", "finish_reason": "content_filter"}, "refusal"),
        ({"text": "The policy is", "finish_reason": "length"}, "cut off"),
    ],
)
def test_a_failing_cheap_answer_escalates_and_both_attempts_are_priced_and_linked(
    guard: costguard.CostGuardClient, fake: FakeProvider, reply: dict[str, Any], reason: str
) -> None:
    """An empty, refused or truncated cheap answer escalates; the ledger has two priced rows,
    the strong one linked to the cheap one, with the reason."""
    client = guard.wrap(fake.openai())
    fake.reply(**reply)
    answer = client.chat.completions.create(model="gpt-4o", messages=HI)
    assert answer.model.startswith("gpt-4o") and not answer.model.startswith("gpt-4o-mini")
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    cheap, strong = guard.ledger.records()
    assert cheap.route == f"cascade:cheap({reason})" and cheap.cost_usd is not None
    assert strong.route == f"cascade:escalated({reason})" and strong.linked_to == cheap.id
    assert strong.cost_usd and strong.cost_usd > cheap.cost_usd


def test_json_requests_escalate_when_the_cheap_answer_is_not_json(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """With response_format json_object, prose from the cheap model escalates."""
    client = guard.wrap(fake.openai())
    fake.reply("Sure! Here it is: {oops")
    fake.reply('{"ok": true}')
    answer = client.chat.completions.create(
        model="gpt-4o", messages=HI, response_format={"type": "json_object"}
    )
    assert answer.choices[0].message.content == '{"ok": true}'
    assert guard.ledger.records()[-1].route == "cascade:escalated(not JSON)"


def test_a_user_validator_decides_too(tmp_path: Path, fake: FakeProvider) -> None:
    """validator(answer) -> False escalates an otherwise fine answer."""
    with make(
        tmp_path, validator=lambda answer: "refund" in answer.choices[0].message.content
    ) as guard:
        client = guard.wrap(fake.openai())
        fake.reply("Returns are accepted within 30 days.")
        fake.reply("Refunds are issued within 30 days.")
        client.chat.completions.create(model="gpt-4o", messages=HI)
        assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]


def test_a_failing_cheap_call_escalates(
    guard: costguard.CostGuardClient, fake: FakeProvider
) -> None:
    """A provider error on the cheap model escalates; its row records the error at no cost."""
    client = guard.wrap(fake.openai())
    fake.fail(500)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    cheap, strong = guard.ledger.records()
    assert (cheap.status, cheap.cost_usd, strong.route) == ("error", 0, "cascade:escalated(error)")


def test_other_models_streams_and_features_are_left_alone(
    tmp_path: Path, fake: FakeProvider
) -> None:
    """Calls for other models, streamed calls, and features outside `features` go straight."""
    with make(tmp_path, features={"summary"}) as guard:
        client = guard.wrap(fake.openai())
        with guard.scope(feature="summary"):
            client.chat.completions.create(model="gpt-4.1", messages=HI)
            list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
        with guard.scope(feature="chat"):
            client.chat.completions.create(model="gpt-4o", messages=HI)
        assert [r.json["model"] for r in fake.requests] == ["gpt-4.1", "gpt-4o", "gpt-4o"]


def test_async_anthropic_calls_cascade(tmp_path: Path, fake: FakeProvider) -> None:
    """An async Anthropic client cascades the same way."""
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=None,
        cascade=costguard.Cascade(cheap="claude-haiku-4-5", strong="claude-sonnet-4-6"),
    ) as guard:
        claude = guard.wrap(fake.async_anthropic())
        fake.reply("")

        async def main() -> Any:
            return await claude.messages.create(
                model="claude-sonnet-4-6", max_tokens=200, messages=HI
            )

        asyncio.run(main())
        assert [r.json["model"] for r in fake.requests] == ["claude-haiku-4-5", "claude-sonnet-4-6"]


@pytest.mark.parametrize(
    ("cheap", "strong", "message"),
    [("nope", "gpt-4o", "no price"), ("gpt-4o-mini", "claude-haiku-4-5", "share a provider")],
)
def test_bad_cascades_are_configuration_errors(
    tmp_path: Path, cheap: str, strong: str, message: str
) -> None:
    """An unpriced model or a cross-provider pair is refused at construction."""
    with pytest.raises(costguard.ConfigurationError, match=message):
        costguard.CostGuardClient(
            ledger=tmp_path / "l.db", cascade=costguard.Cascade(cheap=cheap, strong=strong)
        )
