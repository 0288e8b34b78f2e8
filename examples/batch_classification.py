"""A batch of ticket classifications, routed to the cheap model, and what routing saved.

The application asks for ``gpt-4o`` everywhere (the model its prompts were written against).
``costguard.Router(rules={"classify": "gpt-4o-mini"})`` sends every call made under
``scope(feature="classify")`` to gpt-4o-mini instead: the code does not change, the answers
are still ``ChatCompletion`` objects, and the ledger keeps both the model asked for and the
model that answered, with the reason (``route``). The report prices each call's tokens at the
requested model's rates to show what the batch would have cost without routing.

Runs offline on costguard's fake provider, with the ledger and cache in a temporary directory.

    python examples/batch_classification.py
"""

from __future__ import annotations

import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import openai

import costguard
from costguard.testing import FakeProvider

LABELS = ("billing", "bug", "account", "other")
TICKETS = [
    ("I was charged twice for the March invoice.", "billing"),
    ("The export button does nothing in Firefox.", "bug"),
    ("How do I change the e-mail on my account?", "account"),
    ("Can I get a refund for the unused seats?", "billing"),
    ("The app crashes when I upload a 2 GB file.", "bug"),
    ("Please delete my account and all my data.", "account"),
    ("Do you have an office in Lisbon?", "other"),
    ("My card was declined but the money left my bank.", "billing"),
    ("Dark mode resets after every login.", "bug"),
    ("I cannot reset my password: the link expired.", "account"),
    ("What is your uptime SLA?", "other"),
    ("VAT is missing from my receipts.", "billing"),
]


def classify(client: openai.OpenAI, ticket: str) -> str:
    """Application code: one ticket, one label. It asks for gpt-4o; the router decides."""
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": f"Label the ticket with one of: {', '.join(LABELS)}."},
            {"role": "user", "content": ticket},
        ],
        max_completion_tokens=5,
    )
    label = (reply.choices[0].message.content or "").strip().lower()
    return label if label in LABELS else "other"


def main() -> None:
    fake = FakeProvider()  # in real code: openai.OpenAI()
    for _, label in TICKETS:  # the fake answers each request with the label scripted for it
        fake.reply(label)

    with tempfile.TemporaryDirectory() as tmp:
        guard = costguard.CostGuardClient(
            ledger=Path(tmp) / "ledger.db",
            cache=costguard.ExactCache(Path(tmp) / "cache"),
            router=costguard.Router(rules={"classify": "gpt-4o-mini"}),
        )
        client = guard.wrap(fake.openai())

        with guard.scope(feature="classify", tags={"batch": "2026-11-21"}):
            labels = [classify(client, ticket) for ticket, _ in TICKETS]

        print("labels:", dict(Counter(labels)))
        print("models sent:", dict(Counter(r.json["model"] for r in fake.requests)))

        records = guard.ledger.records(feature="classify")
        actual = sum((r.cost_usd or Decimal(0) for r in records), Decimal(0))
        unrouted = Decimal(0)
        for r in records:
            cost = guard.prices.cost(r.requested_model or "", r.usage)
            unrouted += cost.usd if cost is not None else Decimal(0)
        saved = unrouted - actual

        first = records[0]
        print(
            f"\nledger: requested={first.requested_model} served={first.served_model}"
            f" route={first.route}"
        )
        print(f"{len(records)} classifications")
        print(f"  cost on gpt-4o-mini (routed):     ${actual:.8f}")
        print(f"  same tokens on gpt-4o (unrouted): ${unrouted:.8f}")
        print(f"  routing saved:                    ${saved:.8f} ({saved / unrouted:.0%})")
        guard.close()


if __name__ == "__main__":
    main()
