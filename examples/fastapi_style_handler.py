"""A web handler with a daily budget per user, and HTTP 402 when a user's budget is spent.

The shape is FastAPI's (an async handler, a request object, an exception handler that turns
an error into a response), written with plain functions and dataclasses so that it runs
without a web framework. In a FastAPI app the same pieces read:

    guard = costguard.CostGuardClient(budgets=[costguard.Budget(1, period="day", per="user")])
    client = guard.wrap(openai.AsyncOpenAI())

    @app.post("/chat")
    @guard.scope(feature="chat", user=lambda request: request.state.user_id)
    async def chat(request: Request) -> dict: ...

    @app.exception_handler(costguard.BudgetExceededError)
    async def budget_exceeded(request, exc): return JSONResponse({...}, status_code=402)

(``@app.post`` goes on top, so FastAPI registers the scoped function.)

Each call reserves its worst case against the user's budget before it is sent, so a user can
never overspend, even with many requests in flight; a refused call sends nothing. Runs offline
on costguard's fake provider, with the ledger and cache in a temporary directory.

    python examples/fastapi_style_handler.py
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai

import costguard
from costguard.testing import FakeProvider

# -- a very small stand-in for the web framework --------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the handler needs from an HTTP request (in FastAPI: ``request.state``, the body)."""

    user_id: str
    json: dict[str, Any]


@dataclass(frozen=True)
class Response:
    status_code: int
    json: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


def budget_exceeded(request: Request, exc: costguard.BudgetExceededError) -> Response:
    """The exception handler: 402 Payment Required, with what the client needs to know."""
    return Response(
        402,
        {
            "error": "budget_exceeded",
            "detail": f"over the daily AI budget (${exc.limit}) of user {exc.key}; try tomorrow",
            "spent_usd": str(exc.spent),
            "limit_usd": str(exc.limit),
        },
    )


def rate_limited(request: Request, exc: costguard.RateLimitedError) -> Response:
    return Response(429, {"error": "rate_limited"}, {"retry-after": str(int(exc.retry_after))})


async def dispatch(handler: Handler, request: Request) -> Response:
    """What the framework does around every handler: map known exceptions to responses."""
    try:
        return await handler(request)
    except costguard.BudgetExceededError as exc:
        return budget_exceeded(request, exc)
    except costguard.RateLimitedError as exc:
        return rate_limited(request, exc)


# -- the application ------------------------------------------------------------------------


def make_chat_handler(guard: costguard.CostGuardClient, client: openai.AsyncOpenAI) -> Handler:
    @guard.scope(feature="chat", user=lambda request: request.user_id)
    async def chat(request: Request) -> Response:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": request.json["message"]}],
            max_completion_tokens=100,  # bounds the worst case the budget reserves
        )
        return Response(200, {"answer": reply.choices[0].message.content})

    return chat


async def serve(guard: costguard.CostGuardClient, chat: Handler) -> None:
    traffic = [("alice", n) for n in range(1, 7)] + [("bob", 1), ("alice", 7), ("bob", 2)]
    for user, n in traffic:
        request = Request(user_id=user, json={"message": f"Question {n} from {user}: hi!"})
        response = await dispatch(chat, request)
        body = response.json.get("answer") or response.json["detail"]
        print(f"POST /chat  user={user:<5}  -> {response.status_code}  {body[:58]}")


def main() -> None:
    fake = FakeProvider()  # in real code: openai.AsyncOpenAI()
    with tempfile.TemporaryDirectory() as tmp:
        per_user = costguard.Budget(Decimal("0.0002"), period="day", per="user")
        guard = costguard.CostGuardClient(
            ledger=Path(tmp) / "ledger.db",
            cache=costguard.ExactCache(Path(tmp) / "cache"),
            budgets=[per_user],
        )
        chat = make_chat_handler(guard, guard.wrap(fake.async_openai()))
        asyncio.run(serve(guard, chat))

        print(f"\nbudget {per_user.name}:")
        for status in guard.budget_status():
            print(f"  user={status.key:<5} spent=${status.spent:<11} remaining=${status.remaining}")
        print(f"requests that reached the provider: {len(fake.requests)}")
        refused = guard.ledger.records(status="error")
        print(f"refused calls in the ledger: {len(refused)} ({refused[0].error_type}, $0 each)")
        guard.close()


if __name__ == "__main__":
    main()
