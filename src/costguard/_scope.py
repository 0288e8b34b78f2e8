"""Attribution that follows the work: feature, user, tenant and tags, carried by contextvars.

``guard.scope(...)`` returns a :class:`ScopeManager`, usable as ``with``/``async with`` and as a
decorator on plain, async, generator and async-generator functions. Scopes nest: inner values
override outer ones and tags merge. The active scope is context-local, so threads started with
``contextvars.copy_context()`` and asyncio tasks inherit it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .spend import Budget

__all__ = ["CACHE_MODES", "Scope", "ScopeManager", "current_scope"]

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


#: Cache controls a scope may set: ``no-cache`` skips the lookup but stores the answer,
#: ``no-store`` looks up but never stores, ``off`` does neither.
CACHE_MODES = frozenset({"default", "no-cache", "no-store", "off"})


@dataclass(frozen=True, slots=True)
class Scope:
    feature: str | None = None
    user: str | None = None
    tenant: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY_TAGS)
    cache: str | None = None  # one of CACHE_MODES; None: inherit
    cache_ttl: float | None = None  # seconds; None: inherit
    tier: str | None = None  # the caller's plan, for per-tier rate limits
    model: str | None = None  # forced: every call inside goes to this model
    max_tokens: int | None = None  # output limit for calls inside (never raises theirs)
    max_cost_usd: Decimal | None = None  # per-call cost ceiling
    budgets: tuple[Budget, ...] = ()  # per-function budgets; nested scopes add theirs
    prompt_caching: str | None = None  # "auto" or "off" (provider prompt caches); None: inherit

    def merged(self, inner: Scope) -> Scope:
        """This scope with ``inner``'s values laid over it (tags merge, inner wins)."""
        return Scope(
            feature=inner.feature if inner.feature is not None else self.feature,
            user=inner.user if inner.user is not None else self.user,
            tenant=inner.tenant if inner.tenant is not None else self.tenant,
            tags=MappingProxyType({**self.tags, **inner.tags}) if inner.tags else self.tags,
            cache=inner.cache if inner.cache is not None else self.cache,
            cache_ttl=inner.cache_ttl if inner.cache_ttl is not None else self.cache_ttl,
            tier=inner.tier if inner.tier is not None else self.tier,
            model=inner.model if inner.model is not None else self.model,
            max_tokens=inner.max_tokens if inner.max_tokens is not None else self.max_tokens,
            max_cost_usd=(
                inner.max_cost_usd if inner.max_cost_usd is not None else self.max_cost_usd
            ),
            budgets=self.budgets + tuple(b for b in inner.budgets if b not in self.budgets),
            prompt_caching=(
                inner.prompt_caching if inner.prompt_caching is not None else self.prompt_caching
            ),
        )


_current: ContextVar[Scope] = ContextVar("costguard_scope", default=Scope())  # noqa: B039 - Scope is frozen


def current_scope() -> Scope:
    """The scope in force here (an empty Scope outside any ``guard.scope``)."""
    return _current.get()


def _check(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"scope {name} must be a str or None, not {type(value).__name__}")


class ScopeManager:
    """Context manager and decorator that lays a :class:`Scope` over the current one."""

    __slots__ = ("_scope", "_tokens")

    def __init__(self, scope: Scope) -> None:
        for name in ("feature", "user", "tenant", "tier"):
            _check(name, getattr(scope, name))
        for key, value in scope.tags.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"scope tags must map str to str, got {key!r}: {value!r}")
        if scope.cache is not None and scope.cache not in CACHE_MODES:
            from ._errors import ConfigurationError

            modes = ", ".join(sorted(CACHE_MODES))
            raise ConfigurationError(f"scope cache={scope.cache!r} is not one of {modes}")
        self._scope = scope
        self._tokens: list[Token[Scope]] = []

    @property
    def scope(self) -> Scope:
        return self._scope

    def _enter(self) -> Token[Scope]:
        return _current.set(_current.get().merged(self._scope))

    def __enter__(self) -> Scope:
        self._tokens.append(self._enter())
        return _current.get()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        if inspect.isasyncgenfunction(fn):
            return cast(F, self._wrap_async_gen(fn))
        if inspect.isgeneratorfunction(fn):
            return cast(F, self._wrap_gen(fn))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = self._enter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _current.reset(token)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = self._enter()
            try:
                return fn(*args, **kwargs)
            finally:
                _current.reset(token)

        return cast(F, wrapper)

    def _wrap_gen(self, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        # The scope is active while the generator body runs, i.e. during each step the caller
        # drives, and not while control is back in the caller between steps.
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            gen = fn(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = self._enter()
                try:
                    item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                except StopIteration as stop:
                    return stop.value
                finally:
                    _current.reset(token)
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:
                    thrown = exc

        return wrapper

    def _wrap_async_gen(self, fn: Callable[..., AsyncGenerator[Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            gen = fn(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = self._enter()
                try:
                    step = gen.athrow(thrown) if thrown is not None else gen.asend(sent)
                    item = await step
                except StopAsyncIteration:
                    return
                finally:
                    _current.reset(token)
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    await gen.aclose()
                    raise
                except BaseException as exc:
                    thrown = exc

        return wrapper
