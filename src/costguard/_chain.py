"""The layer protocol and the fold that turns a list of layers into one handler.

A layer sees every guarded call on its way to the SDK and the Outcome on its way back::

    class MyLayer:
        def handle(self, call: Call, call_next: Handler) -> Outcome:
            outcome = call_next(call)          # or call_next(call.replace(params=...))
            return outcome

        async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
            return await call_next(call)

The list is folded once, when the guard is built; the first layer is outermost. A layer may
answer without calling ``call_next`` (a cache hit), change the call it passes on (a router), call
``call_next`` several times (retries), or raise a :class:`~costguard.CostGuardError` of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from ._call import Call, Outcome

__all__ = ["AsyncHandler", "Handler", "Layer", "fold", "fold_async"]

Handler = Callable[[Call], Outcome]
AsyncHandler = Callable[[Call], Awaitable[Outcome]]


@runtime_checkable
class Layer(Protocol):
    """One step of the guard's chain. Implement both drivers; keep decisions in shared code."""

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        """Handle ``call`` for a sync client, calling ``call_next`` to go on inwards."""
        ...

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        """Handle ``call`` for an async client, awaiting ``call_next`` to go on inwards."""
        ...


def fold(layers: Sequence[Layer], terminal: Handler) -> Handler:
    handler = terminal
    for layer in reversed(layers):
        handler = functools.partial(layer.handle, call_next=handler)
    return handler


def fold_async(layers: Sequence[Layer], terminal: AsyncHandler) -> AsyncHandler:
    handler = terminal
    for layer in reversed(layers):
        handler = functools.partial(layer.ahandle, call_next=handler)
    return handler
