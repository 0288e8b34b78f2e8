"""The library logs through the standard `costguard` logger and never prints."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import costguard
from costguard.testing import FakeProvider

SECRET_PROMPT = [{"role": "user", "content": "my password is hunter2"}]


def test_each_call_is_one_debug_line_without_prompt_answer_or_key(
    guard: costguard.CostGuardClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A finished call logs provider, model, cost and cache at DEBUG; no content, no API key."""
    client = guard.wrap(FakeProvider().openai(api_key="sk-live-abcdefghijkl1234"))
    with caplog.at_level(logging.DEBUG, logger="costguard"):
        client.chat.completions.create(model="gpt-4o-mini", messages=SECRET_PROMPT)
    [record] = [r for r in caplog.records if r.name == "costguard"]
    assert record.levelno == logging.DEBUG
    line = record.getMessage()
    assert "openai chat.completions.create gpt-4o-mini" in line and "cost $" in line
    assert "hunter2" not in line and "sk-live" not in line and "1234" not in line


def test_costguards_own_refusals_are_logged_at_info(
    guard: costguard.CostGuardClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A call costguard refuses (here: over a scope's cost ceiling) is one INFO line."""
    client = guard.wrap(FakeProvider().openai())
    with (
        caplog.at_level(logging.INFO, logger="costguard"),
        guard.scope(max_cost_usd="0.000000001"),
        pytest.raises(costguard.BudgetExceededError),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=SECRET_PROMPT)
    [record] = [r for r in caplog.records if r.name == "costguard"]
    assert record.levelno == logging.INFO and "refused" in record.getMessage()


def test_nothing_reaches_stderr_or_stdout_without_logging_configured() -> None:
    """With no handler configured (a NullHandler is installed), guarded calls print nothing,
    not even the WARNING a budget alert logs (Python's last-resort handler would print it)."""
    code = (
        "import costguard, tempfile, pathlib\n"
        "from costguard.testing import FakeProvider\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "hi = [{'role': 'user', 'content': 'hi'}]\n"
        "limit = costguard.estimate_cost('gpt-4o-mini', hi, max_tokens=20)\n"
        "g = costguard.CostGuardClient(ledger=d / 'l.db', cache=costguard.ExactCache(d / 'c'),"
        " budgets=[costguard.Budget(limit, period='total')])\n"
        "c = g.wrap(FakeProvider().openai())\n"
        "for _ in range(2):\n"
        "    c.chat.completions.create(model='gpt-4o-mini', messages=hi, max_tokens=20)\n"
        "[status] = g.budget_status()\n"
        "assert status.spent >= limit / 2, 'the 50% alert (a WARNING) must have fired'\n"
        "g.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert (done.stdout, done.stderr) == ("", "")
