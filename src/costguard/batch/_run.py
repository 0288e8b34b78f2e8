"""One core, two drivers: how the batch engine runs with a sync client and with an async one.

The engine (``_api``, ``_engine``, ``_collect``, ``_drivers``) is written once, as generators.
They take every decision and do every database step themselves (SQLite, the cache, budgets,
ledger rows), and *yield* what only the caller's side can do, as an :data:`Effect`:

- :class:`Sdk`: an SDK method call on the client (made on a sync client, awaited on an async
  one), optionally reading a page iterator or JSONL stream into a list;
- :class:`Sleep`: a wait between polls (``BatchOptions.sleep`` or ``BatchOptions.asleep``);
- :class:`Notify`: a user callback (``on_progress``, ``on_step``), run on the caller's thread.

:func:`run` drives a generator for the sync APIs; :func:`arun` for the async ones, running each
stretch of the core between two effects in a worker thread (``asyncio.to_thread``) so that no
SQLite or disk work blocks the event loop, and awaiting the effects on the loop. Both drivers
send an effect's result back into the core, or throw its exception (any, ``BaseException``
included) into the core where it asked, so the core's control flow is the same for both: the
model is tenacity's, where ``iter()`` decides and thin sync and async loops act.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from ._types import BatchOptions

__all__ = ["Effect", "Notify", "Sdk", "Sleep", "Steps", "arun", "listing", "notify", "run", "sdk"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sdk:
    """``method(*args, **kwargs)``: an SDK call on the client. With ``listing``, what it returns
    (a page iterator, a JSONL stream) is read into a list of at most ``at_most`` items."""

    method: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    listing: bool = False
    at_most: int | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` before the next poll."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Notify:
    """Call a user callback with ``args`` (its exception, if any, is thrown into the core)."""

    callback: Callable[..., object]
    args: tuple[Any, ...]


Effect = Sdk | Sleep | Notify
#: A stretch of the core that yields effects and returns a ``T``.
Steps = Generator[Effect, Any, T]


def sdk(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Steps[Any]:
    """The result of one SDK call (``yield from sdk(client.batches.retrieve, batch_id)``)."""
    return (yield Sdk(method, args, kwargs))


def listing(
    method: Callable[..., Any], *args: Any, at_most: int | None = None, **kwargs: Any
) -> Steps[list[Any]]:
    """The items of what an SDK call returns (every page, or the first ``at_most``)."""
    items: list[Any] = yield Sdk(method, args, kwargs, listing=True, at_most=at_most)
    return items


def notify(callback: Callable[..., object] | None, *args: Any) -> Steps[None]:
    """Call ``callback`` (if there is one) where the caller runs."""
    if callback is not None:
        yield Notify(callback, args)


# -- stepping the core (shared) ---------------------------------------------------------------


def _advance(steps: Steps[Any], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Run the core to its next effect: (False, effect), or (True, its result) once it ends.

    StopIteration never leaves this function: it cannot cross a future or a thread."""
    try:
        effect = steps.send(value) if error is None else steps.throw(error)
    except StopIteration as stop:
        return True, stop.value
    return False, effect


# -- the sync driver ---------------------------------------------------------------------------


def run(steps: Steps[T], options: BatchOptions) -> T:
    """Drive the core with a sync client: SDK calls made, waits slept, callbacks called here."""
    value: Any = None
    error: BaseException | None = None
    while True:
        done, out = _advance(steps, value, error)
        if done:
            return cast(T, out)
        try:
            value, error = _perform(out, options), None
        except BaseException as exc:  # thrown into the core where it asked, as a call would raise
            value, error = None, exc


def _perform(effect: Effect, options: BatchOptions) -> Any:
    if isinstance(effect, Sdk):
        result = effect.method(*effect.args, **effect.kwargs)
        return list(itertools.islice(result, effect.at_most)) if effect.listing else result
    if isinstance(effect, Sleep):
        options.sleep(effect.seconds)
        return None
    returned = effect.callback(*effect.args)
    if inspect.isawaitable(returned):
        if inspect.iscoroutine(returned):
            returned.close()  # never awaited: say why instead of a RuntimeWarning
        raise ConfigurationError(
            f"{_name(effect.callback)} returned an awaitable; async callbacks work with the "
            "async batch APIs (guard.abatch, guard.aflush_deferred, guard.aresolve)"
        )
    return None


def _name(callback: Callable[..., object]) -> str:
    return str(getattr(callback, "__qualname__", None) or repr(callback))


# -- the async driver --------------------------------------------------------------------------


async def arun(steps: Steps[T], options: BatchOptions) -> T:
    """Drive the core with an async client: each stretch of the core runs in a worker thread
    (its SQLite and disk work never blocks the event loop); SDK calls, waits and callbacks are
    awaited here, on the loop."""
    value: Any = None
    error: BaseException | None = None
    while True:
        done, out = await _astep(steps, value, error)
        if done:
            return cast(T, out)
        try:
            value, error = await _aperform(out, options), None
        except BaseException as exc:  # cancellation included: the core's cleanup runs first
            value, error = None, exc


async def _astep(steps: Steps[Any], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """One stretch of the core, in a worker thread.

    A thread cannot be stopped, and the core must never be left half-way through a stretch
    (between two database writes that belong together). If the caller is cancelled meanwhile,
    the stretch is let finish; the cancellation is then thrown into the core where it next
    yields, so it cleans up (releases what it holds) before the ``CancelledError`` propagates.
    """
    stretch = asyncio.ensure_future(asyncio.to_thread(_advance, steps, value, error))
    cancelled: asyncio.CancelledError | None = None
    while not stretch.done():
        try:
            await asyncio.wait([stretch])  # never cancels ``stretch`` itself
        except asyncio.CancelledError as exc:
            cancelled = exc
    done, out = stretch.result()  # the core's own exception, if it raised one
    if cancelled is None:
        return done, out
    if done:
        raise cancelled
    return await _astep(steps, None, cancelled)


async def _aperform(effect: Effect, options: BatchOptions) -> Any:
    if isinstance(effect, Sdk):
        result = effect.method(*effect.args, **effect.kwargs)
        if not effect.listing:
            return await result
        if not hasattr(result, "__aiter__"):  # e.g. Message Batches results(): a coroutine
            result = await result
        items: list[Any] = []
        if effect.at_most == 0:
            return items
        async for item in result:
            items.append(item)
            if effect.at_most is not None and len(items) >= effect.at_most:
                break
        return items
    if isinstance(effect, Sleep):
        await options.asleep(effect.seconds)
        return None
    returned = effect.callback(*effect.args)
    if inspect.isawaitable(returned):
        await returned
    return None
