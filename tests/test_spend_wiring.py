"""Spend control as a user configures it on CostGuardClient."""

from __future__ import annotations

from pathlib import Path

import pytest

import costguard
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]


def test_rate_limits_on_the_guard_refuse_the_call_past_the_tier(tmp_path: Path) -> None:
    """rate_limits= refuses a free-tier user's third call in the hour; nothing is sent."""
    now = [1_800_000_000.0]
    limits = costguard.RateLimits(tiers={"free": 2, "pro": 100}, per="hour", clock=lambda: now[0])
    with costguard.CostGuardClient(ledger=tmp_path / "l.db", rate_limits=limits) as guard:
        fake = FakeProvider()
        client = guard.wrap(fake.openai())
        with guard.scope(user="u42", tier="free"):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
            with pytest.raises(costguard.RateLimitedError) as caught:
                client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert caught.value.retry_after == pytest.approx(3600)
        assert len(fake.requests) == 1  # the second call was a cache hit, still counted
        with guard.scope(user="u42", tier="gold"), pytest.raises(costguard.ConfigurationError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
