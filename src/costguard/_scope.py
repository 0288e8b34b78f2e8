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
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .spend import Budget

__all__ = [
    "CACHE_MODES",
    "PROMPT_CACHING_MODES",
    "Resolver",
    "Scope",
    "ScopeManager",
    "check_prompt_caching",
    "current_scope",
]

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


#: Cache controls a scope may set: ``no-cache`` skips the lookup but stores the answer,
#: ``no-store`` looks up but never stores, ``off`` does neither.
CACHE_MODES = frozenset({"default", "no-cache", "no-store", "off"})

#: What ``prompt_caching=`` may say, for a guard and for a scope (``None`` in a scope: inherit).
PROMPT_CACHING_MODES = frozenset({"auto", "off"})


def check_prompt_caching(value: object) -> None:
    """Raise ConfigurationError unless ``value`` is a scope's ``prompt_caching`` setting
    (``"auto"``, ``"off"`` or ``None``)."""
    if value is not None and (not isinstance(value, str) or value not in PROMPT_CACHING_MODES):
        from ._errors import ConfigurationError

        raise ConfigurationError(
            f"scope prompt_caching must be 'auto', 'off' or None, got {value!r}"
        )


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
        """This scope with ``inner``'s values laid over it: inner values win, tags merge (inner
        wins for a key both set) and ``inner``'s budgets are added to this scope's."""
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
        from ._errors import ConfigurationError

        raise ConfigurationError(
            f"scope {name} must be a str or None, not {type(value).__name__} {value!r}"
        )


#: A scope value worked out from the decorated function's arguments, e.g. the user of a request.
Resolver = Callable[..., "str | None"]


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none
        return None


class ScopeManager:
    """Context manager and decorator that lays a :class:`Scope` over the current one.

    ``user`` and ``tenant`` may be given as :data:`Resolver` callables of the decorated
    function's arguments (``user=lambda request: request.user_id``); such a scope can only
    decorate a function, since a ``with`` block has no arguments to resolve them from.
    """

    __slots__ = ("_resolvers", "_scope", "_tokens")

    def __init__(self, scope: Scope, resolvers: Mapping[str, Resolver] | None = None) -> None:
        for name in ("feature", "user", "tenant", "tier", "model"):
            _check(name, getattr(scope, name))
        for key, value in scope.tags.items():
            if not isinstance(key, str) or not isinstance(value, str):
                from ._errors import ConfigurationError

                raise ConfigurationError(f"scope tags must map str to str, got {key!r}: {value!r}")
        if scope.cache is not None and scope.cache not in CACHE_MODES:
            from ._errors import ConfigurationError

            modes = ", ".join(sorted(CACHE_MODES))
            raise ConfigurationError(f"scope cache={scope.cache!r} is not one of {modes}")
        check_prompt_caching(scope.prompt_caching)
        self._scope = scope
        self._resolvers: Mapping[str, Resolver] = MappingProxyType(dict(resolvers or {}))
        # One manager may be entered by several threads or tasks at once (a module-level
        # ``with SUPPORT:``), and they need not leave in the order they came: each entry's
        # token is kept under the id of the Scope it made current, which is what is current
        # again where that entry leaves.
        self._tokens: dict[int, Token[Scope]] = {}

    @property
    def scope(self) -> Scope:
        return self._scope

    def _resolved(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], sig: inspect.Signature | None = None
    ) -> Scope:
        """This scope with its resolvers applied to one call's arguments (bound to the
        function's signature first, so ``f(request=r)`` and ``f(r)`` resolve alike)."""
        if sig is not None:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                pass  # the call itself will fail, with Python's own message
            else:
                args, kwargs = bound.args, bound.kwargs
        values: dict[str, Any] = {}
        for name, resolve in self._resolvers.items():
            value = resolve(*args, **kwargs)
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"scope {name}= callable returned {type(value).__name__} {value!r}; "
                    "it must return a str or None"
                )
            values[name] = value
        return replace(self._scope, **values)

    def _enter(
        self,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        sig: inspect.Signature | None = None,
    ) -> Token[Scope]:
        scope = self._resolved(args, kwargs or {}, sig) if self._resolvers else self._scope
        return _current.set(_current.get().merged(scope))

    def __enter__(self) -> Scope:
        if self._resolvers:
            from ._errors import ConfigurationError

            names = " and ".join(sorted(self._resolvers))
            raise ConfigurationError(
                f"scope {names} given as a callable can only decorate a function (a with "
                "block has no arguments to call it with); pass a str here"
            )
        token = self._enter()
        entered = _current.get()
        self._tokens[id(entered)] = token
        return entered

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._tokens.pop(id(_current.get()), None)
        if token is None:
            raise RuntimeError(
                "guard.scope(...) left where it was not entered: leave scopes in the thread or "
                "task that entered them, innermost first"
            )
        _current.reset(token)

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
        from ._errors import ConfigurationError

        if isinstance(fn, type):
            raise ConfigurationError(
                f"guard.scope(...) cannot decorate the class {fn.__name__}: decorate its "
                "methods, or use `with guard.scope(...)` where the calls are made"
            )
        if not callable(fn):
            raise ConfigurationError(
                f"guard.scope(...) decorates functions, not {type(fn).__name__} {fn!r}"
            )
        sig = _signature(fn) if self._resolvers else None
        if inspect.isasyncgenfunction(fn):
            return cast(F, self._wrap_async_gen(fn, sig))
        if inspect.isgeneratorfunction(fn):
            return cast(F, self._wrap_gen(fn, sig))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = self._enter(args, kwargs, sig)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _current.reset(token)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = self._enter(args, kwargs, sig)
            try:
                return fn(*args, **kwargs)
            finally:
                _current.reset(token)

        return cast(F, wrapper)

    def _wrap_gen(
        self, fn: Callable[..., Generator[Any, Any, Any]], sig: inspect.Signature | None
    ) -> Callable[..., Any]:
        # The scope is active while the generator body runs, i.e. during each step the caller
        # drives, and not while control is back in the caller between steps.
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            gen = fn(*args, **kwargs)
            scope = self._resolved(args, kwargs, sig) if self._resolvers else self._scope
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                with _Within(scope):
                    try:
                        item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                    except StopIteration as stop:
                        return stop.value
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    with _Within(scope):  # its finally blocks are its body too
                        gen.close()
                    raise
                except BaseException as exc:
                    thrown = exc

        return wrapper

    def _wrap_async_gen(
        self, fn: Callable[..., AsyncGenerator[Any, Any]], sig: inspect.Signature | None
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            gen = fn(*args, **kwargs)
            scope = self._resolved(args, kwargs, sig) if self._resolvers else self._scope
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                with _Within(scope):
                    try:
                        step = gen.athrow(thrown) if thrown is not None else gen.asend(sent)
                        item = await step
                    except StopAsyncIteration:
                        return
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    with _Within(scope):
                        await gen.aclose()
                    raise
                except BaseException as exc:
                    thrown = exc

        return wrapper


class _Within:
    """Lays a scope over the current one for the length of a ``with`` block: one step of a
    decorated generator."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def __enter__(self) -> None:
        self._token = _current.set(_current.get().merged(self._scope))

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
