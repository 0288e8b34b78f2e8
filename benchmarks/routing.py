"""How long the router takes to decide, per kind of decision.

Run:  python benchmarks/routing.py [--repeat 2000]

Each row times one Call (asking for gpt-4o) through ``Router.select`` (rule, complexity and
tier steps: the decision itself) and through ``Router.plan`` (the decision plus the fit check,
which counts the prompt offline whenever the model changes), and prints where it was routed
and the median and 99th percentile in microseconds. Nothing is sent: the calls are built
directly, with the packaged price table.

- rule: a feature rule sends the call to another model;
- tier: a tier maps the requested model to a cheaper one;
- complexity short / long: the complexity router scores a one-line prompt, and a prompt of
  about 2,000 and 40,000 characters (a pasted document with a question; the longest is read
  at its two ends only); "hard ~40k chars" asks gpt-4o-mini, so the strong model is chosen
  and the 40k-character prompt is counted for the fit check;
- no match: nothing applies (a tier the router does not list).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from costguard import PriceTable
from costguard._call import Call, ClientInfo
from costguard._scope import Scope
from costguard.providers import operations_for
from costguard.routing import ComplexityRouter, Router, score_complexity

CHAT = next(op for op in operations_for("openai") if op.name == "chat.completions.create")
PRICES = PriceTable.default()
DOCUMENT = (
    "The quarterly review covered hiring, the office move and the new billing provider. "
    "Hiring is on plan for engineering but behind for sales; the move is scheduled for the "
    "second week of March; the billing migration finished without incident. "
)


HARD = "\n\nCompare the two plans step by step, explain the trade-offs and justify a choice."


def call(
    text: str, *, feature: str | None = None, tier: str | None = None, model: str = "gpt-4o"
) -> Call:
    params: Mapping[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_completion_tokens": 512,
    }
    return Call(
        CHAT,
        params,
        lambda **kwargs: None,
        ClientInfo("openai", "https://api.openai.com/v1", False),
        Scope(feature=feature, tier=tier),
    )


def timings(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    for _ in range(min(repeat, 50)):  # warm up (regex and tokenizer caches)
        function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        function()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args(argv)

    router = Router(
        rules={"classify": "gpt-4o-mini"},
        tiers={"draft": {"gpt-4o": "gpt-4o-mini"}},
        complexity=ComplexityRouter(cheap="gpt-4o-mini", strong="gpt-4o"),
    )
    rules_only = Router(rules={"classify": "gpt-4o-mini"})
    tiers_only = Router(tiers={"draft": {"gpt-4o": "gpt-4o-mini"}})
    question = "\n\nWhat date does the office move happen? Answer in one sentence."
    medium = DOCUMENT * 8 + question
    long = DOCUMENT * 160 + question
    cases = [
        ("rule", rules_only, call("Is this spam? 'You won a prize'", feature="classify")),
        ("tier", tiers_only, call("Write a haiku about autumn.", tier="draft")),
        ("complexity short", router, call("Translate 'good morning' into Spanish.")),
        ("complexity ~2k chars", router, call(medium)),
        ("complexity ~40k chars", router, call(long)),
        ("hard ~40k chars", router, call(long + HARD, model="gpt-4o-mini")),
        ("no match", tiers_only, call("Write a haiku about autumn.", tier="pro")),
    ]
    print(f"median / p99 of {args.repeat} runs, microseconds (Router.select, Router.plan)")
    print()
    print(
        "| decision | prompt chars | routed to | select median | select p99 "
        "| plan median | plan p99 |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, chosen, the_call in cases:
        chosen.validate(PRICES)
        text = the_call.params["messages"][-1]["content"]
        s_med, s_p99 = timings(functools.partial(chosen.select, the_call, PRICES), args.repeat)
        p_med, p_p99 = timings(functools.partial(chosen.plan, the_call, PRICES), args.repeat)
        route = chosen.plan(the_call, PRICES)
        print(
            f"| {name} | {len(text):,} | {route.model} ({route.reason or 'unchanged'}) "
            f"| {s_med:.1f} | {s_p99:.1f} | {p_med:.1f} | {p_p99:.1f} |"
        )
    print()
    short, _ = timings(lambda: score_complexity("Translate 'good morning' into Spanish."), 2000)
    longest, _ = timings(lambda: score_complexity(long), 500)
    print(f"score_complexity alone: {short:.1f} µs (short), {longest:.1f} µs (~40k chars)")


if __name__ == "__main__":
    main()
