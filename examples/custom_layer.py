"""Custom layers: log every call's model, tokens and latency, and cap output tokens by default.

A layer is any object with ``handle(call, call_next)`` and ``async ahandle(call, call_next)``.
``CostGuardClient(layers=[a, b])`` runs ``a`` outside ``b``; both run inside costguard's ledger
layer, so the ledger still records what the caller asked for and what it cost.

    python examples/custom_layer.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import costguard
from costguard import AsyncHandler, Call, Handler, Outcome
from costguard.testing import FakeProvider


class LatencyLog:
    """Prints model, tokens and latency of each call; streams are logged when they finish."""

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        start = time.perf_counter()
        outcome = call_next(call)
        self._log(call, outcome, start)
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        start = time.perf_counter()
        outcome = await call_next(call)
        self._log(call, outcome, start)
        return outcome

    def _log(self, call: Call, outcome: Outcome, start: float) -> None:
        def emit(final: Outcome) -> None:
            ms = (time.perf_counter() - start) * 1000
            usage = final.usage or costguard.Usage()
            print(
                f"[log] {call.provider:<9} {call.operation.name:<24} {call.model or '-':<17}"
                f" in={usage.input_tokens:<3} out={usage.output_tokens:<3}"
                f" {final.status:<10} {ms:7.2f} ms  feature={call.scope.feature}"
            )

        if outcome.stream is not None:  # a stream: usage is known once it ends or is closed
            outcome.stream.on_finish(emit)
        else:
            emit(outcome)


class DefaultOutputCap:
    """Adds an output-token limit to OpenAI chat calls that did not set one."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def _capped(self, call: Call) -> Call:
        params: Mapping[str, Any] = call.params
        if call.operation.name == "chat.completions.create" and not (
            {"max_tokens", "max_completion_tokens"} & params.keys()
        ):
            params = {**params, "max_completion_tokens": self.max_tokens}
        return call.replace(params=params)

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        return call_next(self._capped(call))

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        return await call_next(self._capped(call))


def main() -> None:
    fake = FakeProvider()
    with tempfile.TemporaryDirectory() as tmp:
        guard = costguard.CostGuardClient(
            ledger=Path(tmp) / "ledger.db",
            cache=costguard.ExactCache(Path(tmp) / "cache"),
            layers=[LatencyLog(), DefaultOutputCap(max_tokens=12)],
        )
        gpt = guard.wrap(fake.openai())
        claude = guard.wrap(fake.anthropic())
        question = [{"role": "user", "content": "Explain prompt caching."}]

        with guard.scope(feature="docs-helper"):
            reply = gpt.chat.completions.create(model="gpt-4o-mini", messages=question)
            print("capped reply:", repr(reply.choices[0].message.content))
            print("finish_reason:", reply.choices[0].finish_reason)
            print("sent:", fake.requests[-1].json["max_completion_tokens"], "max tokens\n")

            claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=question)

            stream = gpt.chat.completions.create(model="gpt-4o", messages=question, stream=True)
            for _ in stream:
                pass

            stream = gpt.chat.completions.create(model="gpt-4o", messages=question, stream=True)
            next(iter(stream))
            stream.close()  # stopped early: logged and recorded as "incomplete"

        async def on_async_client() -> None:
            async_claude = guard.wrap(fake.async_anthropic())
            await async_claude.messages.create(
                model="claude-sonnet-4-6", max_tokens=50, messages=question
            )

        asyncio.run(on_async_client())

        print("\nledger:")
        for r in guard.ledger.records():
            cost = "unpriced" if r.cost_usd is None else f"${r.cost_usd}"
            print(f"  {r.requested_model:<17} {r.status:<10} out={r.usage.output_tokens:<3} {cost}")
        guard.close()


if __name__ == "__main__":
    main()
