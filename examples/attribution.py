"""Attribution: tag calls with feature, user, tenant and tags, then read spend per group.

``guard.scope(...)`` works as a ``with`` / ``async with`` block and as a decorator on sync and
async functions. Scopes nest (inner values win, tags merge) and follow the work into asyncio
tasks, because they are carried by contextvars.

    python examples/attribution.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import costguard
from costguard.testing import FakeProvider

fake = FakeProvider()


def run(guard: costguard.CostGuardClient) -> None:
    gpt = guard.wrap(fake.openai())
    claude = guard.wrap(fake.anthropic())
    async_gpt = guard.wrap(fake.async_openai())

    # 1. A context manager around the calls of one request.
    for user in ("alice", "bob", "alice"):
        with guard.scope(feature="support-bot", user=user, tenant="acme"):
            claude.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=300,
                messages=[{"role": "user", "content": f"{user} cannot log in. Help?"}],
            )

    # 2. A decorator on a plain function; the caller's scope (user) merges with it.
    @guard.scope(feature="ticket-triage", tags={"pipeline": "v2"})
    def triage(ticket: str) -> str:
        reply = gpt.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"Label this ticket: {ticket}"}],
            max_completion_tokens=5,
        )
        return reply.choices[0].message.content or ""

    with guard.scope(user="bob", tenant="acme"):
        triage("The export button does nothing.")
    triage("Invoice charged twice.")  # no user: recorded with user NULL

    # 3. A decorator on an async function, and ``async with``; tasks inherit the scope.
    @guard.scope(feature="summarise")
    async def summarise(text: str) -> str:
        reply = await async_gpt.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"Summarise: {text}"}]
        )
        return reply.choices[0].message.content or ""

    async def nightly() -> None:
        async with guard.scope(user="carol", tenant="globex"):
            await asyncio.gather(summarise("report one"), summarise("report two"))

    asyncio.run(nightly())

    # What the scope looks like from inside, e.g. for your own logging.
    with guard.scope(feature="outer", tags={"a": "1"}), guard.scope(user="dave", tags={"b": "2"}):
        print("current scope:", costguard.current_scope())


def report(ledger: costguard.Ledger) -> None:
    print("\nspend by feature and user:")
    print(f"  {'feature':<14} {'user':<6} {'calls':>5} {'cost (USD)':>12}")
    for row in ledger.summary(group_by=["feature", "user"]):
        feature, user = row.key["feature"], row.key["user"] or "-"
        print(f"  {feature:<14} {user:<6} {row.calls:>5} {row.cost_usd:>12}")

    print("\nspend by tenant:")
    for row in ledger.summary(group_by="tenant"):
        print(f"  {row.key['tenant'] or '-':<8} ${row.cost_usd}")

    alice = ledger.records(user="alice", feature="support-bot")
    print(f"\nalice's support-bot calls: {len(alice)}, tags of a triage call:", end=" ")
    print(ledger.records(feature="ticket-triage")[0].tags)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        guard = costguard.CostGuardClient(
            ledger=Path(tmp) / "ledger.db", cache=costguard.ExactCache(Path(tmp) / "cache")
        )
        run(guard)
        report(guard.ledger)
        guard.close()


if __name__ == "__main__":
    main()
