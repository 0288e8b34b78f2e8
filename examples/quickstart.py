"""Quick start: wrap an OpenAI and an Anthropic client, make calls, read the ledger.

Runs offline: the clients come from costguard's FakeProvider (the real SDK classes on an
in-memory transport) and the ledger lives in a temporary directory.

    python examples/quickstart.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anthropic
import openai

import costguard
from costguard.testing import FakeProvider


def main() -> None:
    fake = FakeProvider()  # in real code: openai.OpenAI() and anthropic.Anthropic()
    with tempfile.TemporaryDirectory() as tmp:
        guard = costguard.CostGuardClient(
            ledger=Path(tmp) / "ledger.db", cache=costguard.ExactCache(Path(tmp) / "cache")
        )
        gpt = guard.wrap(fake.openai())
        claude = guard.wrap(fake.anthropic())
        assert isinstance(gpt, openai.OpenAI)  # still the SDK's own class
        assert isinstance(claude, anthropic.Anthropic)

        reply = gpt.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello in French."}],
        )
        print("openai  :", type(reply).__name__, "->", reply.choices[0].message.content[:40])

        message = claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=[{"role": "user", "content": "Say hello in Italian."}],
        )
        print("claude  :", type(message).__name__, "->", message.content[0].text[:40])

        # Streams stay the SDK's Stream; the call is recorded when the stream ends.
        stream = gpt.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Count to five."}],
            stream=True,
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        print("stream  :", type(stream).__name__, "->", text[:40])

        print("\nledger rows:")
        for record in guard.ledger.records():
            print(
                f"  {record.operation:<24} {record.requested_model:<17}"
                f" in={record.usage.input_tokens:<3} out={record.usage.output_tokens:<3}"
                f" ${record.cost_usd}  stream={record.stream}"
            )

        print("\nspend by model:")
        for row in guard.ledger.summary(group_by="model"):
            print(f"  {row.key['model']:<17} calls={row.calls}  ${row.cost_usd}")

        guard.close()  # commit pending rows and close the ledger before the directory goes


if __name__ == "__main__":
    main()
