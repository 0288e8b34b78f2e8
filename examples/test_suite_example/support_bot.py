"""The application under test: a support bot that answers with a model and tags its spend.

Nothing here knows about tests. It takes the SDK client it should use, so a test can hand it a
client from costguard's fake provider, and production code a real ``openai.OpenAI()``.
"""

from __future__ import annotations

import openai

import costguard

SYSTEM = "You are a support agent for Acme. Answer in two sentences at most."
SORRY = "Sorry, we are busy right now. Please try again in a minute."


def answer(client: openai.OpenAI, question: str) -> str:
    """One support answer; a provider rate limit becomes a polite message, not a crash."""
    try:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
            ],
            max_completion_tokens=120,
        )
    except openai.RateLimitError:
        return SORRY
    return reply.choices[0].message.content or ""


def answer_for(
    guard: costguard.CostGuardClient, client: openai.OpenAI, question: str, *, customer: str
) -> str:
    """``answer`` attributed to a customer (tenant) and the support-bot feature."""
    with guard.scope(feature="support-bot", tenant=customer):
        return answer(client, question)
