"""``costguard demo``: a realistic mixed workload through the fake provider, then the bill."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._client import CostGuardClient
    from .testing import FakeProvider

__all__ = ["run_demo"]

_TICKETS = [
    "My invoice shows two charges for November, can you refund one?",
    "How do I rotate my API key without downtime?",
    "The export button does nothing in Firefox.",
    "Can I change my plan from monthly to yearly billing?",
    "Your app logged me out three times today.",
    "Where can I download last year's receipts?",
]


def run_demo(ledger_path: str | None = None) -> int:
    import openai

    from . import Budget, Cap, CostGuardClient, ExactCache, Router
    from .testing import FakeProvider

    with (
        tempfile.TemporaryDirectory(prefix="costguard-demo-") as tmp,
        CostGuardClient(
            ledger=Path(ledger_path or Path(tmp) / "ledger.db"),
            cache=ExactCache(Path(tmp) / "cache"),
            router=Router(rules={"triage": "gpt-4.1-nano"}),  # labelling needs no big model
            max_tokens=Cap(default=300),
        ) as guard,
    ):
        fake = FakeProvider()
        gpt = guard.wrap(fake.openai())
        claude = guard.wrap(fake.anthropic())

        @guard.scope(
            feature="support-bot",
            user=lambda ticket, user: user,  # attributed from the function's arguments
            budget=Budget(5, period="day", per="user", name="support-bot per user"),
        )
        def answer(ticket: str, user: str) -> None:
            claude.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=400,  # the guard's Cap sends 300
                system="You are a friendly support agent for Acme Cloud.",
                messages=[{"role": "user", "content": ticket}],
            )

        for i, ticket in enumerate(_TICKETS * 3):
            user = f"user-{i % 5}"
            with guard.scope(feature="triage", user=user):
                gpt.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[
                        {
                            "role": "system",
                            "content": "Label the ticket: billing, auth, bug, other.",
                        },
                        {"role": "user", "content": ticket},
                    ],
                    max_tokens=5,
                )
            answer(ticket, user)
        with guard.scope(feature="search"):
            gpt.embeddings.create(model="text-embedding-3-small", input=_TICKETS)
        with guard.scope(feature="weekly-digest"):
            stream = gpt.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {
                        "role": "user",
                        "content": "Summarise this week's tickets:\n" + "\n".join(_TICKETS),
                    }
                ],
                stream=True,
            )
            "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            with claude.messages.stream(
                model="claude-opus-4-5",
                max_tokens=800,
                messages=[{"role": "user", "content": "Draft the release notes for v2.4."}],
            ) as notes:
                notes.get_final_message()
            gpt.responses.create(model="gpt-5-mini", input="Which ticket themes grew this week?")
        fake.fail(429, retry_after=2)
        with (
            guard.scope(feature="triage", user="user-9"),
            contextlib.suppress(openai.RateLimitError),
        ):
            gpt.with_options(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello?"}]
            )
        asyncio.run(_async_part(guard, fake))

        _print_bill(guard, guard.ledger.path if ledger_path else None)
    return 0


async def _async_part(guard: CostGuardClient, fake: FakeProvider) -> None:
    client = guard.wrap(fake.async_anthropic())
    async with guard.scope(feature="support-bot", user="user-async"):
        await asyncio.gather(
            *(
                client.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=200,
                    messages=[{"role": "user", "content": t}],
                )
                for t in _TICKETS
            )
        )


def _print_bill(guard: CostGuardClient, kept: Path | None) -> None:
    from .cli._common import usd as _usd
    from .cli._report import summary_table as _summary_table
    from .ledger._dashboard import dashboard

    records = guard.ledger.records()
    total = sum((r.cost_usd or Decimal(0) for r in records), Decimal(0))
    print(
        f"costguard demo: {len(records)} calls through the fake provider (no network, no spend)\n"
    )
    print("By model")
    print(_summary_table(guard.ledger.summary("model"), ["model"]))
    print("\nBy feature")
    print(_summary_table(guard.ledger.summary("feature"), ["feature"]))
    print(f"\nspent:  {_usd(total)}  (priced exactly from the {guard.prices.version} price table)")
    savings = dashboard(guard.ledger, prices=guard.prices).savings
    print(f"saved:  {_usd(savings.cache.usd + savings.routing.usd)}")
    print(
        f"  cache:   {_usd(savings.cache.usd)}  "
        f"({savings.cache.calls} repeated questions answered from the exact cache)"
    )
    print(
        f"  routing: {_usd(savings.routing.usd)}  "
        f"({savings.routing.calls} triage calls sent to a cheaper model by rule)"
    )
    print(f"  output caps: up to {_usd(savings.capping.usd)}  (answers cut at the cap)")
    if kept:
        print(f"ledger: {kept}  (try: costguard report --ledger {kept} --group-by feature,user)")
