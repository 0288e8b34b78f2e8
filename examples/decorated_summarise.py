"""Per-function policy: one decorator attributes, caps and budgets a summarise function.

``@guard.scope(...)`` on a function sets, for every guarded call made while it runs:

- ``feature="summarise"``: what the calls are for, in the ledger and reports;
- ``user=lambda doc, *, user_id: user_id``: who they are for, read from each call's own
  arguments (the callable gets exactly the arguments the function got);
- ``max_tokens=200``: an output limit, filled in where the request has none and never
  raising one the code already set.

Runs offline on costguard's fake provider, with the ledger and cache in a temporary directory.

    python examples/decorated_summarise.py
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import openai

import costguard
from costguard.testing import FakeProvider

DOCS = {
    "release-notes": "Version 2.3 adds SSO, fixes the CSV export and drops Python 3.9 support.",
    "incident": "At 09:12 the EU database failed over; writes paused for 41 seconds.",
    "memo": "The office moves to the fourth floor on Monday; desks are labelled by team.",
}


def build(guard: costguard.CostGuardClient, client: openai.OpenAI) -> Callable[..., str]:
    """The application code: a plain function, decorated once."""

    @guard.scope(feature="summarise", user=lambda doc, *, user_id: user_id, max_tokens=200)
    def summarise(doc: str, *, user_id: str) -> str:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Summarise in one sentence."},
                {"role": "user", "content": doc},
            ],
        )
        return reply.choices[0].message.content or ""

    return summarise


def main() -> None:
    fake = FakeProvider()  # in real code: openai.OpenAI()
    with tempfile.TemporaryDirectory() as tmp:
        guard = costguard.CostGuardClient(
            ledger=Path(tmp) / "ledger.db", cache=costguard.ExactCache(Path(tmp) / "cache")
        )
        summarise = build(guard, guard.wrap(fake.openai()))

        for (name, doc), user in zip(DOCS.items(), ["alice", "bob", "alice"], strict=True):
            summary = summarise(doc, user_id=user)
            sent = fake.requests[-1].json
            limit = sent.get("max_completion_tokens", sent.get("max_tokens"))
            print(f"{name:<14} for {user:<5} max tokens sent={limit}  -> {summary[:48]}...")

        # Outside the function the scope is gone: no feature, no user, no limit added.
        scope = costguard.current_scope()
        print(f"\noutside summarise(): feature={scope.feature} user={scope.user}", end=" ")
        print(f"max_tokens={scope.max_tokens}")

        print("\nledger (feature, user, output limit sent, cost):")
        for r in guard.ledger.records():
            print(f"  {r.feature:<10} {r.user:<6} {r.sent_max_tokens!s:>4}  ${r.cost_usd}")

        print("\nspend by user for feature=summarise:")
        for row in guard.ledger.summary(group_by="user", feature="summarise"):
            print(f"  {row.key['user']:<6} calls={row.calls}  ${row.cost_usd}")
        guard.close()


if __name__ == "__main__":
    main()
